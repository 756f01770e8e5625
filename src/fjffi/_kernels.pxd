# The tables of statically linked kernels (fjffi/kernels/kernels.h), for the
# extensions built with fjffi; not installed, not part of the public API.

from libc.stdint cimport int32_t

cdef extern from "kernels.h":
    ctypedef struct fjffi_kernel_entry:
        const char *name
        void *fn
        int32_t api_version
        const char *doc
    const fjffi_kernel_entry fjffi_builtin_kernels[]
    const size_t fjffi_num_builtin_kernels
    const fjffi_kernel_entry fjffi_test_kernels[]
    const size_t fjffi_num_test_kernels
