/*
 * Test-only kernels (see kernels.h): each one misbehaves, or behaves, in one
 * specific way that the Python tests need to provoke.  They are exposed by
 * fjffi._testing and never registered in the public registry.
 *
 * Scalars are read with memcpy: these kernels assume nothing about
 * alignment, so the tests may hand them any buffer.
 */
#include <stdio.h>

#include "kernels.h"
#include "kernels_impl.h"

/* 0 if buf is a 0-d buffer of dtype (or of alt, when alt >= 0), else fails. */
static int32_t need_scalar(fjffi_context *ctx, const char *k, const char *what,
                           const fjffi_buffer *b, int32_t dtype, int32_t alt) {
    char msg[FJFFI_MESSAGE_SIZE], d1[32], d2[32], d3[32];
    if (b->dtype != dtype && b->dtype != alt) {
        snprintf(msg, sizeof msg, "%s: %s has dtype %s, expected %s%s%s", k, what,
                 fjffi_dtype_name(b->dtype, d1, sizeof d1), fjffi_dtype_name(dtype, d2, sizeof d2),
                 alt >= 0 ? " or " : "", alt >= 0 ? fjffi_dtype_name(alt, d3, sizeof d3) : "");
        return fjffi_fail(ctx, FJFFI_E_DTYPE, msg);
    }
    if (b->ndim != 0 || b->data == NULL || b->nbytes != fjffi_itemsize(b->dtype)) {
        snprintf(msg, sizeof msg, "%s: %s must be a scalar (shape ())", k, what);
        return fjffi_fail(ctx, FJFFI_E_SHAPE, msg);
    }
    return 0;
}

static int32_t need_output(fjffi_context *ctx, const char *message, size_t n_outputs) {
    return n_outputs < 1 ? fjffi_fail(ctx, FJFFI_E_NOUTPUTS, message) : 0;
}

static int32_t write_one_byte_ok(const fjffi_buffer *inputs, size_t n_inputs,
                                 const fjffi_buffer *outputs, size_t n_outputs,
                                 fjffi_context *ctx) {
    (void)inputs;
    (void)n_inputs;
    int32_t rc = need_output(ctx, "write_one_byte_ok: needs at least 1 output", n_outputs);
    if (rc != 0) return rc;
    if (outputs[0].nbytes > 0) ((uint8_t *)outputs[0].data)[0] = 0xAB;
    return 0;
}

static int32_t write_then_fail(const fjffi_buffer *inputs, size_t n_inputs,
                               const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx) {
    (void)inputs;
    (void)n_inputs;
    for (size_t i = 0; i < n_outputs; ++i)
        if (outputs[i].nbytes > 0) memset(outputs[i].data, 0xCD, outputs[i].nbytes);
    return fjffi_fail(ctx, 7, "write_then_fail: wrote then failed");
}

/* Fault injection: write a chosen prefix of output 0, then succeed or fail. */
static int32_t write_prefix(const fjffi_buffer *inputs, size_t n_inputs,
                            const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx) {
    static const char k[] = "write_prefix";
    if (n_inputs != 3)
        return fjffi_fail(ctx, FJFFI_E_NINPUTS,
                          "write_prefix: expected 3 inputs (prefix int64, fill uint8, fail bool)");
    int32_t rc = need_output(ctx, "write_prefix: needs at least 1 output", n_outputs);
    if (rc == 0) rc = need_scalar(ctx, k, "input 0 (prefix)", &inputs[0], FJFFI_INT64, -1);
    if (rc == 0) rc = need_scalar(ctx, k, "input 1 (fill)", &inputs[1], FJFFI_UINT8, -1);
    if (rc == 0) rc = need_scalar(ctx, k, "input 2 (fail)", &inputs[2], FJFFI_BOOL, FJFFI_UINT8);
    if (rc != 0) return rc;

    int64_t prefix;
    uint8_t fill, fail;
    memcpy(&prefix, inputs[0].data, sizeof prefix);
    memcpy(&fill, inputs[1].data, sizeof fill);
    memcpy(&fail, inputs[2].data, sizeof fail);

    size_t n = outputs[0].nbytes;
    if (prefix < 0) n = 0;
    else if ((uint64_t)prefix < n) n = (size_t)prefix;
    if (n > 0) memset(outputs[0].data, fill, n);

    if (fail != 0) {
        char msg[FJFFI_MESSAGE_SIZE];
        snprintf(msg, sizeof msg, "write_prefix: wrote %zu bytes, then failed as asked", n);
        return fjffi_fail(ctx, 9, msg);
    }
    return 0;
}

/* 2 is not a canonical bool byte, so fjffi must reject it in a bool output. */
static int32_t bool_two(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                        size_t n_outputs, fjffi_context *ctx) {
    (void)inputs;
    (void)n_inputs;
    int32_t rc = need_output(ctx, "bool_two: needs at least 1 output", n_outputs);
    if (rc != 0) return rc;
    if (outputs[0].nbytes > 0) ((uint8_t *)outputs[0].data)[0] = 2;
    return 0;
}

