/*
 * One kernel, built twice with a different VERSION: output 0 (int64 scalar)
 * = VERSION, then a sleep of input 0 (int64) microseconds, or, for a
 * negative input 0, a wait until the caller sets it to 0.  Loaded and
 * unloaded by tests/test_replace.py, which checks which version ran and
 * that a released library really leaves the process.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "fjffi.h"

int32_t versioned(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                  size_t n_outputs, fjffi_context *ctx) {
    if (n_inputs != 1 || n_outputs != 1 || inputs[0].dtype != FJFFI_INT64 ||
        outputs[0].dtype != FJFFI_INT64 || inputs[0].ndim != 0 || outputs[0].ndim != 0)
        return fjffi_fail(ctx, 1, "versioned: one int64 scalar in, one out");
    int64_t us, version = VERSION;
    memcpy(&us, inputs[0].data, sizeof us);
    /* Written first, so a test can see that the call is inside the kernel. */
    memcpy(outputs[0].data, &version, sizeof version);
    if (us < 0) {
        /* A gate: wait (30 s at most) until the caller sets input 0 to 0. */
        struct timespec step = {0, 1000000};
        for (int i = 0; i < 30000 && *(volatile const int64_t *)inputs[0].data < 0; ++i)
            nanosleep(&step, NULL);
        return 0;
    }
    struct timespec pause = {us / 1000000, (us % 1000000) * 1000};
    if (us > 0) nanosleep(&pause, NULL);
    return 0;
}

/* Declares writes_all_outputs but writes only the first byte: what the
 * declaration leaves behind when it is not true. */
int32_t first_byte(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                   size_t n_outputs, fjffi_context *ctx) {
    (void)inputs;
    (void)n_inputs;
    if (n_outputs < 1 || outputs[0].nbytes < 1) return fjffi_fail(ctx, 2, "first_byte: 1 output");
    ((uint8_t *)outputs[0].data)[0] = 0x11;
    return inputs != NULL && n_inputs > 0 ? 3 : 0; /* any input: fail after writing */
}
