/*
 * Internal to fjffi/kernels: the built-in kernel functions that builtin.c
 * lists, and the codes they return.  Not part of the public ABI.
 */
#ifndef FJFFI_KERNELS_IMPL_H
#define FJFFI_KERNELS_IMPL_H

#include "fjffi.h"

/*
 * Raw kernels have no message channel, so each failure has its own code.
 * `fail` returns FJFFI_RAW_FAIL_CODE, the code of the seed's `fail` kernel
 * (FrankenJAX e2e_p2c007.rs).
 */
enum {
    FJFFI_RAW_E_NINPUTS = 1,  /* wrong n_inputs */
    FJFFI_RAW_E_NOUTPUTS = 2, /* wrong n_outputs */
    FJFFI_RAW_E_NULL = 3,     /* a buffer pointer is NULL */
    FJFFI_RAW_FAIL_CODE = -42
};

/* Typed kernels return one of these, always with a message. */
enum {
    FJFFI_E_NINPUTS = 1,     /* wrong number of inputs */
    FJFFI_E_NOUTPUTS = 2,    /* wrong number of outputs */
    FJFFI_E_DTYPE = 3,       /* dtypes differ between buffers */
    FJFFI_E_SHAPE = 4,       /* shapes differ, or sum's output is not 0-d */
    FJFFI_E_UNSUPPORTED = 5, /* dtype the kernel has no loop for */
    FJFFI_E_BUFFER = 6       /* malformed descriptor: ndim, nbytes, NULL, alignment */
};

/*
 * The name of a dtype code ("float64"), or for a code with no name a
 * description written into buf (cap >= 32) and returned.
 */
const char *fjffi_dtype_name(int32_t code, char *buf, size_t cap);

int32_t fjffi_kernel_noop(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                          size_t n_outputs);
int32_t fjffi_kernel_copy(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                          size_t n_outputs);
int32_t fjffi_kernel_double_f64(const uint8_t *const *inputs, size_t n_inputs,
                                uint8_t *const *outputs, size_t n_outputs);
int32_t fjffi_kernel_fail(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                          size_t n_outputs);

int32_t fjffi_kernel_negate(const fjffi_buffer *inputs, size_t n_inputs,
                            const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx);
int32_t fjffi_kernel_add(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                         size_t n_outputs, fjffi_context *ctx);
int32_t fjffi_kernel_multiply(const fjffi_buffer *inputs, size_t n_inputs,
                              const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx);
int32_t fjffi_kernel_sum(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                         size_t n_outputs, fjffi_context *ctx);

/* The same four, trusting what fjffi proved of each descriptor (well formed,
 * nbytes matching the shape, aligned): the built-in registry's entries. */
int32_t fjffi_kernel_negate_trusted(const fjffi_buffer *inputs, size_t n_inputs,
                                    const fjffi_buffer *outputs, size_t n_outputs,
                                    fjffi_context *ctx);
int32_t fjffi_kernel_add_trusted(const fjffi_buffer *inputs, size_t n_inputs,
                                 const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx);
int32_t fjffi_kernel_multiply_trusted(const fjffi_buffer *inputs, size_t n_inputs,
                                      const fjffi_buffer *outputs, size_t n_outputs,
                                      fjffi_context *ctx);
int32_t fjffi_kernel_sum_trusted(const fjffi_buffer *inputs, size_t n_inputs,
                                 const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx);

#endif
