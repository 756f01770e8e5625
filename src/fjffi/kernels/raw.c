/*
 * Raw-ABI (api_version=0) built-in kernels, mirroring the test kernels of
 * FrankenJAX's fj-ffi.  The raw ABI carries no sizes, so each kernel has a
 * fixed contract; the counts are the only thing it can check.
 */
#include "kernels_impl.h"

#include <string.h>

/* noop and fail touch no buffer, so any counts are acceptable. */
int32_t fjffi_kernel_noop(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                          size_t n_outputs) {
    (void)inputs;
    (void)n_inputs;
    (void)outputs;
    (void)n_outputs;
    return 0;
}

int32_t fjffi_kernel_fail(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                          size_t n_outputs) {
    (void)inputs;
    (void)n_inputs;
    (void)outputs;
    (void)n_outputs;
    return FJFFI_RAW_FAIL_CODE;
}

static int32_t check_one_in_one_out(const uint8_t *const *inputs, size_t n_inputs,
                                    uint8_t *const *outputs, size_t n_outputs) {
    if (n_inputs != 1) return FJFFI_RAW_E_NINPUTS;
    if (n_outputs != 1) return FJFFI_RAW_E_NOUTPUTS;
    if (inputs[0] == NULL || outputs[0] == NULL) return FJFFI_RAW_E_NULL;
    return 0;
}

/* The seed's copy moves exactly one f64's worth of bytes. */
int32_t fjffi_kernel_copy(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                          size_t n_outputs) {
    int32_t rc = check_one_in_one_out(inputs, n_inputs, outputs, n_outputs);
    if (rc != 0) return rc;
    memcpy(outputs[0], inputs[0], sizeof(double));
    return 0;
}

int32_t fjffi_kernel_double_f64(const uint8_t *const *inputs, size_t n_inputs,
                                uint8_t *const *outputs, size_t n_outputs) {
    int32_t rc = check_one_in_one_out(inputs, n_inputs, outputs, n_outputs);
    if (rc != 0) return rc;
    /* memcpy: raw buffers carry no alignment promise. */
    double x;
    memcpy(&x, inputs[0], sizeof x);
    x *= 2.0;
    memcpy(outputs[0], &x, sizeof x);
    return 0;
}
