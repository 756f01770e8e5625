"""The exceptions fjffi raises.

Every one derives from :class:`FfiError` and also from the builtin a Python
user would catch (``except LookupError`` still works for an unknown target),
and carries its fields as attributes.
"""

from __future__ import annotations

__all__ = [
    "FfiError",
    "TargetNotFoundError",
    "DuplicateTargetError",
    "NullPointerError",
    "BufferMismatchError",
    "InvalidBoolByteError",
    "UnsupportedDtypeError",
    "UnrepresentableValueError",
    "LayoutError",
    "CallFailedError",
    "PurityViolationError",
    "BufferOverrunError",
    "TargetCrashedError",
    "TargetTimeoutError",
    "TransformError",
]


class FfiError(Exception):
    """Base class of every fjffi error."""


class TargetNotFoundError(FfiError, LookupError):
    def __init__(self, name: str, available: list[str]):
        self.name = name
        self.available = sorted(available)
        shown = ", ".join(self.available[:20])
        if len(self.available) > 20:
            shown += f", ... ({len(self.available)} in all)"
        super().__init__(f"no target named {name!r} is registered; registered: [{shown}]")

    def __reduce__(self):
        return (type(self), (self.name, self.available), self.__dict__)


class DuplicateTargetError(FfiError, ValueError):
    """detail says what the name holds and what was asked, when known."""

    def __init__(self, name: str, detail: str = ""):
        self.name = name
        self.detail = detail
        because = f": {detail}" if detail else ""
        super().__init__(
            f"a target named {name!r} is already registered{because}; "
            "the first registration stays"
        )

    def __reduce__(self):
        return (type(self), (self.name, self.detail), self.__dict__)


class NullPointerError(FfiError, ValueError):
    def __init__(self, target_name: str):
        self.target_name = target_name
        super().__init__(f"target {target_name!r}: the function pointer is null")

    def __reduce__(self):
        return (type(self), (self.target_name,), self.__dict__)


class BufferMismatchError(FfiError, ValueError):
    """The bytes of a buffer disagree with its shape and dtype.

    ``expected_bytes`` is None when product(shape) * itemsize overflows.
    """

    def __init__(self, buffer_index: int | None, expected_bytes: int | None, actual_bytes: int,
                 detail: str = ""):
        self.buffer_index = buffer_index
        self.expected_bytes = expected_bytes
        self.actual_bytes = actual_bytes
        self.detail = detail
        where = "buffer" if buffer_index is None else f"buffer {buffer_index}"
        if expected_bytes is None:
            what = detail or "product(shape) * itemsize"
            msg = f"{where}: {what} overflows; it has {actual_bytes} bytes"
        else:
            because = f" ({detail})" if detail else ""
            msg = f"{where}: expected {expected_bytes} bytes{because}, got {actual_bytes}"
            if expected_bytes == actual_bytes and detail:
                msg = f"{where}: {detail}"  # the sizes agree; what differs is in detail
        super().__init__(msg)

    def __reduce__(self):
        return (type(self), (self.buffer_index, self.expected_bytes, self.actual_bytes,
                             self.detail), self.__dict__)


class InvalidBoolByteError(FfiError, ValueError):
    def __init__(self, buffer_index: int | None, byte_index: int, value: int,
                 where: str | None = None):
        self.buffer_index = buffer_index
        self.byte_index = byte_index
        self.value = value
        self.where = where
        # where names the buffer in the caller's words ("negate: output 0"),
        # which may count differently from buffer_index (inputs first).
        if where is None:
            name = "buffer" if buffer_index is None else f"buffer {buffer_index}"
        else:
            name = where if buffer_index is None else f"{where} (buffer {buffer_index})"
        super().__init__(
            f"{name}: bool byte {byte_index} is {value}; a bool byte must be 0 or 1"
        )

    def __reduce__(self):
        return (type(self), (self.buffer_index, self.byte_index, self.value, self.where),
                self.__dict__)


class UnsupportedDtypeError(FfiError, TypeError):
    def __init__(self, dtype, detail: str = ""):
        self.dtype = dtype
        self.detail = detail
        msg = f"unsupported dtype {dtype!r}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg + "; fjffi takes " + ", ".join(_dtype_names()))

    def __reduce__(self):
        return (type(self), (self.dtype, self.detail), self.__dict__)