/* Breaks the contract on purpose: one byte past the end, for fjffi's guard check to catch. */
static int32_t off_by_one(const fjffi_buffer *inputs, size_t n_inputs,
                          const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx) {
    (void)inputs;
    (void)n_inputs;
    int32_t rc = need_output(ctx, "off_by_one: needs at least 1 output", n_outputs);
    if (rc != 0) return rc;
    if (outputs[0].data != NULL) memset(outputs[0].data, 0xEE, outputs[0].nbytes + 1);
    return 0;
}

/* CPU-bound work with no memory traffic, so threads scale only if the GIL is released. */
static int32_t busy_loop(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                         size_t n_outputs, fjffi_context *ctx) {
    static const char k[] = "busy_loop";
    if (n_inputs != 1)
        return fjffi_fail(ctx, FJFFI_E_NINPUTS, "busy_loop: expected 1 input (n int64)");
    if (n_outputs != 1)
        return fjffi_fail(ctx, FJFFI_E_NOUTPUTS, "busy_loop: expected 1 output (uint64)");
    int32_t rc = need_scalar(ctx, k, "input 0 (n)", &inputs[0], FJFFI_INT64, -1);
    if (rc == 0) rc = need_scalar(ctx, k, "output 0", &outputs[0], FJFFI_UINT64, -1);
    if (rc != 0) return rc;

    int64_t n;
    memcpy(&n, inputs[0].data, sizeof n);
    /* xorshift64: each step depends on the last, so it can be neither folded nor skipped. */
    uint64_t x = 0x9E3779B97F4A7C15u, acc = 0;
    for (int64_t i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += x;
    }
    memcpy(outputs[0].data, &acc, sizeof acc);
    return 0;
}

/* Crashes the process; run it in a subprocess only. */
static int32_t segfault(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                        size_t n_outputs, fjffi_context *ctx) {
    (void)inputs;
    (void)n_inputs;
    (void)outputs;
    (void)n_outputs;
    (void)ctx;
    /* Both volatile: the compiler can neither drop the store nor see that p is
     * NULL (it would turn a known NULL store into a trap, SIGILL not SIGSEGV). */
    volatile int *volatile p = NULL;
    *p = 42;
    return 0;
}

static int32_t fail_with_message(const fjffi_buffer *inputs, size_t n_inputs,
                                 const fjffi_buffer *outputs, size_t n_outputs,
                                 fjffi_context *ctx) {
    (void)inputs;
    (void)n_inputs;
    (void)outputs;
    (void)n_outputs;
    return fjffi_fail(ctx, 3, "fail_with_message: the kernel said no");
}

static int32_t raw_noop(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                        size_t n_outputs) {
    (void)inputs;
    (void)n_inputs;
    (void)outputs;
    (void)n_outputs;
    return 0;
}

const fjffi_kernel_entry fjffi_test_kernels[] = {
    {"write_one_byte_ok", (void *)write_one_byte_ok, FJFFI_ABI_TYPED,
     "Writes 0xAB to byte 0 of output 0 (if it has any bytes) and returns 0."},
    {"write_then_fail", (void *)write_then_fail, FJFFI_ABI_TYPED,
     "Fills every output with 0xCD, then fails with code 7."},
    {"write_prefix", (void *)write_prefix, FJFFI_ABI_TYPED,
     "Inputs prefix (int64), fill (uint8), fail (bool): writes min(prefix, nbytes) fill bytes "
     "to output 0, then fails with code 9 if fail."},
    {"bool_two", (void *)bool_two, FJFFI_ABI_TYPED,
     "Writes the non-canonical bool byte 2 to byte 0 of output 0 and returns 0."},
    {"off_by_one", (void *)off_by_one, FJFFI_ABI_TYPED,
     "Writes nbytes + 1 bytes of 0xEE to output 0: overruns it by one byte."},
    {"busy_loop", (void *)busy_loop, FJFFI_ABI_TYPED,
     "Input n (int64 scalar): runs n xorshift steps, writes the checksum to output 0 (uint64 scalar)."},
    {"segfault", (void *)segfault, FJFFI_ABI_TYPED,
     "Stores through a NULL pointer: crashes the process."},
    {"fail_with_message", (void *)fail_with_message, FJFFI_ABI_TYPED,
     "Fails with code 3 and message \"fail_with_message: the kernel said no\"."},
    {"raw_noop", (void *)raw_noop, FJFFI_ABI_RAW, "Raw ABI: does nothing and returns 0."},
};

const size_t fjffi_num_test_kernels = sizeof fjffi_test_kernels / sizeof fjffi_test_kernels[0];
