"""fjffi.Buffer: size validation with overflow checks, bool bytes, shapes,
zeros(), accessors and the buffer protocol.

Ported from fj-ffi's buffer.rs tests and the buffer cases of call.rs and
lib.rs, plus properties against Python's integer arithmetic.
"""

import math
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fjffi

INT64_MAX = 2**63 - 1
USIZE_MAX = 2**64 - 1
ITEMSIZE = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
    "int16": 2, "int8": 1, "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1, "bool": 1,
    "complex64": 8, "complex128": 16,
}


def test_buffer_new_valid_f64_scalar():
    buf = fjffi.Buffer(bytearray(8), (), "float64")
    assert buf.nbytes == 8
    assert buf.shape == ()
    assert buf.ndim == 0
    assert buf.dtype == np.float64


def test_buffer_new_valid_f64_vector():
    buf = fjffi.Buffer(bytearray(24), (3,), "float64")
    assert buf.nbytes == 24
    assert buf.shape == (3,)


def test_buffer_new_valid_f64_matrix():
    buf = fjffi.Buffer(bytearray(48), (2, 3), "float64")
    assert buf.nbytes == 48
    assert buf.shape == (2, 3)


def test_buffer_new_size_mismatch():
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(7), (), "float64")
    err = info.value
    assert (err.buffer_index, err.expected_bytes, err.actual_bytes) == (None, 8, 7)
    assert "8" in str(err) and "7" in str(err)


def test_buffer_zeroed_creates_correct_size():
    buf = fjffi.Buffer.zeros((4, 3), "int64")
    assert buf.nbytes == 96
    assert buf.tobytes() == bytes(96)


def test_buffer_empty_shape_is_scalar():
    # Shape () is one element, not zero.
    assert fjffi.Buffer(bytearray(8), (), "float64").nbytes == 8
    with pytest.raises(fjffi.BufferMismatchError):
        fjffi.Buffer(bytearray(0), (), "float64")


def test_buffer_zero_dim_is_zero_size():
    buf = fjffi.Buffer(bytearray(0), (0, 5), "float64")
    assert buf.nbytes == 0
    assert buf.shape == (0, 5)
    assert buf.tobytes() == b""
    assert np.asarray(buf).shape == (0, 5)


def test_empty_bytearray_makes_a_zero_size_buffer_of_any_dtype():
    # From 3.13 an empty bytearray hands out a static empty string, at an
    # odd address; no byte of an empty buffer is read, so it is not refused.
    for dtype in ("float64", "int32", "complex128"):
        buf = fjffi.Buffer(bytearray(0), (0,), dtype)
        assert (buf.shape, buf.nbytes, buf.tobytes()) == ((0,), 0, b"")
    x = fjffi.Buffer(bytearray(0), (0,), "float64")
    y = np.empty(0)
    fjffi.Call("negate").invoke((x,), (y,))
    assert y.shape == (0,)


@pytest.mark.parametrize("dtype, size", sorted(ITEMSIZE.items()))
def test_dtype_size_bytes_all_types(dtype, size):
    assert fjffi.Buffer.zeros((), dtype).nbytes == size
    assert fjffi.Buffer.zeros((3,), dtype).nbytes == 3 * size


def test_checked_buffer_size_overflow():
    # usize::MAX does not even fit a Py_ssize_t.
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(8), (USIZE_MAX, 2), "float64")
    assert info.value.expected_bytes is None
    assert "overflow" in str(info.value)


def test_buffer_overflow_shape_rejected():
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(0), (USIZE_MAX, 2), "float64")
    assert info.value.expected_bytes is None


