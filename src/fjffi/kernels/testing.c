/*
 * Test-only kernels (see kernels.h): each one misbehaves, or behaves, in one
 * specific way that the Python tests need to provoke.  They are exposed by
 * fjffi._testing and never registered in the public registry.
 *
 * Scalars are read with memcpy: these kernels assume nothing about
 * alignment, so the tests may hand them any buffer.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <stdio.h>
#include <time.h>

#include "kernels_impl.h"
#include "testing.h"

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

/* Breaks the contract on purpose: one byte before the start, for guard mode to catch. */
static int32_t write_before(const fjffi_buffer *inputs, size_t n_inputs,
                            const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx) {
    (void)inputs;
    (void)n_inputs;
    int32_t rc = need_output(ctx, "write_before: needs at least 1 output", n_outputs);
    if (rc != 0) return rc;
    if (outputs[0].data != NULL) ((uint8_t *)outputs[0].data)[-1] = 0xEE;
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

/*
 * Raw-ABI kernels of the reference test inventory (FrankenJAX fj-ffi).  The
 * raw ABI carries no sizes: each has a fixed contract and checks only the
 * buffer counts, failing with 1 (inputs) or 2 (outputs) otherwise.
 */
#define RAW_ARGS                                                               \
    const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs, \
        size_t n_outputs

static int32_t raw_counts(size_t n_inputs, size_t want_inputs, size_t n_outputs,
                          size_t want_outputs) {
    if (n_inputs != want_inputs) return 1;
    if (n_outputs != want_outputs) return 2;
    return 0;
}

/* out0 f64 = in0 f64 + in1 f64 (the reference's add_f64 and sum2). */
static int32_t add_f64(RAW_ARGS) {
    int32_t rc = raw_counts(n_inputs, 2, n_outputs, 1);
    if (rc != 0) return rc;
    double a, b;
    memcpy(&a, inputs[0], sizeof a);
    memcpy(&b, inputs[1], sizeof b);
    a += b;
    memcpy(outputs[0], &a, sizeof a);
    return 0;
}

/* Two outputs of different dtypes: f64 99.0 to out0, i64 42 to out1. */
static int32_t mixed(RAW_ARGS) {
    (void)inputs;
    int32_t rc = raw_counts(n_inputs, 0, n_outputs, 2);
    if (rc != 0) return rc;
    double d = 99.0;
    int64_t i = 42;
    memcpy(outputs[0], &d, sizeof d);
    memcpy(outputs[1], &i, sizeof i);
    return 0;
}

/* out = in + 1, wrapping (done in the unsigned type). */
#define RAW_INC(name, T, U)                                  \
    static int32_t name(RAW_ARGS) {                          \
        int32_t rc = raw_counts(n_inputs, 1, n_outputs, 1); \
        if (rc != 0) return rc;                              \
        T x;                                                 \
        memcpy(&x, inputs[0], sizeof x);                     \
        x = (T)((U)x + 1u);                                  \
        memcpy(outputs[0], &x, sizeof x);                    \
        return 0;                                            \
    }
RAW_INC(inc_i64, int64_t, uint64_t)
RAW_INC(inc_i32, int32_t, uint32_t)

/* out byte = (in byte == 0) for one bool. */
static int32_t not_bool(RAW_ARGS) {
    int32_t rc = raw_counts(n_inputs, 1, n_outputs, 1);
    if (rc != 0) return rc;
    outputs[0][0] = inputs[0][0] == 0 ? 1 : 0;
    return 0;
}

/* out0 f64 scalar = the sum of the 3 f64 of in0. */
static int32_t sum3(RAW_ARGS) {
    int32_t rc = raw_counts(n_inputs, 1, n_outputs, 1);
    if (rc != 0) return rc;
    double x[3];
    memcpy(x, inputs[0], sizeof x);
    double s = x[0] + x[1] + x[2];
    memcpy(outputs[0], &s, sizeof s);
    return 0;
}

/* Elementwise on exactly N f64: out0[i] = OP(in0[i]). */
#define RAW_MAP_F64(name, N, OP)                             \
    static int32_t name(RAW_ARGS) {                          \
        int32_t rc = raw_counts(n_inputs, 1, n_outputs, 1); \
        if (rc != 0) return rc;                              \
        double x[N];                                         \
        memcpy(x, inputs[0], sizeof x);                      \
        for (size_t i = 0; i < (N); ++i) x[i] = OP(x[i]);    \
        memcpy(outputs[0], x, sizeof x);                     \
        return 0;                                            \
    }
#define NEG(v) (-(v))
#define SQUARE(v) ((v) * (v))
RAW_MAP_F64(negate3, 3, NEG)
RAW_MAP_F64(square4, 4, SQUARE)

/* Fail with a fixed code and touch nothing. */
#define RAW_FAIL(name, code)       \
    static int32_t name(RAW_ARGS) { \
        (void)inputs;               \
        (void)n_inputs;             \
        (void)outputs;              \
        (void)n_outputs;            \
        return (code);              \
    }
RAW_FAIL(fail_minus_1, -1)
RAW_FAIL(fail_7, 7)
RAW_FAIL(fail_99, 99)

/* Counts its calls and fails with 99: a test that sees the count unchanged
 * knows a failed validation never reached the kernel. */
static uint64_t count_calls_total;

uint64_t fjffi_testing_call_count(void) {
    return __atomic_load_n(&count_calls_total, __ATOMIC_SEQ_CST);
}

static int32_t count_calls(RAW_ARGS) {
    (void)inputs;
    (void)n_inputs;
    (void)outputs;
    (void)n_outputs;
    __atomic_fetch_add(&count_calls_total, 1, __ATOMIC_SEQ_CST);
    return 99;
}

/*
 * Writes what the typed ABI handed it about input 0 to output 0 (int64,
 * at least 6 + ndim elements): n_inputs, n_outputs, dtype, ndim, nbytes,
 * data address, then the shape.
 */
static int32_t describe(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                        size_t n_outputs, fjffi_context *ctx) {
    if (n_inputs < 1) return fjffi_fail(ctx, FJFFI_E_NINPUTS, "describe: needs at least 1 input");
    int32_t rc = need_output(ctx, "describe: needs at least 1 output", n_outputs);
    if (rc != 0) return rc;
    const fjffi_buffer *in = &inputs[0];
    size_t n = 6 + (size_t)in->ndim;
    if (outputs[0].dtype != FJFFI_INT64 || outputs[0].nbytes < n * sizeof(int64_t))
        return fjffi_fail(ctx, FJFFI_E_SHAPE, "describe: output 0 must be int64 of 6 + ndim elements");
    int64_t head[6] = {(int64_t)n_inputs, (int64_t)n_outputs, in->dtype, in->ndim,
                       (int64_t)in->nbytes, (int64_t)(uintptr_t)in->data};
    memcpy(outputs[0].data, head, sizeof head);
    if (in->ndim > 0)
        memcpy((int64_t *)outputs[0].data + 6, in->shape, (size_t)in->ndim * sizeof(int64_t));
    return 0;
}

/*
 * Not thread-safe on purpose: output 0 = input 0 + 1 (float64, at most
 * SCRATCH_N elements) through one static scratch array, with a pause in
 * between.  Two calls at once mix their data; run one at a time it is
 * exact.  It also records the most calls it ever saw in flight at once.
 */
#define SCRATCH_N 256
static double scratch[SCRATCH_N];
static int64_t in_flight, max_in_flight;

int64_t fjffi_testing_max_in_flight(void) {
    return __atomic_load_n(&max_in_flight, __ATOMIC_SEQ_CST);
}

void fjffi_testing_reset_in_flight(void) { __atomic_store_n(&max_in_flight, 0, __ATOMIC_SEQ_CST); }

static int32_t static_scratch(const fjffi_buffer *inputs, size_t n_inputs,
                              const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx) {
    if (n_inputs != 1 || n_outputs != 1)
        return fjffi_fail(ctx, FJFFI_E_NINPUTS, "static_scratch: expected 1 input and 1 output");
    if (inputs[0].dtype != FJFFI_FLOAT64 || outputs[0].dtype != FJFFI_FLOAT64 ||
        inputs[0].nbytes != outputs[0].nbytes || inputs[0].nbytes > sizeof scratch)
        return fjffi_fail(ctx, FJFFI_E_SHAPE,
                          "static_scratch: float64 input and output of equal size, at most 256 elements");
    int64_t now = __atomic_add_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
    int64_t seen = __atomic_load_n(&max_in_flight, __ATOMIC_SEQ_CST);
    while (now > seen &&
           !__atomic_compare_exchange_n(&max_in_flight, &seen, now, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
    }
    size_t n = inputs[0].nbytes / sizeof(double);
    memcpy(scratch, inputs[0].data, inputs[0].nbytes);
    /* The pause sleeps, so even on a busy machine another thread gets to run
     * meanwhile: an unserialised second call lands inside it. */
    struct timespec pause = {0, 20000};
    nanosleep(&pause, NULL);
    for (size_t i = 0; i < n; ++i) scratch[i] += 1.0;
    memcpy(outputs[0].data, scratch, outputs[0].nbytes);
    __atomic_sub_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
    return 0;
}

const fjffi_kernel_entry fjffi_test_kernels[] = {
    {"write_one_byte_ok", (void *)write_one_byte_ok, FJFFI_ABI_TYPED,
     "Writes 0xAB to byte 0 of output 0 (if it has any bytes) and returns 0.", NULL, 0},
    {"write_then_fail", (void *)write_then_fail, FJFFI_ABI_TYPED,
     "Fills every output with 0xCD, then fails with code 7.", NULL, 0},
    {"write_prefix", (void *)write_prefix, FJFFI_ABI_TYPED,
     "Inputs prefix (int64), fill (uint8), fail (bool): writes min(prefix, nbytes) fill bytes "
     "to output 0, then fails with code 9 if fail.", NULL, 0},
    {"bool_two", (void *)bool_two, FJFFI_ABI_TYPED,
     "Writes the non-canonical bool byte 2 to byte 0 of output 0 and returns 0.", NULL, 0},
    {"off_by_one", (void *)off_by_one, FJFFI_ABI_TYPED,
     "Writes nbytes + 1 bytes of 0xEE to output 0: overruns it by one byte.", NULL, 0},
    {"write_before", (void *)write_before, FJFFI_ABI_TYPED,
     "Writes 0xEE to the byte before output 0: underruns it by one byte.", NULL, 0},
    {"busy_loop", (void *)busy_loop, FJFFI_ABI_TYPED,
     "Input n (int64 scalar): runs n xorshift steps, writes the checksum to output 0 (uint64 scalar).", NULL, 0},
    {"segfault", (void *)segfault, FJFFI_ABI_TYPED,
     "Stores through a NULL pointer: crashes the process.", NULL, 0},
    {"fail_with_message", (void *)fail_with_message, FJFFI_ABI_TYPED,
     "Fails with code 3 and message \"fail_with_message: the kernel said no\".", NULL, 0},
    {"raw_noop", (void *)fjffi_kernel_noop, FJFFI_ABI_RAW, "Raw ABI: the built-in noop, for registries of test kernels.", NULL, 0},
    {"add_f64", (void *)add_f64, FJFFI_ABI_RAW, "Raw ABI: out0 f64 = in0 f64 + in1 f64; 2 inputs, 1 output.", NULL, 0},
    {"mixed", (void *)mixed, FJFFI_ABI_RAW,
     "Raw ABI: no inputs; writes f64 99.0 to output 0 and i64 42 to output 1.", NULL, 0},
    {"inc_i64", (void *)inc_i64, FJFFI_ABI_RAW, "Raw ABI: out0 i64 = in0 i64 + 1 (wrapping).", NULL, 0},
    {"inc_i32", (void *)inc_i32, FJFFI_ABI_RAW, "Raw ABI: out0 i32 = in0 i32 + 1 (wrapping).", NULL, 0},
    {"not_bool", (void *)not_bool, FJFFI_ABI_RAW, "Raw ABI: out0 bool = not in0 bool.", NULL, 0},
    {"sum3", (void *)sum3, FJFFI_ABI_RAW, "Raw ABI: out0 f64 scalar = sum of the 3 f64 of in0.", NULL, 0},
    {"negate3", (void *)negate3, FJFFI_ABI_RAW, "Raw ABI: out0 = -in0 for exactly 3 f64.", NULL, 0},
    {"square4", (void *)square4, FJFFI_ABI_RAW, "Raw ABI: out0 = in0 * in0 for exactly 4 f64.", NULL, 0},
    {"fail_minus_1", (void *)fail_minus_1, FJFFI_ABI_RAW, "Raw ABI: fails with code -1.", NULL, 0},
    {"fail_7", (void *)fail_7, FJFFI_ABI_RAW, "Raw ABI: fails with code 7.", NULL, 0},
    {"fail_99", (void *)fail_99, FJFFI_ABI_RAW, "Raw ABI: fails with code 99.", NULL, 0},
    {"count_calls", (void *)count_calls, FJFFI_ABI_RAW,
     "Raw ABI: counts its calls (fjffi._testing.call_count()) and fails with code 99.", NULL, 0},
    {"describe", (void *)describe, FJFFI_ABI_TYPED,
     "Writes n_inputs, n_outputs, dtype, ndim, nbytes, data address and shape of input 0 "
     "to output 0 (int64, 6 + ndim elements).", NULL, 0},
    {"static_scratch", (void *)static_scratch, FJFFI_ABI_TYPED,
     "Not thread-safe: output 0 = input 0 + 1 (float64, <= 256 elements) through a static "
     "array; records the most calls in flight at once.", NULL, 0},
};

const size_t fjffi_num_test_kernels = sizeof fjffi_test_kernels / sizeof fjffi_test_kernels[0];
