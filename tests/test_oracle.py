"""Oracle, metamorphic and adversarial tests: kernels checked against a
reference computed another way (Python arithmetic, numpy).

Ported from fj-ffi's ffi_oracle.rs (the concurrent case lives in
test_threads.py), plus the built-in typed kernels against numpy.
"""

import math
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fjffi
from fjffi import _testing

KERNELS = _testing.kernels()


def make_registry():
    """The reference's oracle registry, from built-in and test kernels."""
    reg = fjffi.Registry()
    reg.register_builtins()
    for name, kernel in [("sum3", "sum3"), ("error", "fail_7"), ("negate_vec", "negate3")]:
        cap, api_version = KERNELS[kernel]
        reg.register(name, cap, api_version=api_version)
    return reg


REG = make_registry()


def double(x):
    out = fjffi.Buffer.zeros((), "float64")
    fjffi.Call("double_f64", REG).invoke([fjffi.to_buffer(x)], [out])
    return fjffi.from_buffer(out)[()]


@pytest.mark.parametrize("val", [0.0, 1.0, -1.0, math.pi, sys.float_info.min,
                                 sys.float_info.max / 2])
def test_oracle_ffi_double(val):
    assert double(val) == val * 2


def test_oracle_ffi_sum3():
    out = fjffi.Buffer.zeros((), "float64")
    fjffi.Call("sum3", REG).invoke([np.array([10.0, 20.0, 30.0])], [out])
    assert fjffi.from_buffer(out)[()] == 60.0


def test_oracle_value_roundtrip_through_ffi():
    out = fjffi.Buffer.zeros((), "float64")
    fjffi.Call("double_f64", REG).invoke([fjffi.to_buffer(5.0)], [out])
    back = fjffi.from_buffer(out)
    assert back.dtype == np.float64 and back.shape == () and back[()] == 10.0


def test_oracle_ffi_negate_vec():
    out = fjffi.Buffer.zeros((3,), "float64")
    fjffi.Call("negate_vec", REG).invoke([fjffi.to_buffer(np.array([1.0, 2.0, 3.0]))], [out])
    back = fjffi.from_buffer(out)
    assert back.shape == (3,) and back.tolist() == [-1.0, -2.0, -3.0]


def test_oracle_error_propagation_is_structured():
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("error", REG).invoke([], [])
    err = info.value
    assert (err.target, err.code) == ("error", 7)
    assert "'error'" in str(err) and "code 7" in str(err)


def test_metamorphic_error_does_not_corrupt_state():
    first = double(5.0)
    with pytest.raises(fjffi.CallFailedError):
        fjffi.Call("error", REG).invoke([], [])
    assert double(5.0) == first == 10.0


def test_metamorphic_empty_payload_noop():
    assert fjffi.Call("noop", REG).invoke([], []) is None


def test_metamorphic_double_composition():
    mid = fjffi.Buffer.zeros((), "float64")
    out = fjffi.Buffer.zeros((), "float64")
    fjffi.Call("double_f64", REG).invoke([7.0], [mid])
    # The output of one call is the input of the next, as is.
    fjffi.Call("double_f64", REG).invoke([mid], [out])
    assert fjffi.from_buffer(out)[()] == 28.0


def test_adversarial_unregistered_target():
    with pytest.raises(fjffi.TargetNotFoundError):
        fjffi.Call("nonexistent", fjffi.Registry()).invoke([], [])


def test_adversarial_duplicate_registration():
    reg = fjffi.Registry()
    cap = KERNELS["raw_noop"][0]
    reg.register("dup", cap)
    with pytest.raises(fjffi.DuplicateTargetError):
        reg.register("dup", cap)


def test_adversarial_buffer_size_mismatch():
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(4), (3,), "float64")
    assert (info.value.expected_bytes, info.value.actual_bytes) == (24, 4)


def test_adversarial_callback_error():
    reg = fjffi.Registry()

    def fail_cb():
        raise fjffi.CallFailedError("fail_cb", 1, "test failure")

    reg.register_callback("fail_cb", fail_cb)
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("fail_cb", reg).invoke([], [])
    assert (info.value.target, info.value.code, info.value.message) == (
        "fail_cb", 1, "test failure")


def test_adversarial_callback_unexpected_arity():
    reg = fjffi.Registry()

    def expects_one(*args):
        if len(args) != 1:
            raise fjffi.CallFailedError("expects_one", 2, f"expected 1 arg, got {len(args)}")
        return args[0].copy()

    reg.register_callback("expects_one", expects_one)
    out = np.zeros((), np.int64)
    fjffi.Call("expects_one", reg).invoke([np.int64(1)], [out])
    assert out == 1
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("expects_one", reg).invoke([np.int64(1), np.int64(2)], [out])
    assert info.value.code == 2
    assert info.value.message == "expected 1 arg, got 2"
    assert out == 0


# --- the built-in typed kernels against numpy -------------------------------

KERNEL_DTYPES = [np.float64, np.float32, np.int64, np.int32]
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)


@st.composite
def operands(draw, n, finite=False, bound=None):
    dtype = np.dtype(draw(st.sampled_from(KERNEL_DTYPES)))
    shape = draw(shapes)
    if dtype.kind == "f":
        elements = hnp.from_dtype(dtype, allow_nan=not finite, allow_infinity=not finite,
                                  min_value=-bound if bound else None,
                                  max_value=bound if bound else None)
    else:
        elements = hnp.from_dtype(dtype)
    return [draw(hnp.arrays(dtype, shape, elements=elements)) for _ in range(n)]


