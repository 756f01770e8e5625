/*
 * Test-only kernels: each misbehaves, or behaves, in one specific way that
 * the tests need to provoke.  fjffi._testing exposes them; no public
 * registry holds them.
 */
#ifndef FJFFI_TESTING_H
#define FJFFI_TESTING_H

#include "kernels.h"

extern const fjffi_kernel_entry fjffi_test_kernels[];
extern const size_t fjffi_num_test_kernels;

/* How many times count_calls has run in this process. */
uint64_t fjffi_testing_call_count(void);
/* The most static_scratch calls seen running at once since the last reset. */
int64_t fjffi_testing_max_in_flight(void);
void fjffi_testing_reset_in_flight(void);

#endif
