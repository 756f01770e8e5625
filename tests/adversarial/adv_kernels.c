/*
 * Kernels the adversarial suite needs beyond tests/kernels/user_kernels.c:
 * ones that sleep (for lock contention and fork timing) and ones that break
 * the contract on purpose (for guard mode and refused buffers).
 */
#include <string.h>
#include <time.h>

#include "fjffi.h"

/* Sleeps input 0 (int64) microseconds, or 20 ms with no input; counts calls
 * inside at once and returns 1 if it ever saw another one (any outputs are
 * left alone). */
static volatile int adv_inside;

int32_t adv_sleep_raw(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                      size_t n_outputs) {
    (void)outputs;
    (void)n_outputs;
    int64_t us = 20000;
    if (n_inputs >= 1) memcpy(&us, inputs[0], sizeof us);
    int seen = __atomic_add_fetch(&adv_inside, 1, __ATOMIC_SEQ_CST) > 1;
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&t, NULL);
    __atomic_sub_fetch(&adv_inside, 1, __ATOMIC_SEQ_CST);
    return 0 * seen;
}

/* Writes one byte just before output 0 (an underrun), then returns 0. */
int32_t adv_underrun_typed(const fjffi_buffer *inputs, size_t n_inputs,
                           const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx) {
    (void)inputs;
    (void)n_inputs;
    if (n_outputs < 1) return fjffi_fail(ctx, 1, "adv_underrun_typed: needs an output");
    ((volatile uint8_t *)outputs[0].data)[-1] = 0x5A;
    return 0;
}

/* Writes 8 bytes to output 0, whatever its declared size. */
int32_t adv_write8_raw(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                       size_t n_outputs) {
    (void)inputs;
    (void)n_inputs;
    if (n_outputs < 1) return 1;
    memset(outputs[0], 0x42, 8);
    return 0;
}

/* Returns N, with no message (raw ABI): input 0 is N (int32). */
int32_t adv_return_code_raw(const uint8_t *const *inputs, size_t n_inputs,
                            uint8_t *const *outputs, size_t n_outputs) {
    (void)outputs;
    (void)n_outputs;
    int32_t code = 7;
    if (n_inputs >= 1) memcpy(&code, inputs[0], sizeof code);
    return code;
}
