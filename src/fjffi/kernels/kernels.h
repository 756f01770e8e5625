/*
 * Tables of statically linked kernels.  fjffi never calls dlopen: every
 * built-in kernel is linked into the extension and listed here (seed T4).
 */
#ifndef FJFFI_KERNELS_H
#define FJFFI_KERNELS_H

#include "fjffi.h"

typedef struct fjffi_kernel_entry {
    const char *name;
    void *fn;             /* an fjffi_raw_fn or an fjffi_typed_fn */
    int32_t api_version;  /* FJFFI_ABI_RAW or FJFFI_ABI_TYPED */
    const char *doc;      /* one line: what it computes and what it takes */
} fjffi_kernel_entry;

/* The public built-in kernels, registered in fjffi.default_registry. */
extern const fjffi_kernel_entry fjffi_builtin_kernels[];
extern const size_t fjffi_num_builtin_kernels;

/* Test-only kernels, exposed by fjffi._testing and registered nowhere. */
extern const fjffi_kernel_entry fjffi_test_kernels[];
extern const size_t fjffi_num_test_kernels;

#endif
