"""Call.invoke and fjffi.call: every step of "The call, step by step" in
docs/reference.md, both ABIs, and the layouts an output may and may not have.

Ported from fj-ffi's call.rs tests, plus the Python-side contract.
"""

import struct
import sys
import types

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fjffi
from fjffi import _testing

KERNELS = _testing.kernels()
DTYPE_CODE = {
    "float64": 0, "float32": 1, "float16": 2, "bfloat16": 3, "int64": 4, "int32": 5,
    "int16": 6, "int8": 7, "uint64": 8, "uint32": 9, "uint16": 10, "uint8": 11, "bool": 12,
    "complex64": 13, "complex128": 14,
}


def registry_with(name, kernel, **kw):
    """A new registry holding one test kernel under name (setup_registry)."""
    reg = fjffi.Registry()
    cap, api_version = KERNELS[kernel]
    reg.register(name, cap, api_version=api_version, **kw)
    return reg


def f64(x):
    return fjffi.to_buffer(float(x))


def value_f64(buf):
    """The float64 a scalar output holds; it must be exactly 8 bytes."""
    raw = buf.tobytes()
    assert len(raw) == 8
    return struct.unpack("=d", raw)[0]


def raw_bytes(arr):
    """A writable uint8 view of a contiguous array's bytes (0-d included)."""
    return np.asarray(arr).reshape(-1).view(np.uint8)


def filled(shape, dtype, byte):
    buf = fjffi.Buffer.zeros(shape, dtype)
    raw_bytes(buf)[:] = byte
    return buf


def describe(inputs, n_outputs=1, registry=None):
    """What the typed ABI handed the kernel about input 0."""
    reg = registry or registry_with("describe", "describe")
    outs = [np.zeros(6 + 70, np.int64)] + [np.zeros(1) for _ in range(n_outputs - 1)]
    fjffi.Call("describe", reg).invoke(inputs, outs)
    r = outs[0]
    ndim = int(r[3])
    return {"n_inputs": int(r[0]), "n_outputs": int(r[1]), "dtype": int(r[2]), "ndim": ndim,
            "nbytes": int(r[4]), "data": int(r[5]), "shape": tuple(int(d) for d in r[6:6 + ndim])}


# --- the reference's call.rs ------------------------------------------------

def test_invoke_copy_success():
    out = fjffi.Buffer.zeros((), "float64")
    fjffi.Call("copy").invoke([f64(42.0)], [out])
    assert value_f64(out) == 42.0


def test_invoke_target_not_found():
    with pytest.raises(fjffi.TargetNotFoundError) as info:
        fjffi.Call("nonexistent", fjffi.Registry()).invoke([], [])
    assert info.value.name == "nonexistent"
    assert info.value.available == []


def test_invoke_error_return_code():
    reg = registry_with("fail", "fail_99")
    out = fjffi.Buffer.zeros((), "float64")
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("fail", reg).invoke([fjffi.Buffer(bytearray(8), (), "float64")], [out])
    assert (info.value.target, info.value.code) == ("fail", 99)


def test_invoke_double_produces_correct_result():
    out = fjffi.Buffer.zeros((), "float64")
    fjffi.Call("double_f64").invoke([f64(21.0)], [out])
    assert value_f64(out) == 42.0


def test_invoke_no_inputs_no_outputs():
    assert fjffi.Call("noop").invoke([], []) is None


def test_invoke_vector_input_output():
    reg = registry_with("negate3", "negate3")
    out = fjffi.Buffer.zeros((3,), "float64")
    fjffi.Call("negate3", reg).invoke([np.array([1.0, 2.0, 3.0])], [out])
    assert np.asarray(out).tolist() == [-1.0, -2.0, -3.0]


def test_invoke_error_scrubs_output_buffers():
    reg = registry_with("fail", "fail_99")
    out = filled((), "float64", 0xFF)
    with pytest.raises(fjffi.CallFailedError):
        fjffi.Call("fail", reg).invoke([], [out])
    assert out.tobytes() == bytes(8)


