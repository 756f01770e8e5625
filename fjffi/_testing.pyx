# cython: language_level=3
"""Test-only kernels, registered nowhere: tests register them into their own
Registry.  Shipped in the wheel so the tests can run against the install."""

from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport int32_t

cdef extern from "kernels.h":
    ctypedef struct fjffi_kernel_entry:
        const char *name
        void *fn
        int32_t api_version
        const char *doc
    const fjffi_kernel_entry fjffi_test_kernels[]
    const size_t fjffi_num_test_kernels


def kernels():
    """{name: (capsule, api_version)} for every test-only kernel."""
    out = {}
    for i in range(fjffi_num_test_kernels):
        entry = &fjffi_test_kernels[i]
        out[entry.name.decode()] = (PyCapsule_New(entry.fn, b"fjffi.kernel", NULL),
                                    entry.api_version)
    return out


def registry():
    """A new fjffi.Registry holding every test-only kernel."""
    from fjffi import Registry
    reg = Registry()
    for name, (capsule, api_version) in kernels().items():
        reg.register(name, capsule, api_version=api_version)
    return reg
