/*
 * Kernels that misbehave on purpose, for isolated targets (run in a worker
 * process) and for the specs and dask tests.  Typed ABI (api_version 1).
 */
#include <stdlib.h>
#include <unistd.h>

#include "fjffi.h"

/* out0 = -in0, float64 of any shape. */
int32_t iso_negate(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                   size_t n_outputs, fjffi_context *ctx) {
    if (n_inputs != 1 || n_outputs != 1) return fjffi_fail(ctx, 1, "iso_negate: 1 in, 1 out");
    if (inputs[0].dtype != FJFFI_FLOAT64 || outputs[0].dtype != FJFFI_FLOAT64 ||
        outputs[0].nbytes != inputs[0].nbytes)
        return fjffi_fail(ctx, 2, "iso_negate: float64 in and out of one shape");
    const double *x = inputs[0].data;
    double *y = outputs[0].data;
    for (size_t i = 0, n = fjffi_numel(&inputs[0]); i < n; ++i) y[i] = -x[i];
    return 0;
}

/* Does nothing: the per-call cost of the machinery. */
int32_t iso_noop(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                 size_t n_outputs, fjffi_context *ctx) {
    (void)inputs, (void)n_inputs, (void)outputs, (void)n_outputs, (void)ctx;
    return 0;
}

/* Fails with code 7 and a message, after writing its output. */
int32_t iso_fail(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                 size_t n_outputs, fjffi_context *ctx) {
    (void)inputs, (void)n_inputs;
    if (n_outputs > 0) memset(outputs[0].data, 0xAB, outputs[0].nbytes);
    return fjffi_fail(ctx, 7, "iso_fail: refused on purpose");
}

/* Writes its output, then stores through a null pointer. */
int32_t iso_segfault(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                     size_t n_outputs, fjffi_context *ctx) {
    (void)inputs, (void)n_inputs, (void)ctx;
    if (n_outputs > 0) memset(outputs[0].data, 0xAB, outputs[0].nbytes);
    volatile int *volatile nowhere = NULL;
    *nowhere = 1;
    return 0;
}

/* Writes its output, then aborts. */
int32_t iso_abort(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                  size_t n_outputs, fjffi_context *ctx) {
    (void)inputs, (void)n_inputs, (void)ctx;
    if (n_outputs > 0) memset(outputs[0].data, 0xAB, outputs[0].nbytes);
    abort();
}

/* Writes its output, then exits the process with status 3. */
int32_t iso_exit(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                 size_t n_outputs, fjffi_context *ctx) {
    (void)inputs, (void)n_inputs, (void)ctx;
    if (n_outputs > 0) memset(outputs[0].data, 0xAB, outputs[0].nbytes);
    _Exit(3);
}

/* Writes its output, then never returns. */
int32_t iso_loop(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                 size_t n_outputs, fjffi_context *ctx) {
    (void)inputs, (void)n_inputs, (void)ctx;
    if (n_outputs > 0) memset(outputs[0].data, 0xAB, outputs[0].nbytes);
    for (volatile unsigned long i = 0;; ++i) {
    }
    return 0;
}

/* The process id of the process it runs in, as int64 (which process ran it). */
int32_t iso_pid(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                size_t n_outputs, fjffi_context *ctx) {
    (void)inputs, (void)n_inputs;
    if (n_outputs != 1 || outputs[0].dtype != FJFFI_INT64 || outputs[0].ndim != 0)
        return fjffi_fail(ctx, 1, "iso_pid: one int64 scalar output");
    *(int64_t *)outputs[0].data = (int64_t)getpid();
    return 0;
}

/*
 * in0: a mode (int64 scalar); out0: float64 scalar.  Mode 0 writes 1.0 and
 * returns; 1 segfaults, 2 aborts, 3 exits with status 3, 4 loops forever,
 * each after writing 2.0 to its output.
 */
int32_t iso_mode(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                 size_t n_outputs, fjffi_context *ctx) {
    if (n_inputs != 1 || n_outputs != 1 || inputs[0].dtype != FJFFI_INT64 ||
        outputs[0].dtype != FJFFI_FLOAT64 || outputs[0].ndim != 0)
        return fjffi_fail(ctx, 1, "iso_mode: int64 mode in, float64 scalar out");
    int64_t mode = *(const int64_t *)inputs[0].data;
    *(double *)outputs[0].data = mode == 0 ? 1.0 : 2.0;
    switch (mode) {
    case 0: return 0;
    case 1: return iso_segfault(inputs, n_inputs, outputs, 0, ctx);
    case 2: return iso_abort(inputs, n_inputs, outputs, 0, ctx);
    case 3: return iso_exit(inputs, n_inputs, outputs, 0, ctx);
    case 4: return iso_loop(inputs, n_inputs, outputs, 0, ctx);
    default: return fjffi_fail(ctx, 2, "iso_mode: unknown mode");
    }
}

/* out0 = in0 (any dtype, same size), after sleeping 300 ms. */
int32_t iso_slow_copy(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                      size_t n_outputs, fjffi_context *ctx) {
    if (n_inputs != 1 || n_outputs != 1 || inputs[0].nbytes != outputs[0].nbytes)
        return fjffi_fail(ctx, 1, "iso_slow_copy: 1 in, 1 out of one size");
    usleep(300000);
    memcpy(outputs[0].data, inputs[0].data, inputs[0].nbytes);
    return 0;
}
