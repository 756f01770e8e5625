"""Python callbacks as targets: purity checks and the io ordering lock.

fjffi._core calls a Callback with read-only views of the inputs and copies
what it returns into the outputs; everything here is plain Python.
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from dataclasses import dataclass

import numpy as np

from fjffi.errors import PurityViolationError

__all__ = ["Callback", "PurityConfig"]

FLAVORS = ("pure", "io")


@dataclass(frozen=True)
class PurityConfig:
    """How pure callbacks are checked.

    verify_idempotency: run a pure callback twice on the same inputs and
    raise PurityViolationError when the results differ in any bit.
    warn_on_pure_failure: warn (RuntimeWarning) when a pure callback raises,
    since that often means it does I/O.
    """

    verify_idempotency: bool = False
    warn_on_pure_failure: bool = False

    @classmethod
    def strict(cls) -> PurityConfig:
        return cls(verify_idempotency=True, warn_on_pure_failure=True)

    @classmethod
    def permissive(cls) -> PurityConfig:
        return cls()


class Callback:
    """A Python callable registered as a target."""

    def __init__(self, name: str, fn, flavor: str, purity: PurityConfig | None):
        if not callable(fn):
            raise TypeError(f"callback {name!r}: {type(fn).__name__} object is not callable")
        if type(flavor) is not str:
            raise TypeError(f"callback {name!r}: flavor must be 'pure' or 'io', not "
                            f"{type(flavor).__name__}")
        if flavor not in FLAVORS:
            raise ValueError(f"callback {name!r}: flavor must be 'pure' or 'io', not {flavor!r}")
        if purity is None:
            purity = PurityConfig.permissive()
        if not isinstance(purity, PurityConfig):
            raise TypeError(f"purity must be a PurityConfig, not {type(purity).__name__}")
        self.name = name
        self.fn = fn
        self.flavor = flavor
        self.purity = purity
        # io callbacks run one at a time, in the order their calls arrive; a
        # reentrant lock lets an io callback call fjffi itself.
        self.lock = threading.RLock() if flavor == "io" else None
        if self.lock is not None:
            IO_CALLBACKS.add(self)

    def __repr__(self):
        return f"Callback({self.name!r}, {self.fn!r}, flavor={self.flavor!r})"

    def __call__(self, views: tuple) -> tuple:
        if self.lock is not None:
            with self.lock:
                return as_results(self.fn(*views))
        try:
            first = as_results(self.fn(*views))
        except Exception:
            if self.purity.warn_on_pure_failure:
                warnings.warn(
                    f"pure callback {self.name!r} raised, which may mean it is not pure "
                    "(I/O, network, file access)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            raise
        if self.purity.verify_idempotency:
            # A snapshot: the second run may reuse and change the arrays the
            # first one returned.
            first = tuple(np.array(r, copy=True) for r in first)
            second = as_results(self.fn(*views))
            difference = first_difference(first, second)
            if difference is not None:
                raise PurityViolationError(
                    self.name,
                    f"callback returned different results on identical inputs ({difference})",
                )
        return first


# Every live io callback, so that a forked child can make its locks anew: a
# lock held by a thread of the parent at fork() has no owner in the child.
IO_CALLBACKS: weakref.WeakSet = weakref.WeakSet()


def _new_io_locks_in_child() -> None:
    for callback in list(IO_CALLBACKS):
        callback.lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_io_locks_in_child)


def as_results(value) -> tuple:
    """A callback's return value as a tuple of arrays, one per output: None
    for no output, a tuple or list for several, anything else for one."""
    if value is None:
        return ()
    if not isinstance(value, (tuple, list)):
        value = (value,)
    return tuple(np.asarray(r) for r in value)


def first_difference(first: tuple, second: tuple) -> str | None:
    """Where two result tuples differ in any bit, or None."""
    if len(first) != len(second):
        return f"{len(first)} results, then {len(second)}"
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"output {i}: {a.dtype}{a.shape}, then {b.dtype}{b.shape}"
        if np.ascontiguousarray(a).tobytes() != np.ascontiguousarray(b).tobytes():
            return f"output {i} differs"
    return None
