#include "crash.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

__thread const char *fjffi_running_target __attribute__((tls_model("initial-exec")));

#define NUM_SIGNALS 4
static const int crash_signals[NUM_SIGNALS] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
static struct sigaction previous[NUM_SIGNALS];

static void write_all(const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* Async-signal-safe: write(2) only, then the signal goes on to the handler
 * that was there before. */
static void crash_report(int sig, siginfo_t *info, void *context) {
    static const char head[] = "fjffi: fatal signal in target '";
    const char *name = fjffi_running_target;
    int i = 0;
    (void)context;
    if (name != NULL) {
        write_all(head, sizeof head - 1);
        write_all(name, strlen(name));
        write_all("'\n", 2);
    }
    while (i < NUM_SIGNALS - 1 && crash_signals[i] != sig) ++i;
    sigaction(sig, &previous[i], NULL);
    /* A fault re-executes on return and reaches the previous handler; a
     * signal sent with kill() must be raised again. */
    if (info == NULL || info->si_code <= 0) raise(sig);
}

int fjffi_install_crash_report(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = crash_report;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (int i = 0; i < NUM_SIGNALS; ++i)
        if (sigaction(crash_signals[i], &action, &previous[i]) != 0) return -1;
    return 0;
}