def test_invoke_scrubs_outputs_before_successful_foreign_call():
    reg = registry_with("write_first_byte_only", "write_one_byte_ok")
    out = filled((), "float64", 0xFF)
    fjffi.Call("write_first_byte_only", reg).invoke([], [out])
    assert out.tobytes() == bytes([0xAB, 0, 0, 0, 0, 0, 0, 0])


def test_invoke_multiple_inputs_outputs():
    reg = registry_with("sum2", "add_f64")
    out = fjffi.Buffer.zeros((), "float64")
    fjffi.Call("sum2", reg).invoke([f64(3.0), f64(4.0)], [out])
    assert value_f64(out) == 7.0
    # The raw kernel checks its counts: one input is code 1.
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("sum2", reg).invoke([f64(3.0)], [out])
    assert info.value.code == 1


def test_invoke_i32_dtype_buffers():
    reg = registry_with("inc_i32", "inc_i32")
    out = fjffi.Buffer.zeros((), "int32")
    fjffi.Call("inc_i32", reg).invoke([np.int32(41)], [out])
    assert out.tobytes() == struct.pack("=i", 42)


def test_invoke_bool_dtype_buffer():
    reg = registry_with("not", "not_bool")
    out = fjffi.Buffer.zeros((), "bool")
    fjffi.Call("not", reg).invoke([fjffi.Buffer(bytearray([1]), (), "bool")], [out])
    assert out.tobytes() == b"\x00"
    fjffi.Call("not", reg).invoke([False], [out])
    assert out.tobytes() == b"\x01"


def test_invoke_rejects_noncanonical_bool_input():
    reg = registry_with("unreachable", "count_calls")
    bad = np.array(2, np.uint8).view(np.bool_)
    before = _testing.call_count()
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        fjffi.Call("unreachable", reg).invoke([bad], [])
    assert (info.value.buffer_index, info.value.byte_index, info.value.value) == (0, 0, 2)
    assert _testing.call_count() == before


def test_invoke_rejects_and_scrubs_noncanonical_bool_output():
    reg = registry_with("invalid_bool_output", "bool_two")
    out = fjffi.Buffer.zeros((), "bool")
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        fjffi.Call("invalid_bool_output", reg).invoke([], [out])
    assert (info.value.buffer_index, info.value.byte_index, info.value.value) == (0, 0, 2)
    assert out.tobytes() == b"\x00"


@pytest.mark.thread_unsafe(reason="counts on a process-wide counter that other threads' "
                                   "copies of this test also bump")
def test_counting_kernel_counts():
    # The control for every "never calls the kernel" test below.
    reg = registry_with("count", "count_calls")
    before = _testing.call_count()
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("count", reg).invoke([], [])
    assert info.value.code == 99
    assert _testing.call_count() == before + 1


# --- step 1: resolve --------------------------------------------------------

def test_resolution_comes_before_validation():
    bad = np.array([2], np.uint8).view(np.bool_)
    with pytest.raises(fjffi.TargetNotFoundError):
        fjffi.Call("missing", fjffi.Registry()).invoke([bad], [_ro(np.zeros(1))])


def test_call_uses_default_registry_when_none_given():
    call = fjffi.Call("noop")
    assert call.registry is fjffi.default_registry
    assert call.name == "noop"
    assert "noop" in repr(call)


# --- step 2: validation; a failed one never calls the kernel ----------------

def _ro(arr):
    arr.flags.writeable = False
    return arr


class Sub(np.ndarray):
    pass


BASE = np.zeros(16)