def test_buffer_huge_single_dim_rejected():
    # usize::MAX // 4 elements of 8 bytes: fits a dimension, not a size.
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer.zeros((USIZE_MAX // 4,), "float64")
    assert info.value.expected_bytes is None


def test_overflow_never_wraps_around():
    # 2**62 * 4 * 8 = 2**67 is 0 modulo 2**64: a wrapped product would accept
    # an empty buffer for this shape.
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(0), (2**62, 4), "float64")
    assert info.value.expected_bytes is None
    assert info.value.actual_bytes == 0
    with pytest.raises(fjffi.BufferMismatchError):
        fjffi.Buffer.zeros((2**62, 4), "float64")
    # Largest dimension whose bytes still fit, against one past it.
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(0), (INT64_MAX // 8 + 1,), "float64")
    assert info.value.expected_bytes is None
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(0), (INT64_MAX // 8,), "float64")
    assert info.value.expected_bytes == (INT64_MAX // 8) * 8


def test_overflow_reports_the_data_length():
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(16), (2**62, 4), "float64")
    assert info.value.actual_bytes == 16
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(16), (USIZE_MAX, 2), "float64")
    assert info.value.actual_bytes == 16


def test_zero_dimension_cancels_an_overflowing_product():
    buf = fjffi.Buffer(bytearray(0), (2**62, 2**62, 0), "complex128")
    assert buf.nbytes == 0
    assert buf.shape == (2**62, 2**62, 0)


@pytest.mark.parametrize("shape", [(-1,), (3, -2), -1])
def test_negative_dims_value_error(shape):
    with pytest.raises(ValueError, match="negative"):
        fjffi.Buffer(bytearray(0), shape, "float64")
    with pytest.raises(ValueError, match="negative"):
        fjffi.Buffer.zeros(shape, "float64")


@pytest.mark.parametrize("shape", [(1.5,), "ab", None, (None,)])
def test_shape_must_be_ints(shape):
    with pytest.raises(TypeError, match="shape"):
        fjffi.Buffer.zeros(shape, "float64")


def test_shape_accepts_an_int_and_index_types():
    assert fjffi.Buffer.zeros(3, "int8").shape == (3,)
    assert fjffi.Buffer.zeros((np.int64(2), np.uint8(3)), "int8").shape == (2, 3)
    assert fjffi.Buffer.zeros([2, 3], "int8").shape == (2, 3)


def test_too_many_dimensions_value_error():
    assert fjffi.Buffer.zeros((1,) * 64, "int8").ndim == 64
    with pytest.raises(ValueError, match="64"):
        fjffi.Buffer.zeros((1,) * 65, "int8")


def test_bool_bytes_must_be_canonical():
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        fjffi.Buffer(bytearray([0, 1, 2]), (3,), "bool")
    assert (info.value.byte_index, info.value.value) == (2, 2)
    # The first offending byte is reported, past the eight-at-a-time scan too.
    data = bytearray([1, 0] * 10)
    data[13] = 0xFF
    data[17] = 7
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        fjffi.Buffer(data, (20,), "bool")
    assert (info.value.byte_index, info.value.value) == (13, 255)
    assert fjffi.Buffer(bytearray([0, 1, 1, 0]), (4,), "bool").tobytes() == b"\0\1\1\0"


@given(st.binary(min_size=1, max_size=40))
def test_bool_buffer_accepts_exactly_canonical_bytes(data):
    bad = [i for i, b in enumerate(data) if b > 1]
    if not bad:
        assert fjffi.Buffer(bytearray(data), (len(data),), "bool").tobytes() == data
        return
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        fjffi.Buffer(bytearray(data), (len(data),), "bool")
    assert info.value.byte_index == bad[0]
    assert info.value.value == data[bad[0]]


def test_checked_buffer_size_empty_shape():
    assert fjffi.Buffer.zeros((), "float64").nbytes == 8


def test_checked_buffer_size_zero_dim():
    assert fjffi.Buffer.zeros((0, 10), "float64").nbytes == 0


def test_checked_buffer_size_complex128():
    assert fjffi.Buffer.zeros((3,), "complex128").nbytes == 48


def test_buffer_into_bytes_consumes():
    buf = fjffi.Buffer(bytearray(range(1, 9)), (), "float64")
    assert buf.tobytes() == bytes([1, 2, 3, 4, 5, 6, 7, 8])


def test_zeros_accessors():
    buf = fjffi.Buffer.zeros((2, 5), np.int32)
    assert buf.shape == (2, 5)
    assert buf.dtype == np.dtype(np.int32)
    assert buf.nbytes == 40
    assert buf.tobytes() == bytes(40)
    assert not buf.readonly
    assert "shape=(2, 5)" in repr(buf) and "int32" in repr(buf)


def test_zeros_is_aligned_for_every_dtype():
    for dtype in ITEMSIZE:
        arr = np.asarray(fjffi.Buffer.zeros((3,), dtype))
        assert arr.ctypes.data % 8 == 0


def test_buffer_protocol_is_zero_copy():
    buf = fjffi.Buffer.zeros((2, 3), "float64")
    arr = np.asarray(buf)
    assert arr.shape == (2, 3) and arr.dtype == np.float64
    arr[1, 2] = 5.0
    assert np.frombuffer(buf.tobytes(), np.float64)[5] == 5.0
    again = np.asarray(buf)
    assert np.shares_memory(arr, again)
    view = memoryview(buf)
    assert (view.format, view.itemsize, view.shape, view.strides) == ("d", 8, (2, 3), (24, 8))
    assert view.c_contiguous and not view.readonly


def test_buffer_wraps_its_source_without_copying():
    data = bytearray(16)
    buf = fjffi.Buffer(data, (2,), "float64")
    np.asarray(buf)[1] = -2.5
    assert np.frombuffer(data, np.float64)[1] == -2.5
    data[0:8] = np.float64(7.0).tobytes()
    assert buf.tobytes()[:8] == np.float64(7.0).tobytes()


def test_buffer_keeps_its_source_alive():
    arr = np.arange(4.0)
    buf = fjffi.Buffer(arr, (4,), "float64")
    del arr
    assert np.asarray(buf).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_readonly_bytes_source_gives_readonly_buffer():
    buf = fjffi.Buffer(b"\x00" * 8, (), "float64")
    assert buf.readonly
    assert buf.tobytes() == bytes(8)
    assert memoryview(buf).readonly
    arr = np.asarray(buf)
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[()] = 1.0


def test_readonly_array_source_gives_readonly_buffer():
    src = np.arange(3, dtype=np.int32)
    src.flags.writeable = False
    buf = fjffi.Buffer(src, (3,), "int32")
    assert buf.readonly
    assert np.asarray(buf).tolist() == [0, 1, 2]


def test_readonly_bool_bytes_are_validated():
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        fjffi.Buffer(b"\x00\x01\x02", (3,), "bool")
    assert (info.value.byte_index, info.value.value) == (2, 2)


def test_readonly_bytes_size_mismatch():
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(b"\x00" * 5, (2,), "float64")
    assert (info.value.expected_bytes, info.value.actual_bytes) == (16, 5)


def test_non_contiguous_source_is_a_layout_error():
    with pytest.raises(fjffi.LayoutError, match="contiguous"):
        fjffi.Buffer(np.arange(4.0)[::2], (2,), "float64")


def test_misaligned_source_is_a_layout_error():
    raw = bytearray(17)
    with pytest.raises(fjffi.LayoutError, match="aligned"):
        fjffi.Buffer(memoryview(raw)[1:9], (), "float64")
    # uint8 has no alignment to break.
    assert fjffi.Buffer(memoryview(raw)[1:9], (8,), "uint8").nbytes == 8


def test_complex_aligns_like_its_parts():
    raw = np.zeros(5, np.float32)
    # 4-byte aligned but not 8: fine for complex64 (two float32).
    buf = fjffi.Buffer(raw[1:5], (2,), "complex64")
    assert buf.nbytes == 16


def test_init_twice_is_refused():
    buf = fjffi.Buffer(bytearray(8), (), "float64")
    with pytest.raises(TypeError):
        buf.__init__(bytearray(8), (), "float64")


@st.composite
def shapes_and_dtypes(draw):
    # Dimensions from tiny to past 2**63, so products land on both sides of
    # the limit; zero dimensions included.
    dim = st.one_of(st.integers(0, 5), st.integers(0, 2**40), st.integers(2**40, 2**63 - 1))
    shape = tuple(draw(st.lists(dim, min_size=0, max_size=5)))
    dtype = draw(st.sampled_from(sorted(ITEMSIZE)))
    return shape, dtype


@given(shapes_and_dtypes())
def test_buffer_size_matches_python_int_arithmetic(case):
    shape, dtype = case
    expected = math.prod(shape) * ITEMSIZE[dtype]
    if expected == 0:
        assert fjffi.Buffer(bytearray(0), shape, dtype).nbytes == 0
        return
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Buffer(bytearray(0), shape, dtype)
    if expected > INT64_MAX:
        assert info.value.expected_bytes is None
        with pytest.raises(fjffi.BufferMismatchError):
            fjffi.Buffer.zeros(shape, dtype)
    else:
        assert info.value.expected_bytes == expected
    assert info.value.actual_bytes == 0


@given(st.lists(st.integers(1, 10), max_size=3), st.sampled_from(sorted(ITEMSIZE)))
def test_buffer_size_matches_checked(shape, dtype):
    buf = fjffi.Buffer.zeros(shape, dtype)
    assert buf.nbytes == math.prod(shape) * ITEMSIZE[dtype]
    assert buf.shape == tuple(shape)
    assert fjffi.Buffer(bytearray(buf.nbytes), shape, dtype).nbytes == buf.nbytes


@given(st.lists(st.integers(1, 5), max_size=2))
def test_zeroed_buffer_is_zero(shape):
    buf = fjffi.Buffer.zeros(shape, "int64")
    assert buf.tobytes() == bytes(buf.nbytes)
    assert not np.asarray(buf).any()


def test_big_zeros_is_lazy_and_zero():
    buf = fjffi.Buffer.zeros((1 << 22,), "uint8")
    arr = np.asarray(buf)
    assert arr.sum() == 0 and arr.size == 1 << 22


def test_refcount_of_source_released_with_buffer():
    data = bytearray(8)
    before = sys.getrefcount(data)
    buf = fjffi.Buffer(data, (), "float64")
    assert sys.getrefcount(data) > before
    del buf
    assert sys.getrefcount(data) == before
    data.append(0)  # resizable again: no buffer export left behind
