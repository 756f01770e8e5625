/*
 * The table of built-in kernels.  fjffi never calls dlopen: every built-in
 * kernel is linked into the extension and listed here (docs/design.md,
 * threat T4).
 */
#ifndef FJFFI_KERNELS_H
#define FJFFI_KERNELS_H

#include "fjffi.h"

/*
 * What a raw-ABI kernel needs of its buffers, which it cannot check itself
 * (the raw ABI passes no sizes): fjffi checks it before the call.  The
 * buffer counts the kernel checks itself; with other counts fjffi checks
 * nothing and the kernel fails.
 */
typedef struct fjffi_raw_contract {
    size_t n_inputs, n_outputs;
    int32_t dtype;      /* the dtype code of every buffer, or -1 for any */
    size_t min_nbytes;  /* every buffer holds at least this many bytes */
    size_t max_nbytes;  /* and at most this many */
} fjffi_raw_contract;

typedef struct fjffi_kernel_entry {
    const char *name;
    void *fn;             /* an fjffi_raw_fn or an fjffi_typed_fn */
    int32_t api_version;  /* FJFFI_ABI_RAW or FJFFI_ABI_TYPED */
    const char *doc;      /* one line: what it computes and what it takes */
    const fjffi_raw_contract *contract; /* raw kernels that touch buffers; else NULL */
    int32_t writes_all_outputs; /* writes every byte of every output on success */
} fjffi_kernel_entry;

/* The public built-in kernels, registered in fjffi.default_registry. */
extern const fjffi_kernel_entry fjffi_builtin_kernels[];
extern const size_t fjffi_num_builtin_kernels;

#endif
