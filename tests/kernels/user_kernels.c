/*
 * A user's own kernels, as the tests build them: compiled with the system C
 * compiler into a shared library, then loaded with ctypes or cffi and
 * registered in fjffi.  Nothing here is part of fjffi itself.
 *
 * Raw kernels (api_version 0) know the sizes they were registered for;
 * typed kernels (api_version 1) read them from the descriptors.
 */
#include <stdatomic.h>
#include <time.h>

#include "fjffi.h"

/* ---- raw ABI ----------------------------------------------------------- */

/* out0 (float64) = in0 + in1 (float64 scalars). */
int32_t user_add_f64(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                     size_t n_outputs) {
    if (n_inputs != 2 || n_outputs != 1) return 1;
    double a, b;
    memcpy(&a, inputs[0], sizeof a);
    memcpy(&b, inputs[1], sizeof b);
    double sum = a + b;
    memcpy(outputs[0], &sum, sizeof sum);
    return 0;
}

/* out0 = -in0, three float64. */
int32_t user_negate3_f64(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                         size_t n_outputs) {
    if (n_inputs != 1 || n_outputs != 1) return 1;
    double v[3];
    memcpy(v, inputs[0], sizeof v);
    for (int i = 0; i < 3; ++i) v[i] = -v[i];
    memcpy(outputs[0], v, sizeof v);
    return 0;
}

/* Always fails with -42, touching nothing. */
int32_t user_fail_raw(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                      size_t n_outputs) {
    (void)inputs;
    (void)n_inputs;
    (void)outputs;
    (void)n_outputs;
    return -42;
}

/*
 * Concurrency probes.  inputs: slot (int64, 0..7), wait_us (int64);
 * output: the most calls seen inside the same slot at once (int64).
 *
 * A call enters its slot, then sleeps in short steps until another call
 * enters the same slot or wait_us has passed.  Two calls that can overlap
 * therefore meet (peak 2) at once; a call that cannot overlap waits out
 * wait_us alone (peak 1).  Entries are counted, not only sampled, so a
 * partner that comes and goes between two looks is still seen.
 */
static atomic_int probe_inside[8];
static atomic_long probe_entries[8];

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int64_t probe(const uint8_t *const *inputs) {
    int64_t slot, wait_us;
    memcpy(&slot, inputs[0], sizeof slot);
    memcpy(&wait_us, inputs[1], sizeof wait_us);
    slot &= 7;
    /* Inside first, then the entry: a partner that sees this entry leaves
     * only after this call counted itself inside, so both see peak 2. */
    int64_t peak = atomic_fetch_add(&probe_inside[slot], 1) + 1;
    long entry = atomic_fetch_add(&probe_entries[slot], 1);
    const struct timespec step = {0, 20 * 1000};
    for (double deadline = now_us() + (double)wait_us; peak < 2 && now_us() < deadline;) {
        nanosleep(&step, NULL);
        if (atomic_load(&probe_entries[slot]) != entry + 1) peak = 2;
    }
    atomic_fetch_sub(&probe_inside[slot], 1);
    return peak;
}

int32_t user_probe(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                   size_t n_outputs) {
    if (n_inputs != 2 || n_outputs != 1) return 1;
    int64_t peak = probe(inputs);
    memcpy(outputs[0], &peak, sizeof peak);
    return 0;
}

/* The same, but returns 1 when another call was inside at the same time. */
int32_t user_exclusive(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                       size_t n_outputs) {
    if (n_inputs != 2 || n_outputs != 1) return 1;
    int64_t peak = probe(inputs);
    memcpy(outputs[0], &peak, sizeof peak);
    return peak > 1 ? 1 : 0;
}

/* ---- typed ABI --------------------------------------------------------- */

/* out0 = in0 * in1: a float64 array of any shape times a float64 scalar. */
int32_t user_scale_typed(const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                         size_t n_outputs, fjffi_context *ctx) {
    if (n_inputs != 2 || n_outputs != 1)
        return fjffi_fail(ctx, 1, "user_scale_typed: expected 2 inputs and 1 output");
    if (inputs[0].dtype != FJFFI_FLOAT64 || inputs[1].dtype != FJFFI_FLOAT64 ||
        outputs[0].dtype != FJFFI_FLOAT64)
        return fjffi_fail(ctx, 2, "user_scale_typed: every buffer must be float64");
    if (inputs[1].ndim != 0) return fjffi_fail(ctx, 3, "user_scale_typed: in1 must be a scalar");
    if (outputs[0].nbytes != inputs[0].nbytes)
        return fjffi_fail(ctx, 4, "user_scale_typed: out0 must have the shape of in0");
    const double *x = inputs[0].data;
    double factor = *(const double *)inputs[1].data;
    double *y = outputs[0].data;
    for (size_t i = 0, n = fjffi_numel(&inputs[0]); i < n; ++i) y[i] = x[i] * factor;
    return 0;
}

/* A kernel whose signature is not an fjffi ABI: for the refusal tests. */
double user_not_a_kernel(double x) { return 2.0 * x; }
