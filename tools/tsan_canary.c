/*
 * A deliberately racy raw-ABI kernel for tools/sanitize.sh tsan: compiled with
 * -fsanitize=thread and called from several threads with the GIL released,
 * it must make TSan report a data race.  If it does not, TSan is not seeing
 * the instrumented code under the stock interpreter, and a clean run of the
 * threaded tests would prove nothing.
 */
#include <stddef.h>
#include <stdint.h>

static int64_t counter;

int32_t canary_kernel(const uint8_t *const *inputs, size_t n_inputs, uint8_t *const *outputs,
                      size_t n_outputs) {
    (void)inputs;
    (void)n_inputs;
    (void)outputs;
    (void)n_outputs;
    counter += 1; /* unsynchronised on purpose */
    return 0;
}
