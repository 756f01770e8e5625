"""End to end: register, marshal, call, unmarshal, as a user does.

Ported from fj-ffi's e2e_p2c007.rs and the integration tests of its lib.rs.
"""

import math
import os

import numpy as np
import pytest

import fjffi
from fjffi import _testing

KERNELS = _testing.kernels()


def test_e2e_ffi_basic_call():
    reg = _testing.registry(add="add_f64")
    out = fjffi.Buffer.zeros((), "float64")
    fjffi.Call("add", reg).invoke([fjffi.to_buffer(3.0), fjffi.to_buffer(4.0)], [out])
    assert fjffi.from_buffer(out)[()] == 7.0


def test_e2e_ffi_buffer_lifecycle():
    inp = fjffi.to_buffer(math.e)
    assert (inp.nbytes, inp.dtype) == (8, np.float64)
    out = fjffi.Buffer.zeros((), "float64")
    fjffi.Call("copy").invoke([inp], [out])
    assert fjffi.from_buffer(out)[()] == math.e
    assert out.tobytes() == inp.tobytes()


def test_e2e_ffi_error_propagation():
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("fail").invoke([], [])
    err = info.value
    assert (err.target, err.code) == ("fail", -42)
    assert "fail" in str(err) and "-42" in str(err)


def test_e2e_ffi_custom_op_dispatch():
    reg = _testing.registry(square_vec="square4")
    out = fjffi.Buffer.zeros((4,), "float64")
    fjffi.Call("square_vec", reg).invoke([fjffi.to_buffer(np.array([2.0, 3.0, 4.0, 5.0]))], [out])
    assert fjffi.from_buffer(out).tolist() == [4.0, 9.0, 16.0, 25.0]
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("square_vec", reg).invoke([], [out])
    assert info.value.code == 1


def test_e2e_ffi_adversarial_clean_errors():
    reg = fjffi.Registry()
    with pytest.raises(fjffi.TargetNotFoundError):
        fjffi.Call("nonexistent", reg).invoke([], [])
    reg.register("dup", KERNELS["raw_noop"][0])
    with pytest.raises(fjffi.DuplicateTargetError):
        reg.register("dup", KERNELS["raw_noop"][0])
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(5), (2,), "float64")
    assert (info.value.expected_bytes, info.value.actual_bytes) == (16, 5)
    assert fjffi.Buffer(bytearray(8), (), "float64").nbytes == 8
    assert fjffi.Buffer(bytearray(0), (0,), "float64").nbytes == 0


def test_e2e_ffi_callback_pipeline():
    reg = fjffi.Registry()

    def add_one(x):
        if x.dtype != np.int64 or x.shape != ():
            raise fjffi.CallFailedError("add_one", 1, "expected i64 scalar")
        return x + 1

    calls = []
    reg.register_callback("add_one", add_one, flavor="pure")
    reg.register_callback("counter", lambda: calls.append(1), flavor="io")
    out = np.zeros((), np.int64)
    fjffi.Call("add_one", reg).invoke([np.int64(41)], [out])
    assert out == 42
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("add_one", reg).invoke([1.5], [out])
    assert (info.value.code, info.value.message) == (1, "expected i64 scalar")
    for _ in range(3):
        fjffi.Call("counter", reg).invoke([], [])
    assert len(calls) == 3


def test_integration_register_call_verify():
    reg = _testing.registry(add_f64="add_f64")
    out = fjffi.Buffer.zeros((), "float64")
    inputs = [fjffi.Buffer(bytearray(np.float64(3.0).tobytes()), (), "float64"),
              fjffi.Buffer(bytearray(np.float64(4.0).tobytes()), (), "float64")]
    fjffi.Call("add_f64", reg).invoke(inputs, [out])
    assert np.frombuffer(out.tobytes(), np.float64)[0] == 7.0


def test_integration_error_propagation():
    reg = _testing.registry(fail_fn="fail_minus_1")
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("fail_fn", reg).invoke([], [])
    assert (info.value.target, info.value.code) == ("fail_fn", -1)


def test_adversarial_oversized_buffer_shape():
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(8), (999,), "float64")
    assert (info.value.expected_bytes, info.value.actual_bytes) == (999 * 8, 8)


def test_adversarial_empty_registry_call():
    with pytest.raises(fjffi.TargetNotFoundError) as info:
        fjffi.Call("anything", fjffi.Registry()).invoke([], [])
    assert info.value.name == "anything"
    assert info.value.available == []


def test_adversarial_mixed_dtype_outputs():
    reg = _testing.registry(mixed="mixed")
    out0 = fjffi.Buffer.zeros((), "float64")
    out1 = fjffi.Buffer.zeros((), "int64")
    fjffi.Call("mixed", reg).invoke([], [out0, out1])
    assert fjffi.from_buffer(out0)[()] == 99.0
    assert fjffi.from_buffer(out1)[()] == 42


def test_buffer_lifecycle_borrow_use_return():
    reg = _testing.registry(inc="inc_i64")
    value = np.int64(0)
    for k in range(1, 6):
        out = fjffi.Buffer.zeros((), "int64")
        fjffi.Call("inc", reg).invoke([fjffi.to_buffer(value)], [out])
        value = fjffi.from_buffer(out)[()]
        assert type(value) is np.int64 and value == k


def test_numpy_pipeline_with_builtin_kernels():
    # y = -(a * b) + a, summed: three calls chained through preallocated outputs.
    a = np.linspace(-3.0, 3.0, 1000)
    b = np.cos(a)
    prod, neg, res, total = np.empty_like(a), np.empty_like(a), np.empty_like(a), np.empty(())
    fjffi.Call("multiply").invoke([a, b], [prod])
    fjffi.Call("negate").invoke([prod], [neg])
    fjffi.Call("add").invoke([neg, a], [res])
    fjffi.Call("sum").invoke([res], [total])
    np.testing.assert_array_equal(res, -(a * b) + a)
    assert total == pytest.approx(np.sum(-(a * b) + a), rel=1e-12, abs=1e-9)


def test_fjffi_call_pipeline_returns_new_arrays():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    (neg,) = fjffi.call("negate", [x], [x])
    (total,) = fjffi.call("sum", [neg], [np.empty((), np.int32)])
    assert np.array_equal(neg, -x)
    assert total == -66


def test_get_include_has_the_header():
    header = os.path.join(fjffi.get_include(), "fjffi.h")
    with open(header) as f:
        text = f.read()
    assert "fjffi_raw_fn" in text and "fjffi_typed_fn" in text
