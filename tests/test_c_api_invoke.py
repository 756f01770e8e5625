"""fjffi_c_api.invoke (fjffi.h): the call without the GIL or any Python
object, as a foreign caller (an XLA handler, numba) makes it.  Reached here
through ctypes, which releases the GIL around the call."""

import ctypes

import numpy as np
import pytest

import fjffi
from fjffi import _testing


class Descriptor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("nbytes", ctypes.c_size_t),
                ("dtype", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64))]


INVOKE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                          ctypes.POINTER(Descriptor), ctypes.c_size_t,
                          ctypes.POINTER(Descriptor), ctypes.c_size_t,
                          ctypes.POINTER(ctypes.c_int32), ctypes.c_char_p, ctypes.c_size_t)


class CApi(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("size", ctypes.c_uint32),
                ("register_function", ctypes.c_void_p), ("invoke", INVOKE)]


def c_api():
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    pointer = get(fjffi._core._C_API, b"fjffi._core._C_API")
    return ctypes.cast(pointer, ctypes.POINTER(CApi)).contents


CODES = {name: code for code, name in enumerate(fjffi._core.DTYPE_NAMES)}


def describe(arr, keep):
    shape = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
    keep.append(shape)
    return Descriptor(arr.ctypes.data, arr.nbytes, CODES[arr.dtype.name], arr.ndim, shape)


def invoke(name, inputs, outputs, registry=None):
    """(status, code, message) of one invoke."""
    keep = []
    ins = (Descriptor * max(len(inputs), 1))(*[describe(a, keep) for a in inputs])
    outs = (Descriptor * max(len(outputs), 1))(*[describe(a, keep) for a in outputs])
    code = ctypes.c_int32(12345)
    message = ctypes.create_string_buffer(256)
    raw = name.encode()
    status = c_api().invoke(None if registry is None else id(registry), raw, len(raw), ins,
                            len(inputs), outs, len(outputs), ctypes.byref(code), message, 256)
    return status, code.value, message.value.decode()


def test_version_and_size():
    api = c_api()
    assert api.version == 2 and api.size == ctypes.sizeof(CApi)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int32"])
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 4)])
def test_negate_matches_numpy(dtype, shape):
    x = np.asarray(np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape) - 3)
    y = np.full(shape, 9, dtype)
    assert invoke("negate", [x], [y]) == (0, 0, "")
    assert np.array_equal(y, -x)


def test_kernel_failure_zeroes_outputs_and_says_why():
    y = np.full(3, 7.0)
    status, code, message = invoke("negate", [np.zeros(4)], [y])
    assert (status, code) == (1, 4) and "shape" in message
    assert not y.any()
    y[:] = 7
    assert invoke("fail", [], [y]) == (1, -42, "extern function returned code -42")
    assert not y.any()


@pytest.mark.parametrize("case, words", [
    ("unknown", "no target named 'nope'"),
    ("nbytes", "nbytes"),
    ("overlap", "overlaps"),
    ("contract", "needs"),
    ("bool", "bool byte"),
])
def test_refusals_run_nothing(case, words):
    x, y = np.arange(4.0), np.full(4, 7.0)
    keep = []
    if case == "unknown":
        result = invoke("nope", [x], [y])
    elif case == "overlap":
        result = invoke("negate", [y], [y])
    elif case == "contract":
        result = invoke("copy", [np.zeros(8, np.uint8)], [y.view(np.uint8)[:1]])
    elif case == "bool":
        result = invoke("noop", [np.array([0, 2], np.uint8).view(np.bool_)], [y])
    else:
        d = describe(x, keep)
        d.nbytes = 3
        ins = (Descriptor * 1)(d)
        outs = (Descriptor * 1)(describe(y, keep))
        code, message = ctypes.c_int32(0), ctypes.create_string_buffer(256)
        status = c_api().invoke(None, b"negate", 6, ins, 1, outs, 1, ctypes.byref(code),
                                message, 256)
        result = (status, code.value, message.value.decode())
    status, _, message = result
    assert status == -1 and words in message, message
    assert (y == 7).all()


def test_targets_that_need_the_gil_are_refused():
    reg = fjffi.Registry()
    reg.register_callback("cb", lambda x: x)
    capsule, api_version = _testing.kernels()["write_one_byte_ok"]
    reg.register("held", capsule, api_version=api_version, gil="hold")
    y = np.zeros(2)
    for name, words in (("cb", "Python callback"), ("held", 'gil="hold"')):
        status, _, message = invoke(name, [np.zeros(2)], [y], registry=reg)
        assert status == -1 and words in message
    assert not y.any()


def test_a_private_registry_and_a_wrong_object():
    reg = _testing.registry(w="write_one_byte_ok")
    y = np.zeros(2, np.uint8)
    assert invoke("w", [], [y], registry=reg) == (0, 0, "")
    assert y[0] == 0xAB
    assert invoke("w", [], [y])[0] == -1  # not in the default registry
    status, _, message = invoke("w", [], [y], registry=[])
    assert status == -1 and "not a fjffi.Registry" in message