def _dtype_names() -> tuple:
    # fjffi.h's dtype table, read by fjffi._core (which imports this module
    # first, so the import waits until an error is made).
    from fjffi._core import DTYPE_NAMES

    return DTYPE_NAMES


class UnrepresentableValueError(FfiError, OverflowError):
    def __init__(self, dtype: str, value):
        self.dtype = dtype
        self.value = value
        super().__init__(f"{value!r} cannot be represented as {dtype}")

    def __reduce__(self):
        return (type(self), (self.dtype, self.value), self.__dict__)


class LayoutError(FfiError, ValueError):
    """An output that is read-only, not C-contiguous, misaligned, not in
    native byte order, or overlapping another buffer."""


class CallFailedError(FfiError, RuntimeError):
    def __init__(self, target: str, code: int, message: str = ""):
        self.target = target
        self.code = code
        self.message = message
        text = f"target {target!r} failed with code {code}"
        if message:
            text += f": {message}"
        super().__init__(text)

    def __reduce__(self):
        return (type(self), (self.target, self.code, self.message), self.__dict__)


class PurityViolationError(FfiError):
    def __init__(self, callback_name: str, detail: str):
        self.callback_name = callback_name
        self.detail = detail
        super().__init__(f"pure callback {callback_name!r} is not idempotent: {detail}")

    def __reduce__(self):
        return (type(self), (self.callback_name, self.detail), self.__dict__)


class BufferOverrunError(FfiError):
    """A kernel wrote outside an output's declared bytes (guard mode).

    ``buffer_index`` counts inputs first, as every buffer index does;
    ``byte_index`` is the guard byte that changed: 0 is the first byte past
    the end, -1 the last byte before the start.
    """

    def __init__(self, target: str, buffer_index: int, byte_index: int):
        self.target = target
        self.buffer_index = buffer_index
        self.byte_index = byte_index
        if byte_index >= 0:
            where = f"past the end of buffer {buffer_index}: guard byte {byte_index} after"
        else:
            where = f"before the start of buffer {buffer_index}: guard byte {-byte_index} before"
        super().__init__(f"target {target!r} wrote {where} its declared bytes was changed")

    def __reduce__(self):
        return (type(self), (self.target, self.buffer_index, self.byte_index), self.__dict__)


class TargetCrashedError(CallFailedError):
    """The worker process of an isolated target died during a call.

    signal is the signal that killed it (None if it exited); status its exit
    status when it exited.  code is -signal, or the exit status.
    """

    def __init__(self, target: str, signal: int | None, status: int | None = None):
        self.signal = signal
        self.status = status
        if signal is not None:
            code = -signal
            message = f"its worker process was killed by signal {signal} ({signal_name(signal)})"
        else:
            code = status if status is not None else -1
            message = f"its worker process exited with status {status}"
        super().__init__(target, code, message + "; the worker restarts for the next call")

    def __reduce__(self):
        return (type(self), (self.target, self.signal, self.status), self.__dict__)


class TargetTimeoutError(CallFailedError, TimeoutError):
    """A call to an isolated target ran past its timeout; the worker was killed
    (code is -SIGKILL) and restarts for the next call."""

    def __init__(self, target: str, timeout: float):
        self.timeout = timeout
        import signal

        super().__init__(
            target, -int(signal.SIGKILL),
            f"no result within {timeout} s; its worker process was killed and restarts for "
            "the next call",
        )

    def __reduce__(self):
        return (type(self), (self.target, self.timeout), self.__dict__)


def signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


class TransformError(FfiError, NotImplementedError):
    """A JAX transform (grad, jvp, vjp, vmap) of a target that does not
    support it: fjffi targets are opaque to transforms unless they declare
    how they batch."""

    def __init__(self, target: str, transform: str, detail: str = ""):
        self.target = target
        self.transform = transform
        super().__init__(f"fjffi target {target!r} does not support {transform}"
                         + (f": {detail}" if detail else ""))
