"""Target records, and the foreign function sources fjffi accepts.

Nothing here touches memory: a source is turned into an integer address
and the object that owns the code, and fjffi._core does the rest.  Where a
source declares a C signature (ctypes ``restype``/``argtypes``, cffi
``ffi.typeof``), it is checked against the signature of the chosen
api_version first (docs/design.md, threat T3: type confusion).
"""

from __future__ import annotations

import ctypes
import numbers
import sys
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SIGNATURES", "Target", "foreign_address"]

KINDS = ("builtin", "foreign", "cython", "callback")

# The C signature of each api_version, as fjffi.h declares it.
SIGNATURES = {
    0: "int32_t (const uint8_t *const *inputs, size_t n_inputs, "
       "uint8_t *const *outputs, size_t n_outputs)",
    1: "int32_t (const fjffi_buffer *inputs, size_t n_inputs, "
       "const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx)",
}
# The same, one letter per argument: p a pointer, n a size_t.
ARG_KINDS = {0: "pnpn", 1: "pnpnp"}


@dataclass(frozen=True)
class Target:
    """What a registry holds for one name (``Registry.get(name)``)."""

    name: str
    kind: str  # one of KINDS
    api_version: int | None  # 0 raw, 1 typed; None for a Python callback
    gil: str  # "release", "hold" or "auto"
    thread_safe: bool
    flavor: str | None = None  # "pure" or "io" for a callback
    doc: str = ""
    writes_all_outputs: bool = False  # outputs not zeroed before a call
    # The object that owns the code (capsule, ctypes function, cffi lib,
    # callable): held here so the code stays loaded while registered.
    owner: Any = field(default=None, repr=False, compare=False)
    # Anything else the caller asked the registry to hold (register's
    # keep_alive=): the lib of an ffi.dlopen function, whose cdata does not
    # keep the library loaded.
    keep_alive: Any = field(default=None, repr=False, compare=False)


def foreign_address(name: str, source: Any, api_version: int,
                    follow_ctypes: bool = True) -> tuple[int, str, Any]:
    """(address, kind, owner) of a foreign function source.

    Accepted: a ctypes function pointer (from a CDLL, or a CFUNCTYPE
    object), a cffi function pointer (``lib.fn`` of ``ffi.dlopen``,
    ``ffi.addressof(lib, "fn")`` of a compiled module, ``ffi.cast``), or an
    object exposing a ctypes one as ``.ctypes`` (a numba cfunc).  PyCapsules
    are handled by the caller.  A null pointer gives address 0, which the
    caller refuses with NullPointerError.

    The owner returned holds the code loaded where the source allows: a
    ctypes function holds its CDLL, lib.fn of a compiled cffi module holds
    the module.  A cdata of ``ffi.dlopen`` does not hold its library: the
    caller's keep_alive= is for that lib.
    """
    if api_version not in SIGNATURES:
        raise ValueError(f"api_version must be 0 (raw) or 1 (typed), not {api_version!r}")
    if source is None:
        raise TypeError(f"target {name!r}: got None instead of a function pointer")
    if isinstance(source, numbers.Integral):
        raise TypeError(
            f"target {name!r}: a bare integer address is refused, since nothing would keep the "
            "code loaded or say its signature; wrap it, e.g. "
            "ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t, "
            "ctypes.c_void_p, ctypes.c_size_t)(address), or pass a PyCapsule"
        )
    if isinstance(source, ctypes._CFuncPtr):
        check_ctypes_signature(name, source, api_version)
        # The function object of a CDLL holds the CDLL (its _objects), so
        # holding the function holds the library.
        return ctypes.cast(source, ctypes.c_void_p).value or 0, "foreign", source
    if type(source).__module__ == "_cffi_backend":
        return cffi_address(name, source, api_version)
    if is_cffi_builtin(source):
        return cffi_builtin_address(name, source, api_version)
    inner = getattr(source, "ctypes", None) if follow_ctypes else None
    if inner is not None:
        # One level only: `.ctypes` must be the function pointer itself.
        address, kind, _ = foreign_address(name, inner, api_version, follow_ctypes=False)
        return address, kind, source
    if callable(source):
        raise TypeError(
            f"target {name!r}: {type(source).__name__} is a Python callable, not a C function "
            "pointer; register Python code with register_callback(name, fn, flavor='pure' or 'io')"
        )
    raise TypeError(
        f"target {name!r}: cannot register a {type(source).__name__}; fjffi takes a PyCapsule "
        "holding a function pointer, a ctypes or cffi function pointer, or an object with a "
        "`.ctypes` function pointer (Python callables go through register_callback)"
    )


