"""fjffi: a foreign-function call interface for array kernels.

Register C functions by name, hand them numpy arrays or any buffer as
validated (pointer, shape, dtype) buffers, and call them with the GIL
released, from many threads at once.
"""

import os as _os

from fjffi._callbacks import PurityConfig
from fjffi._core import (
    Buffer,
    Call,
    Registry,
    call,
    default_registry,
    from_buffer,
    guard_enabled,
    set_guard,
    set_stats,
    stats_enabled,
    to_buffer,
)
from fjffi._spec import KernelSpec, spec
from fjffi._targets import Target
from fjffi._version import __version__
from fjffi.errors import (
    BufferMismatchError,
    BufferOverrunError,
    CallFailedError,
    DuplicateTargetError,
    FfiError,
    InvalidBoolByteError,
    LayoutError,
    NullPointerError,
    PurityViolationError,
    TargetCrashedError,
    TargetNotFoundError,
    TargetTimeoutError,
    UnrepresentableValueError,
    UnsupportedDtypeError,
)


def register(name, target, *, api_version=0, gil="auto", thread_safe=True, keep_alive=None,
             writes_all_outputs=False, replace=False):
    """Register a C function in the default registry (see Registry.register)."""
    return default_registry.register(
        name, target, api_version=api_version, gil=gil, thread_safe=thread_safe,
        keep_alive=keep_alive, writes_all_outputs=writes_all_outputs, replace=replace,
    )


def unregister(name):
    """Remove a target from the default registry (see Registry.unregister)."""
    default_registry.unregister(name)


def register_callback(name, fn, *, flavor="pure", purity=None, replace=False):
    """Register a Python callable in the default registry (see Registry.register_callback)."""
    return default_registry.register_callback(name, fn, flavor=flavor, purity=purity,
                                              replace=replace)


def register_isolated(name_or_spec, *, name=None, timeout=None, workers=1, registry=None):
    """Register a kernel to run in a worker process, so that a crash or a
    call past timeout seconds raises TargetCrashedError or TargetTimeoutError
    instead of killing or blocking the caller (see fjffi._isolate)."""
    # Imported here: multiprocessing and shared memory only for those who isolate.
    from fjffi._isolate import register_isolated as register_in_worker

    return register_in_worker(name_or_spec, name=name, timeout=timeout, workers=workers,
                              registry=registry)


def targets():
    """The sorted names registered in the default registry."""
    return default_registry.names()


def get_include():
    """The folder holding fjffi.h, for building kernels against fjffi."""
    return _os.path.join(_os.path.dirname(__file__), "include")


__all__ = [
    "Buffer", "Call", "KernelSpec", "PurityConfig", "Registry", "Target", "call",
    "default_registry", "from_buffer", "get_include", "guard_enabled", "register",
    "register_callback", "register_isolated", "set_guard", "set_stats", "spec", "stats_enabled",
    "targets", "to_buffer", "unregister",
    "__version__",
    "FfiError", "TargetNotFoundError", "DuplicateTargetError", "NullPointerError",
    "BufferMismatchError", "InvalidBoolByteError", "UnsupportedDtypeError",
    "UnrepresentableValueError", "LayoutError", "CallFailedError", "PurityViolationError",
    "BufferOverrunError", "TargetCrashedError", "TargetTimeoutError",
]
