"""Target records, and the foreign function sources fjffi accepts.

Nothing here touches memory: a source is turned into an integer address
and the object that owns the code, and fjffi._core does the rest.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Target", "foreign_address"]

KINDS = ("builtin", "foreign", "cython", "callback")


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
    # The object that owns the code (capsule, ctypes function, cffi lib,
    # callable): held here so the code stays loaded while registered.
    owner: Any = field(default=None, repr=False, compare=False)


def foreign_address(name: str, source: Any, api_version: int) -> tuple[int, str, Any]:
    """(address, kind, owner) of a foreign function source.

    Accepted: a ctypes function pointer, a cffi function pointer, or an
    object exposing one as ``.ctypes``.  PyCapsules are handled by the caller.
    """
    if isinstance(source, bool) or isinstance(source, int):
        raise TypeError(
            f"target {name!r}: a bare integer address is refused, since nothing would keep the "
            "code loaded or say its signature; wrap it, e.g. "
            "ctypes.CFUNCTYPE(ctypes.c_int32, ...)(address), or pass a PyCapsule"
        )
    if isinstance(source, ctypes._CFuncPtr):
        address = ctypes.cast(source, ctypes.c_void_p).value or 0
        return address, "foreign", source
    inner = getattr(source, "ctypes", None)
    if inner is not None and inner is not source:
        address, kind, _ = foreign_address(name, inner, api_version)
        return address, kind, source
    raise TypeError(
        f"target {name!r}: cannot register a {type(source).__name__}; fjffi takes a PyCapsule "
        "holding a function pointer, a ctypes or cffi function pointer, or an object with a "
        "`.ctypes` function pointer (Python callables go through register_callback)"
    )