# (inputs, outputs, exception, words in its message) for the count_calls kernel.
INVALID_CALLS = {
    "bool input byte 2": ([np.array([0, 1, 7], np.uint8).view(np.bool_)], [],
                          fjffi.InvalidBoolByteError, ["input 0"]),
    "bool second input": ([np.zeros(2), np.array([3], np.uint8).view(np.bool_)], [],
                          fjffi.InvalidBoolByteError, ["input 1"]),
    "input dtype object": ([np.array([None])], [], fjffi.UnsupportedDtypeError,
                           ["dtype('O')", "buffer 0"]),
    "input dtype longdouble": ([np.zeros(2, np.longdouble)], [],
                               fjffi.UnsupportedDtypeError, ["float128"]),
    "input int past int64": ([2**64], [], fjffi.UnrepresentableValueError, ["int64"]),
    "input str": (["abc"], [], fjffi.UnsupportedDtypeError, ["str"]),
    "output read-only array": ([], [_ro(np.zeros(2))], fjffi.LayoutError,
                               ["output 0", "read-only"]),
    "output read-only Buffer": ([], [fjffi.to_buffer(_ro(np.zeros(2)))], fjffi.LayoutError,
                                ["output 0", "read-only"]),
    "output not contiguous": ([], [np.zeros(4)[::2]], fjffi.LayoutError,
                              ["output 0", "contiguous"]),
    "output fortran order": ([], [np.zeros((2, 3), order="F")], fjffi.LayoutError,
                             ["contiguous"]),
    "output misaligned": ([], [np.frombuffer(bytearray(17), np.float64, 2, 1)],
                          fjffi.LayoutError, ["misaligned"]),
    "output byte-swapped": ([], [np.zeros(2, ">f8" if sys.byteorder == "little" else "<f8")],
                            fjffi.LayoutError, ["byte order"]),
    "output a bytearray": ([], [bytearray(8)], fjffi.LayoutError, ["bytearray"]),
    "output a list": ([], [[0.0]], fjffi.LayoutError, ["list"]),
    "output dtype longdouble": ([], [np.zeros(2, np.longdouble)], fjffi.UnsupportedDtypeError,
                                ["output 0"]),
    "second output bad": ([], [np.zeros(2), _ro(np.zeros(2))], fjffi.LayoutError, ["output 1"]),
    "output is an input": ([BASE], [BASE], fjffi.LayoutError, ["output 0 overlaps input 0"]),
    "output overlaps input": ([BASE[:8]], [BASE[6:10]], fjffi.LayoutError,
                              ["output 0 overlaps input 0"]),
    "output overlaps second input": ([np.zeros(1), BASE[4:8]], [BASE[7:9]], fjffi.LayoutError,
                                     ["overlaps input 1"]),
    "output overlaps Buffer input": ([fjffi.to_buffer(BASE[10:])], [BASE[12:14]],
                                     fjffi.LayoutError, ["overlaps input 0"]),
    "outputs overlap": ([], [BASE[0:4], BASE[3:5]], fjffi.LayoutError,
                        ["output 1 overlaps output 0"]),
    "same output twice": ([], [BASE[:2], BASE[:2]], fjffi.LayoutError, ["output 1 overlaps"]),
}


@pytest.mark.parametrize("case", sorted(INVALID_CALLS))
def test_failed_validation_never_calls_the_kernel(case):
    inputs, outputs, exc, words = INVALID_CALLS[case]
    reg = registry_with("unreachable", "count_calls")
    # Outputs that may be written get a marker: validation must not touch them.
    for out in outputs:
        if isinstance(out, np.ndarray) and out.flags.writeable and out.flags.c_contiguous:
            raw_bytes(out)[:] = 0x5A
    before = _testing.call_count()
    with pytest.raises(exc) as info:
        fjffi.Call("unreachable", reg).invoke(inputs, outputs)
    assert _testing.call_count() == before
    for word in words:
        assert word in str(info.value)
    for out in outputs:
        if isinstance(out, np.ndarray) and out.flags.writeable and out.flags.c_contiguous:
            assert (raw_bytes(out) == 0x5A).all()


def test_layout_error_names_the_target():
    reg = registry_with("my_target", "count_calls")
    with pytest.raises(fjffi.LayoutError, match="my_target"):
        fjffi.Call("my_target", reg).invoke([], [_ro(np.zeros(1))])


def test_inputs_may_alias_each_other():
    x = np.array([1.0, -2.0, 4.0])
    out = np.zeros(3)
    fjffi.Call("add").invoke([x, x], [out])
    assert out.tolist() == [2.0, -4.0, 8.0]


def test_zero_size_buffers_never_overlap():
    base = np.zeros(4)
    reg = registry_with("noop", "raw_noop")
    fjffi.Call("noop", reg).invoke([base], [base[1:1], base[2:2]])


def test_adjacent_outputs_do_not_overlap():
    base = np.zeros(4)
    reg = registry_with("w", "write_then_fail")
    with pytest.raises(fjffi.CallFailedError):
        fjffi.Call("w", reg).invoke([base[:2]], [base[2:3], base[3:4]])