def signature_mismatch(name: str, declared: str, api_version: int) -> TypeError:
    return TypeError(
        f"target {name!r}: its declared signature {declared} does not match "
        f"api_version={api_version}, which needs {SIGNATURES[api_version]}"
    )


# --- ctypes -----------------------------------------------------------------

def ctypes_arg_kind(t) -> str:
    """'p' for a pointer, 'n' for a size_t-sized unsigned int, 'i' for a
    32-bit signed int, '?' for anything else."""
    if isinstance(t, type) and (issubclass(t, ctypes._Pointer) or issubclass(t, ctypes.c_void_p)):
        return "p"
    if isinstance(t, type) and issubclass(t, ctypes._SimpleCData):
        size = ctypes.sizeof(t)
        if t._type_ in "BHILQ" and size == ctypes.sizeof(ctypes.c_size_t):
            return "n"
        if t._type_ in "bhilq" and size == 4:
            return "i"
    return "?"


def ctypes_name(t) -> str:
    return "void" if t is None else getattr(t, "__name__", repr(t))


def check_ctypes_signature(name: str, fn, api_version: int) -> None:
    """TypeError unless fn's declared restype and argtypes fit api_version.

    Undeclared argtypes (None) cannot be checked and are taken on trust.
    """
    restype, argtypes = fn.restype, fn.argtypes
    ok = ctypes_arg_kind(restype) == "i"
    if argtypes is not None:
        ok = ok and "".join(ctypes_arg_kind(t) for t in argtypes) == ARG_KINDS[api_version]
    if not ok:
        args = "..." if argtypes is None else ", ".join(ctypes_name(t) for t in argtypes)
        raise signature_mismatch(name, f"{ctypes_name(restype)} ({args}) (ctypes)", api_version)


# --- cffi -------------------------------------------------------------------

CFFI_INT32 = ("int", "int32_t")
CFFI_SIZE = ("size_t", "uintptr_t", "unsigned long", "unsigned long long", "uint64_t")


def is_cffi_builtin(source) -> bool:
    """A function of a compiled (API-mode) cffi module: lib.fn."""
    owner = getattr(source, "__self__", None)
    return type(source) is type(len) and type(owner).__module__ == "_cffi_backend"


def cffi_builtin_address(name: str, source, api_version: int) -> tuple[int, str, Any]:
    """lib.fn of an API-mode module is a Python builtin; its C address is
    ffi.addressof(lib, "fn") with the module's own ffi."""
    ffi = getattr(sys.modules.get(source.__module__), "ffi", None)
    if type(ffi).__module__ != "_cffi_backend":
        raise TypeError(
            f"target {name!r}: {source.__name__} is the Python wrapper of a cffi function; "
            f"pass its C function pointer: ffi.addressof(lib, {source.__name__!r})"
        )
    pointer = ffi.addressof(source.__self__, source.__name__)
    address, kind, _ = cffi_address(name, pointer, api_version)
    return address, kind, source  # source.__self__ is the lib


def cffi_address(name: str, source, api_version: int) -> tuple[int, str, Any]:
    import cffi

    ffi = cffi.FFI()  # any FFI reads any cdata: the backend is shared
    ctype = ffi.typeof(source)
    if ctype.kind != "function":
        raise TypeError(
            f"target {name!r}: a cffi {ctype.cname!r} is not a function pointer; declare the "
            "function with ffi.cdef and pass lib.fn, or ffi.cast it to the function pointer type"
        )
    kinds = ARG_KINDS[api_version]
    ok = (ctype.result.kind == "primitive" and ctype.result.cname in CFFI_INT32
          and not ctype.ellipsis and len(ctype.args) == len(kinds))
    for arg, kind in zip(ctype.args, kinds, strict=True) if ok else ():
        if kind == "p":
            ok = ok and arg.kind == "pointer"
        else:
            ok = ok and (arg.kind == "primitive" and arg.cname in CFFI_SIZE
                         and ffi.sizeof(arg) == ffi.sizeof("size_t"))
    if not ok:
        raise signature_mismatch(name, f"{ctype.cname} (cffi)", api_version)
    return int(ffi.cast("uintptr_t", source)), "foreign", source
