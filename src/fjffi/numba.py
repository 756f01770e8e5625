"""Write fjffi kernels with numba, and call fjffi targets from numba.

A ``@numba.cfunc`` of either ABI is a few lines::

    import numba, numpy as np, fjffi, fjffi.numba as fn

    @numba.cfunc(fn.typed_signature)
    def scale(inputs, n_inputs, outputs, n_outputs, ctx):
        if n_inputs != 1 or n_outputs != 1:
            return fn.fail(ctx, 1, "scale: 1 input, 1 output")
        x = fn.array(inputs, 0, np.float64)
        y = fn.array(outputs, 0, np.float64)
        if x.size != y.size:
            return fn.fail(ctx, 2, "scale: sizes differ")
        for i in range(x.size):
            y[i] = 2.0 * x[i]
        return 0

    fjffi.register("scale", scale, api_version=1)

``typed_signature`` / ``raw_signature``: the numba signatures of the two
ABIs of fjffi.h.  ``buffer_type``: the numba record of ``fjffi_buffer``,
with ``buffers(ptr, n)`` giving the descriptors as a record array and
``data``, ``shape``, ``numel`` and ``array`` reading one; ``FLOAT64``,
``INT32``, ... are fjffi's dtype codes, to check a descriptor's ``dtype``.  ``fail(ctx, code,
message)`` sets the failure message and returns code.  ``raw_array(ptrs,
i, n, dtype)`` views buffer i of the raw ABI as n elements.

``invoke(name, inputs, outputs)`` (inside ``@numba.njit``) calls a target of
fjffi.default_registry through fjffi's C API, with the contract of
``fjffi.Call.invoke`` and no GIL: inputs and outputs are tuples of
C-contiguous numpy arrays.  It returns 0, or a non-zero status (see
``invoke_status``); targets that need the GIL (callbacks, gil="hold") are
refused.

This module imports without numba; using it then says how to install it.
"""

from __future__ import annotations

import ctypes

import numpy as np

import fjffi

try:
    import numba
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic
except ImportError:  # fjffi works without numba; only this module needs it
    numba = None

__all__ = ["typed_signature", "raw_signature", "buffer_dtype", "buffer_type", "buffers",
           "data", "shape", "numel", "array", "raw_array", "fail", "invoke", "pointer",
           "invoke_status", "target_name", "message_text", "MESSAGE_SIZE", "DTYPE_CODES"] + [
               name.upper() for name in fjffi._core.DTYPE_NAMES]

MESSAGE_SIZE = 256  # FJFFI_MESSAGE_SIZE
# fjffi.h's dtype codes, by numpy name.
DTYPE_CODES = {name: code for code, name in enumerate(fjffi._core.DTYPE_NAMES)}
# The same as module constants, which numba code can read (FLOAT64, BOOL, ...).
globals().update({name.upper(): code for name, code in DTYPE_CODES.items()})

# fjffi_buffer, laid out as C lays it out (align=True).
buffer_dtype = np.dtype([("data", np.uintp), ("nbytes", np.uintp), ("dtype", np.int32),
                         ("ndim", np.int32), ("shape", np.uintp)], align=True)


def __getattr__(name):
    if numba is None:
        raise ImportError(f"fjffi.numba.{name} needs numba: pip install numba")
    raise AttributeError(f"module 'fjffi.numba' has no attribute {name!r}")