def test_readonly_inputs_are_fine():
    out = np.zeros(2)
    fjffi.Call("negate").invoke([_ro(np.array([1.0, 2.0]))], [out])
    assert out.tolist() == [-1.0, -2.0]


def test_ndarray_subclass_output_is_written_in_place():
    out = np.zeros(3).view(Sub)
    fjffi.Call("negate").invoke([np.array([1.0, 2.0, 3.0])], [out])
    assert out.tolist() == [-1.0, -2.0, -3.0]


# --- steps 3 to 6 -----------------------------------------------------------

def test_outputs_zeroed_before_the_kernel():
    reg = registry_with("w1", "write_one_byte_ok")
    out = np.full(4, 0xFF, np.uint8)
    other = np.full(3, -1.0)
    fjffi.Call("w1", reg).invoke([], [out, other])
    assert out.tolist() == [0xAB, 0, 0, 0]
    assert other.tolist() == [0.0, 0.0, 0.0]


def test_outputs_zeroed_again_after_failure():
    reg = registry_with("wtf", "write_then_fail")
    outs = [np.full(3, 7, np.int16), filled((2, 2), "complex64", 0x11), np.ones(0)]
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("wtf", reg).invoke([np.ones(2)], outs)
    err = info.value
    assert (err.target, err.code, err.message) == ("wtf", 7, "write_then_fail: wrote then failed")
    assert outs[0].tolist() == [0, 0, 0]
    assert outs[1].tobytes() == bytes(32)


def test_bool_output_validated_after_the_call_and_zeroed():
    reg = registry_with("bool_two", "bool_two")
    bools = np.ones(3, np.bool_)
    ints = np.full(2, 9, np.int64)
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        fjffi.Call("bool_two", reg).invoke([np.zeros(1), np.zeros(1)], [bools, ints])
    err = info.value
    # Buffers are counted inputs first: output 0 of a call with 2 inputs is buffer 2.
    assert (err.buffer_index, err.byte_index, err.value) == (2, 0, 2)
    assert "bool_two" in str(err) and "output 0" in str(err)
    assert bools.view(np.uint8).tolist() == [0, 0, 0]
    assert ints.tolist() == [0, 0]


def write_prefix(reg, prefix, fill, fail, out):
    fjffi.Call("write_prefix", reg).invoke(
        [np.int64(prefix), np.uint8(fill), np.bool_(fail)], [out])


def test_bool_output_of_canonical_bytes_passes():
    reg = registry_with("write_prefix", "write_prefix")
    out = np.zeros(5, np.bool_)
    write_prefix(reg, 3, 1, False, out)
    assert out.tolist() == [True, True, True, False, False]


def test_bool_output_bad_byte_reported_with_index():
    reg = registry_with("write_prefix", "write_prefix")
    out = np.zeros(5, np.bool_)
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        write_prefix(reg, 2, 0xC8, False, out)
    assert (info.value.buffer_index, info.value.byte_index, info.value.value) == (3, 0, 0xC8)
    assert out.view(np.uint8).tolist() == [0] * 5


def test_call_failed_error_fields_from_the_typed_context():
    reg = registry_with("fwm", "fail_with_message")
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("fwm", reg).invoke([], [])
    err = info.value
    assert (err.target, err.code) == ("fwm", 3)
    assert err.message == "fail_with_message: the kernel said no"
    assert "fwm" in str(err) and "3" in str(err) and err.message in str(err)


def test_call_failed_error_from_the_raw_abi_has_the_code():
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("fail").invoke([np.zeros(2)], [np.ones(2)])
    assert (info.value.target, info.value.code) == ("fail", -42)
    assert "'fail'" in str(info.value) and "-42" in str(info.value)


def test_failed_typed_call_then_successful_call_has_no_stale_message():
    reg = registry_with("write_prefix", "write_prefix")
    out = np.zeros(4, np.uint8)
    with pytest.raises(fjffi.CallFailedError) as info:
        write_prefix(reg, 2, 5, True, out)
    assert info.value.code == 9
    assert info.value.message == "write_prefix: wrote 2 bytes, then failed as asked"
    write_prefix(reg, 2, 5, False, out)
    assert out.tolist() == [5, 5, 0, 0]