def run(name, inputs, out_shape=None):
    out = np.full(inputs[0].shape if out_shape is None else out_shape, 1, inputs[0].dtype)
    fjffi.Call(name).invoke(inputs, [out])
    return out


@given(operands(1))
def test_builtin_negate_matches_numpy(ops):
    (x,) = ops
    out = run("negate", [x])
    with np.errstate(over="ignore"):
        expected = np.negative(x)
    # Bit for bit: a float negation flips the sign bit, NaN or not.
    assert out.tobytes() == expected.tobytes()


@given(operands(2), st.sampled_from(["add", "multiply"]))
def test_builtin_add_multiply_match_numpy(ops, name):
    a, b = ops
    out = run(name, [a, b])
    with np.errstate(all="ignore"):
        expected = getattr(np, name)(a, b)
    if a.dtype.kind == "i":
        assert out.tobytes() == expected.tobytes()
    else:
        # NaN payloads may differ between instruction sets; NaN positions may not.
        np.testing.assert_array_equal(out, expected)


@given(operands(1, finite=True, bound=1e6))
def test_builtin_sum_matches_numpy(ops):
    (x,) = ops
    out = run("sum", [x], out_shape=())
    assert out.shape == () and out.dtype == x.dtype
    if x.dtype.kind == "i":
        with np.errstate(over="ignore"):
            assert out == np.sum(x, dtype=x.dtype)
    else:
        # Pairwise summation like numpy's, though the grouping may differ:
        # the bound is the usual n * eps * sum|x|.
        err = max(x.size, 1) * np.finfo(x.dtype).eps * float(np.sum(np.abs(x), dtype=np.float64))
        assert abs(float(out) - float(np.sum(x, dtype=np.float64))) <= err


@given(st.lists(st.integers(-(2**20), 2**20), max_size=300))
def test_builtin_sum_is_exact_on_integer_valued_floats(values):
    x = np.array(values, np.float64)
    assert run("sum", [x], out_shape=())[()] == sum(values)


def test_builtin_sum_of_empty_is_positive_zero():
    out = run("sum", [np.zeros(0)], out_shape=())
    assert out.tobytes() == np.float64(0.0).tobytes()
    assert run("sum", [np.array([-0.0, -0.0])], out_shape=()).tobytes() == \
        np.float64(-0.0).tobytes()


def test_builtin_large_arrays_match_numpy():
    # Long enough for the vector loops, the blocked tails and the GIL release.
    rng = np.random.default_rng(7)
    for dtype in KERNEL_DTYPES:
        if np.dtype(dtype).kind == "f":
            a = rng.standard_normal(100_003).astype(dtype)
            b = rng.standard_normal(100_003).astype(dtype)
        else:
            info = np.iinfo(dtype)
            a = rng.integers(info.min, info.max, 100_003, dtype=dtype, endpoint=True)
            b = rng.integers(info.min, info.max, 100_003, dtype=dtype, endpoint=True)
        with np.errstate(all="ignore"):
            assert run("add", [a, b]).tobytes() == np.add(a, b).tobytes()
            assert run("multiply", [a, b]).tobytes() == np.multiply(a, b).tobytes()
            assert run("negate", [a]).tobytes() == np.negative(a).tobytes()


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_builtin_int_wraparound(dtype):
    info = np.iinfo(dtype)
    hi, lo = np.array([info.max], dtype), np.array([info.min], dtype)
    one = np.array([1], dtype)
    assert run("add", [hi, one]).tolist() == [info.min]
    assert run("negate", [lo]).tolist() == [info.min]
    half = np.array([2 ** (info.bits // 2)], dtype)
    assert run("multiply", [half, half]).tolist() == [0]
    assert run("sum", [np.array([info.max, 1, 1], dtype)], out_shape=()) == info.min + 1


BAD_CALLS = [
    ("negate", [np.ones(3, np.float32)], [np.zeros(3)], 3,
     "negate: output 0 has dtype float64 but input 0 has float32"),
    ("add", [np.ones(3), np.ones(3, np.int64)], [np.zeros(3)], 3,
     "add: input 1 has dtype int64 but input 0 has float64"),
    ("add", [np.ones(3), np.ones(2)], [np.zeros(3)], 4,
     "add: input 1 shape (2,) does not match input 0 shape (3,)"),
    ("multiply", [np.ones((2, 2)), np.ones((2, 2))], [np.zeros(4)], 4,
     "multiply: output 0 shape (4,) does not match input 0 shape (2, 2)"),
    ("sum", [np.ones(3)], [np.zeros(3)], 4, "sum: output 0 must have shape () but has (3,)"),
    ("negate", [np.ones(3, np.int8)], [np.zeros(3, np.int8)], 5,
     "negate: dtype int8 is not supported (expected float64, float32, int64 or int32)"),
    ("add", [np.ones(3)], [np.zeros(3)], 1, "add: expected 2 inputs, got 1"),
    ("negate", [np.ones(3), np.ones(3)], [np.zeros(3)], 1, "negate: expected 1 input, got 2"),
    ("sum", [np.ones(3)], [np.zeros(()), np.zeros(())], 2, "sum: expected 1 output, got 2"),
]


@pytest.mark.parametrize("name, inputs, outputs, code, message", BAD_CALLS)
def test_builtin_kernels_say_what_is_wrong(name, inputs, outputs, code, message):
    for out in outputs:
        out[...] = 3
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call(name).invoke(inputs, outputs)
    assert (info.value.target, info.value.code, info.value.message) == (name, code, message)
    assert all(not out.any() for out in outputs)
