/* The public built-in kernels (see kernels.h). */
#include "kernels.h"
#include "kernels_impl.h"

#include <stdint.h>

/* copy moves 8 bytes of any dtype; double_f64 takes exactly one float64. */
static const fjffi_raw_contract copy_contract = {1, 1, -1, sizeof(double), SIZE_MAX};
static const fjffi_raw_contract double_f64_contract = {1, 1, FJFFI_FLOAT64, sizeof(double),
                                                       sizeof(double)};

const fjffi_kernel_entry fjffi_builtin_kernels[] = {
    {"noop", (void *)fjffi_kernel_noop, FJFFI_ABI_RAW,
     "Does nothing and returns 0; any buffers, none touched.", NULL, 0},
    {"copy", (void *)fjffi_kernel_copy, FJFFI_ABI_RAW,
     "Copies the 8 bytes of input 0 to output 0; 1 input, 1 output, each at least 8 bytes.",
     &copy_contract, 0},
    {"double_f64", (void *)fjffi_kernel_double_f64, FJFFI_ABI_RAW,
     "output 0 = 2 * input 0 as one float64; 1 input, 1 output, each one float64.",
     &double_f64_contract, 1},
    {"fail", (void *)fjffi_kernel_fail, FJFFI_ABI_RAW,
     "Always fails with code -42 and writes nothing; any buffers.", NULL, 0},
    {"negate", (void *)fjffi_kernel_negate_trusted, FJFFI_ABI_TYPED,
     "out = -x elementwise; 1 input, 1 output, same dtype and shape; float64/float32/int64/int32.",
     NULL, 1},
    {"add", (void *)fjffi_kernel_add_trusted, FJFFI_ABI_TYPED,
     "out = a + b elementwise; 2 inputs, 1 output, same dtype and shape; float64/float32/int64/int32.",
     NULL, 1},
    {"multiply", (void *)fjffi_kernel_multiply_trusted, FJFFI_ABI_TYPED,
     "out = a * b elementwise; 2 inputs, 1 output, same dtype and shape; float64/float32/int64/int32.",
     NULL, 1},
    {"sum", (void *)fjffi_kernel_sum_trusted, FJFFI_ABI_TYPED,
     "out = sum of all elements of x; 1 input of any shape, 1 output of shape () and the same dtype; "
     "float64/float32/int64/int32.",
     NULL, 1},
};

const size_t fjffi_num_builtin_kernels = sizeof fjffi_builtin_kernels / sizeof fjffi_builtin_kernels[0];