@pytest.mark.parametrize("gil", ["release", "hold", "auto"])
def test_every_gil_policy_gives_the_same_result(gil):
    reg = registry_with("inc", "inc_i64", gil=gil)
    out = np.zeros((), np.int64)
    fjffi.Call("inc", reg).invoke([np.int64(2**63 - 1)], [out])
    assert out == -(2**63)
    reg = registry_with("describe", "describe", gil=gil)
    assert describe([np.zeros((300, 300))], registry=reg)["shape"] == (300, 300)


# --- the typed ABI: what a kernel receives ----------------------------------

@pytest.mark.parametrize("name", sorted(DTYPE_CODE))
def test_typed_abi_descriptor_for_every_dtype(name):
    dt = np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)
    arr = np.zeros((2, 3), dt)
    d = describe([arr, np.zeros(1)], n_outputs=2)
    assert d == {"n_inputs": 2, "n_outputs": 2, "dtype": DTYPE_CODE[name], "ndim": 2,
                 "nbytes": 6 * dt.itemsize, "data": arr.ctypes.data, "shape": (2, 3)}


def test_typed_abi_scalar_and_zero_size():
    d = describe([np.float32(1.0)])
    assert (d["ndim"], d["shape"], d["nbytes"], d["dtype"]) == (0, (), 4, 1)
    d = describe([np.zeros((4, 0, 2), np.int16)])
    assert (d["ndim"], d["shape"], d["nbytes"]) == (3, (4, 0, 2), 0)


def test_typed_abi_buffer_input_is_not_copied():
    buf = fjffi.Buffer.zeros((5, 1), "uint16")
    d = describe([buf])
    assert d["data"] == np.asarray(buf).ctypes.data
    assert d["shape"] == (5, 1)


@pytest.mark.parametrize("ndim", [8, 9, 12, 64])
def test_typed_abi_many_dimensions(ndim):
    shape = (2,) + (1,) * (ndim - 1)
    assert describe([np.zeros(shape, np.int8)])["shape"] == shape
    assert describe([fjffi.Buffer.zeros(shape, "int8")])["shape"] == shape


def test_typed_abi_copied_input_keeps_shape():
    swapped = np.arange(6.0).reshape(2, 3).astype(np.dtype(np.float64).newbyteorder("S"))
    d = describe([swapped])
    assert (d["dtype"], d["shape"], d["nbytes"]) == (0, (2, 3), 48)
    strided = np.zeros((4, 6), np.int32)[::2, ::3]
    assert describe([strided])["shape"] == (2, 2)


def test_typed_abi_copied_scalar_input_keeps_shape():
    swapped = np.array(1.5, dtype=np.dtype(np.float64).newbyteorder("S"))
    assert swapped.shape == ()
    d = describe([swapped])
    assert (d["ndim"], d["shape"], d["nbytes"]) == (0, (), 8)


def test_misaligned_input_is_copied_for_the_kernel():
    raw = bytearray(8 * 3 + 1)
    x = np.frombuffer(raw, np.float64, count=3, offset=1)
    x[:] = [1.0, 2.0, -3.0]
    out = np.zeros(3)
    # The built-in kernels refuse misaligned data, so this passes only if
    # fjffi hands them an aligned copy.
    fjffi.Call("negate").invoke([x], [out])
    assert out.tolist() == [-1.0, -2.0, 3.0]


def test_many_buffers_past_the_stack_frame():
    reg = registry_with("describe", "describe")
    inputs = [np.full(3, i, np.int8) for i in range(20)]
    assert describe(inputs, n_outputs=11, registry=reg)["n_inputs"] == 20
    reg = registry_with("w", "write_then_fail")
    outs = [np.full(2, 1 + i, np.int32) for i in range(12)]
    with pytest.raises(fjffi.CallFailedError):
        fjffi.Call("w", reg).invoke(inputs, outs)
    assert all(not o.any() for o in outs)
    # The raw ABI builds its own pointer arrays for long lists.
    reg = registry_with("n", "raw_noop")
    fjffi.Call("n", reg).invoke(inputs, outs)
    reg = registry_with("f", "fail_7")
    outs[11][:] = 5
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("f", reg).invoke(inputs, outs)
    assert info.value.code == 7 and not outs[11].any()