if numba is not None:
    buffer_type = numba.from_dtype(buffer_dtype)
    _uint8_pp = types.CPointer(types.CPointer(types.uint8))
    raw_signature = types.int32(_uint8_pp, types.uintp, _uint8_pp, types.uintp)
    # fjffi_context is its message: a pointer to it is a pointer to its bytes.
    typed_signature = types.int32(types.CPointer(buffer_type), types.uintp,
                                  types.CPointer(buffer_type), types.uintp,
                                  types.CPointer(types.uint8))

    @intrinsic
    def _voidptr(typingctx, address):
        """An integer address as a void pointer (numba has no cast for it)."""
        if not isinstance(address, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)

        return types.voidptr(address), codegen

    # Public: numba.carray(pointer(data(ptr, i)), n, dtype) views raw bytes.
    pointer = _voidptr

    @numba.njit(inline="always")
    def buffers(ptr, n):
        """The n descriptors at ptr (a kernel's inputs or outputs) as a
        record array: buffers(inputs, n_inputs)[i].ndim."""
        return numba.carray(ptr, n)

    @numba.njit(inline="always")
    def data(ptr, i):
        """The address of buffer i's data (an integer)."""
        return numba.carray(ptr, i + 1)[i].data

    @numba.njit(inline="always")
    def shape(ptr, i):
        """Buffer i's shape, an int64 array of ndim entries."""
        b = numba.carray(ptr, i + 1)[i]
        return numba.carray(_voidptr(b.shape), b.ndim, np.int64)

    @numba.njit(inline="always")
    def numel(ptr, i):
        """Buffer i's number of elements (its shape's product)."""
        b = numba.carray(ptr, i + 1)[i]
        dims = numba.carray(_voidptr(b.shape), b.ndim, np.int64)
        n = 1
        for d in dims:
            n *= d
        return n

    @numba.njit(inline="always")
    def array(ptr, i, dtype):
        """Buffer i as a flat array of dtype (numel elements); the kernel
        must check that the descriptor's dtype code is the one it reads
        (buffers(ptr, n)[i].dtype == FLOAT64, ...)."""
        b = numba.carray(ptr, i + 1)[i]
        dims = numba.carray(_voidptr(b.shape), b.ndim, np.int64)
        n = 1
        for d in dims:
            n *= d
        return numba.carray(_voidptr(b.data), n, dtype)

    @numba.njit(inline="always")
    def raw_array(ptrs, i, n, dtype):
        """Buffer i of the raw ABI (inputs or outputs) as n elements of dtype."""
        p = numba.carray(ptrs, i + 1)[i]
        return numba.carray(_voidptr(_address(p)), n, dtype)

    @intrinsic
    def _address(typingctx, ptr):
        if not isinstance(ptr, types.CPointer):
            return None

        def codegen(context, builder, signature, args):
            return builder.ptrtoint(args[0], cgutils.intp_t)

        return types.intp(ptr), codegen

    @numba.njit
    def fail(ctx, code, message):
        """Set the message fjffi.CallFailedError carries (ASCII; longer than
        MESSAGE_SIZE - 1 bytes is cut) and return code."""
        out = numba.carray(ctx, MESSAGE_SIZE)
        n = min(len(message), MESSAGE_SIZE - 1)
        for k in range(n):
            c = ord(message[k])
            out[k] = c if c < 128 else 63  # '?' for what ASCII cannot say
        out[n] = 0
        return np.int32(code)

    # --- calling a registered target from @njit code ------------------------

    BUFFER_SIZE = buffer_dtype.itemsize
    MAX_NDIM = 32  # per buffer, in an @njit invoke (fjffi allows 64 elsewhere)

    def _c_api_invoke():
        """The C API's invoke as a ctypes function numba can call."""
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        table = get(fjffi._core._C_API, b"fjffi._core._C_API")
        version, size = ctypes.c_uint32.from_address(table), ctypes.c_uint32.from_address(table + 4)
        if version.value < 2 or size.value < 8 + 2 * ctypes.sizeof(ctypes.c_void_p):
            raise ImportError("this fjffi's C API has no invoke (version 2 or later needed)")
        address = ctypes.c_void_p.from_address(table + 8 + ctypes.sizeof(ctypes.c_void_p)).value
        proto = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                                 ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                 ctypes.c_void_p, ctypes.c_size_t)
        return proto(address)

    _invoke_c = _c_api_invoke()

    @intrinsic
    def _keep_alive(typingctx, array):
        """A use of array that nothing optimises away: numba frees an array
        after its last use, and a pointer taken from .ctypes.data is none."""
        def codegen(context, builder, signature, args):
            return context.get_dummy_value()

        return types.none(array), codegen

    def _code_of(arr):
        pass

    @numba.extending.overload(_code_of)
    def _code_of_impl(arr):
        if not isinstance(arr, types.Array):
            raise numba.core.errors.TypingError(
                f"fjffi.numba.invoke takes numpy arrays, not {arr}")
        if arr.layout != "C":
            raise numba.core.errors.TypingError(
                f"fjffi.numba.invoke needs C-contiguous arrays, not layout {arr.layout!r}")
        if arr.ndim > MAX_NDIM:
            raise numba.core.errors.TypingError(
                f"fjffi.numba.invoke takes arrays of at most {MAX_NDIM} dimensions")
        name = numba.np.numpy_support.as_dtype(arr.dtype).name
        if name not in DTYPE_CODES:
            raise numba.core.errors.TypingError(f"fjffi has no dtype {name}")
        code = np.int32(DTYPE_CODES[name])
        return lambda arr: code

    @numba.njit(inline="always")
    def _describe(arr, descs, shapes, k):
        descs[k].data = arr.ctypes.data
        descs[k].nbytes = arr.nbytes
        descs[k].dtype = _code_of(arr)
        descs[k].ndim = arr.ndim
        for d in range(arr.ndim):
            shapes[k, d] = arr.shape[d]
        descs[k].shape = shapes.ctypes.data + k * MAX_NDIM * 8

    @numba.njit
    def invoke(name, inputs, outputs, message):
        """Call target name (from target_name) of fjffi.default_registry on
        tuples of C-contiguous arrays, without the GIL.  Returns (status,
        code): status 0 on success, invoke_status["failed"] when the kernel
        failed with code, invoke_status["refused"] when fjffi refused the
        call; message (a uint8 array of MESSAGE_SIZE) gets the text."""
        n_in, n_out = len(inputs), len(outputs)
        descs = np.empty(max(n_in + n_out, 1), buffer_dtype)
        shapes = np.zeros((max(n_in + n_out, 1), MAX_NDIM), np.int64)
        k = 0
        for a in numba.literal_unroll(inputs):
            _describe(a, descs, shapes, k)
            k += 1
        for a in numba.literal_unroll(outputs):
            _describe(a, descs, shapes, k)
            k += 1
        code = np.zeros(1, np.int32)
        status = _invoke_c(_voidptr(0), _voidptr(name.ctypes.data), name.size,
                           _voidptr(descs.ctypes.data), n_in,
                           _voidptr(descs.ctypes.data + n_in * BUFFER_SIZE), n_out,
                           _voidptr(code.ctypes.data), _voidptr(message.ctypes.data),
                           message.size)
        # The C call saw only pointers: the arrays must live until it returns.
        _keep_alive(descs)
        _keep_alive(shapes)
        return status, code[0]


invoke_status = {"ok": 0, "refused": -1, "failed": 1}


def target_name(name):
    """A target's name as the uint8 array that invoke takes."""
    return np.frombuffer(name.encode("utf-8"), np.uint8).copy()


def message_text(message):
    """The text of invoke's message array."""
    raw = bytes(message)
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
