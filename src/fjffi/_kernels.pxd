# The table of built-in kernels (fjffi/kernels/kernels.h) and the test-only
# kernels (kernels/testing.h), for the extensions built with fjffi; not
# installed, not part of the public API.

from libc.stdint cimport int32_t, int64_t, uint64_t

cdef extern from "kernels.h":
    ctypedef struct fjffi_raw_contract:
        size_t n_inputs
        size_t n_outputs
        int32_t dtype
        size_t min_nbytes
        size_t max_nbytes
    ctypedef struct fjffi_kernel_entry:
        const char *name
        void *fn
        int32_t api_version
        const char *doc
        const fjffi_raw_contract *contract
        int32_t writes_all_outputs
    const fjffi_kernel_entry fjffi_builtin_kernels[]
    const size_t fjffi_num_builtin_kernels

cdef extern from "testing.h":
    const fjffi_kernel_entry fjffi_test_kernels[]
    const size_t fjffi_num_test_kernels
    uint64_t fjffi_testing_call_count()
    int64_t fjffi_testing_max_in_flight()
    void fjffi_testing_reset_in_flight()