# --- inputs as lists, tuples, scalars ---------------------------------------

@pytest.mark.parametrize("wrap", [list, tuple])
def test_lists_and_tuples_of_buffers(wrap):
    out = np.zeros(2)
    fjffi.Call("add").invoke(wrap([np.array([1.0, 2.0]), np.array([0.5, 0.5])]), wrap([out]))
    assert out.tolist() == [1.5, 2.5]


@pytest.mark.parametrize("wrap", [iter, np.array, lambda xs: (x for x in xs)])
def test_other_iterables_of_buffers_are_refused(wrap):
    """A 2-D array would otherwise be taken row by row, a generator consumed."""
    out = np.zeros(2)
    with pytest.raises(TypeError, match="must be a tuple or a list"):
        fjffi.Call("add").invoke(wrap([np.array([1.0, 2.0]), np.array([0.5, 0.5])]), [out])
    with pytest.raises(TypeError, match="must be a tuple or a list"):
        fjffi.Call("add").invoke([np.array([1.0, 2.0]), np.array([0.5, 0.5])], wrap([out]))
    assert not out.any()


def test_python_scalars_as_inputs():
    out = np.zeros((), np.float64)
    fjffi.Call("add").invoke([1.5, 2.0], [out])
    assert out == 3.5
    iout = np.zeros((), np.int64)
    fjffi.Call("multiply").invoke([-3, 7], [iout])
    assert iout == -21


def test_list_input_goes_through_numpy():
    out = np.zeros((2, 2))
    fjffi.Call("negate").invoke([[[1.0, 2.0], [3.0, 4.0]]], [out])
    assert out.tolist() == [[-1.0, -2.0], [-3.0, -4.0]]


def test_buffer_output_written_in_place():
    out = fjffi.Buffer.zeros((2,), "int32")
    fjffi.Call("add").invoke([np.array([1, 2], np.int32), np.array([3, 4], np.int32)], [out])
    assert np.asarray(out).tolist() == [4, 6]


def test_zero_d_and_zero_size_shapes():
    out = np.zeros((), np.float32)
    fjffi.Call("negate").invoke([np.float32(2.5)], [out])
    assert out == -2.5
    for shape in [(0,), (3, 0), (0, 2, 5)]:
        out = np.zeros(shape)
        fjffi.Call("negate").invoke([np.zeros(shape)], [out])
        assert out.shape == shape
    total = np.full((), 7.0)
    fjffi.Call("sum").invoke([np.zeros((0, 4))], [total])
    assert total == 0.0


# --- fjffi.call -------------------------------------------------------------

def test_call_allocates_outputs_from_specs():
    a, b = np.arange(6.0).reshape(2, 3), np.full((2, 3), 0.5)
    (out,) = fjffi.call("add", [a, b], [a])
    assert isinstance(out, np.ndarray)
    assert out.shape == (2, 3) and out.dtype == np.float64
    assert np.array_equal(out, a + b)
    assert not np.shares_memory(out, a) and not np.shares_memory(out, b)


def test_call_takes_any_spec_with_shape_and_dtype():
    spec = types.SimpleNamespace(shape=(), dtype="int32")
    result = fjffi.call("sum", [np.arange(10, dtype=np.int32)], [spec])
    assert isinstance(result, tuple) and len(result) == 1
    assert result[0].dtype == np.int32 and result[0].shape == () and result[0] == 45


def test_call_with_several_results_and_registry():
    reg = registry_with("mixed", "mixed")
    specs = [types.SimpleNamespace(shape=(), dtype=np.float64),
             types.SimpleNamespace(shape=(), dtype=np.int64)]
    f, i = fjffi.call("mixed", [], specs, registry=reg)
    assert (f.dtype, f[()]) == (np.float64, 99.0)
    assert (i.dtype, i[()]) == (np.int64, 42)


