# cython: language_level=3
"""Test-only kernels, registered nowhere: tests register them into their own
Registry.  Shipped in the wheel so the tests can run against the install."""

from cpython.pycapsule cimport PyCapsule_New

from fjffi._kernels cimport (
    fjffi_num_test_kernels, fjffi_test_kernels, fjffi_testing_call_count,
    fjffi_testing_max_in_flight, fjffi_testing_reset_in_flight,
)


def call_count():
    """How many times the count_calls kernel has run in this process."""
    return fjffi_testing_call_count()


def max_in_flight():
    """The most static_scratch calls seen running at once since the last reset."""
    return fjffi_testing_max_in_flight()


def reset_in_flight():
    fjffi_testing_reset_in_flight()


def kernels():
    """{name: (capsule, api_version)} for every test-only kernel."""
    out = {}
    for i in range(fjffi_num_test_kernels):
        entry = &fjffi_test_kernels[i]
        out[entry.name.decode()] = (PyCapsule_New(entry.fn, b"fjffi.kernel", NULL),
                                    entry.api_version)
    return out


def registry(**names):
    """A new fjffi.Registry holding every test-only kernel under its own name,
    or, given names, only those: ``registry(alias="raw_noop")``."""
    from fjffi import Registry
    table = kernels()
    reg = Registry()
    for name, kernel in (names or {k: k for k in table}).items():
        capsule, api_version = table[kernel]
        reg.register(name, capsule, api_version=api_version)
    return reg
