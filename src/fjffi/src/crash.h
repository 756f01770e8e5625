/*
 * Crash report: a kernel that crashes takes the process down
 * (docs/design.md, threat T7); fjffi says on stderr which target it was.
 */
#ifndef FJFFI_CRASH_H
#define FJFFI_CRASH_H

/* The target this thread is running, or NULL: set around every kernel call. */
extern __thread const char *fjffi_running_target __attribute__((tls_model("initial-exec")));

/* Install the handlers for SIGSEGV, SIGBUS, SIGILL and SIGFPE, chained to
 * the ones already there (faulthandler's, or the default).  0, or -1. */
int fjffi_install_crash_report(void);

#endif