def test_call_bfloat16_result_spec():
    reg = registry_with("d", "write_one_byte_ok")
    spec = types.SimpleNamespace(shape=(2,), dtype="bfloat16")
    (out,) = fjffi.call("d", [], [spec], registry=reg)
    assert out.dtype == np.dtype(ml_dtypes.bfloat16)
    assert out.view(np.uint16).tolist() == [0xAB, 0]


def test_call_errors():
    with pytest.raises(fjffi.TargetNotFoundError):
        fjffi.call("nope", [], [], registry=fjffi.Registry())
    with pytest.raises(fjffi.UnsupportedDtypeError):
        fjffi.call("negate", [np.zeros(2)], [types.SimpleNamespace(shape=(2,), dtype="U3")])
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.call("negate", [np.zeros(2)], [np.zeros(3)])
    assert info.value.code == 4


# --- properties -------------------------------------------------------------

OUT_DTYPES = ["float64", "int8", "uint16", "complex64", "bool", "int32"]


@st.composite
def prefilled_outputs(draw):
    outs = []
    for _ in range(draw(st.integers(1, 3))):
        dtype = draw(st.sampled_from(OUT_DTYPES))
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=2)))
        out = np.zeros(shape, dtype)
        raw = raw_bytes(out)
        fill = draw(st.binary(min_size=raw.size, max_size=raw.size))
        raw[:] = np.frombuffer(fill, np.uint8)
        outs.append(out)
    return outs


FAILING = ["write_then_fail", "fail_with_message", "fail_7", "fail_99", "write_prefix"]
FAILING_REGISTRY = _testing.registry()


@given(prefilled_outputs(), st.sampled_from(FAILING), st.integers(-1, 64))
def test_outputs_are_zero_after_any_failing_call(outs, kernel, prefix):
    inputs = [np.int64(prefix), np.uint8(0xEE), np.bool_(True)] if kernel == "write_prefix" else []
    with pytest.raises(fjffi.CallFailedError):
        fjffi.Call(kernel, FAILING_REGISTRY).invoke(inputs, outs)
    for out in outs:
        assert not raw_bytes(out).any()


@given(prefilled_outputs())
def test_only_the_kernel_writes_survive_a_successful_call(outs):
    first = raw_bytes(outs[0])
    if outs[0].dtype == np.bool_ and first.size:
        # 0xAB is no bool byte: the call fails after the kernel, all zeroed.
        with pytest.raises(fjffi.InvalidBoolByteError):
            fjffi.Call("write_one_byte_ok", FAILING_REGISTRY).invoke([], outs)
        assert not any(raw_bytes(o).any() for o in outs)
        return
    fjffi.Call("write_one_byte_ok", FAILING_REGISTRY).invoke([], outs)
    if first.size:
        assert first[0] == 0xAB
        assert not first[1:].any()
    for out in outs[1:]:
        assert not raw_bytes(out).any()


@given(prefilled_outputs())
def test_failed_validation_leaves_outputs_untouched(outs):
    before = [o.copy() for o in outs]
    bad = np.array([1, 0, 3], np.uint8).view(np.bool_)
    count = _testing.call_count()
    with pytest.raises(fjffi.InvalidBoolByteError):
        fjffi.Call("count_calls", FAILING_REGISTRY).invoke([np.zeros(1), bad], outs)
    assert _testing.call_count() == count
    for o, b in zip(outs, before, strict=True):
        assert o.tobytes() == b.tobytes()


@pytest.mark.parametrize("n", [1, 8, 9, 20], ids=lambda n: f"{n} each side")
def test_raw_kernel_receives_every_pointer_in_order(n):
    """The raw ABI's pointer arrays, on the stack for a few buffers and in the
    frame's heap block for many: each entry is its buffer's data pointer."""
    import ctypes

    seen = []
    raw = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                           ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t)

    @raw
    def record(ins, n_in, outs, n_out):
        seen.append(([ins[i] for i in range(n_in)], [outs[i] for i in range(n_out)]))
        return 0

    reg = fjffi.Registry()
    reg.register("record", record)
    xs = [np.full(2, float(i)) for i in range(n)]
    ys = [np.empty(3) for _ in range(n)]
    fjffi.Call("record", reg).invoke(xs, ys)
    assert seen == [([x.ctypes.data for x in xs], [y.ctypes.data for y in ys])]
