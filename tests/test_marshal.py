"""to_buffer / from_buffer: the Python and numpy mapping, zero-copy where
possible, copies where not, and bit-exact round trips for every dtype.

Ported from fj-ffi's marshal.rs tests and lib.rs round-trip tests, plus
properties over raw bits (NaN payloads, -0.0, subnormals, int extremes).
"""

import array
import struct
import sys

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fjffi

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DTYPES = [
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
    "uint64", "uint32", "uint16", "uint8", "bool", "complex64", "complex128",
]
# IEEE layouts (exponent bits, mantissa bits) of the float types and of the
# parts of the complex types.
FLOAT_LAYOUT = {"float64": (11, 52), "float32": (8, 23), "float16": (5, 10),
                "bfloat16": (8, 7), "complex64": (8, 23), "complex128": (11, 52)}


def np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def roundtrip(value):
    return fjffi.from_buffer(fjffi.to_buffer(value))


def float_specials(exp_bits, mant_bits):
    """Bit patterns of the values a float conversion would disturb."""
    sign = 1 << (exp_bits + mant_bits)
    inf = ((1 << exp_bits) - 1) << mant_bits
    quiet = 1 << (mant_bits - 1)
    return [0, sign, 1, (1 << mant_bits) - 1, sign | 1, inf, sign | inf,
            inf | 1,                    # signalling NaN, smallest payload
            inf | quiet,                # the default quiet NaN
            sign | inf | quiet | 0x5,   # negative quiet NaN with a payload
            inf | ((1 << mant_bits) - 1)]


def special_elements(name):
    """Native-order element bytes of interesting values of a dtype."""
    dt = np_dtype(name)
    if name == "bool":
        return [b"\x00", b"\x01"]
    if name in FLOAT_LAYOUT:
        exp_bits, mant_bits = FLOAT_LAYOUT[name]
        part = (1 + exp_bits + mant_bits) // 8
        bits = [b.to_bytes(part, sys.byteorder) for b in float_specials(exp_bits, mant_bits)]
        if name.startswith("complex"):
            return [re + im for re in bits[::2] for im in bits[1::3]]
        return bits
    info = np.iinfo(dt)
    return [int(v).to_bytes(dt.itemsize, sys.byteorder, signed=info.min < 0)
            for v in (info.min, info.max, 0, 1, info.min + 1, info.max - 1)]


@st.composite
def raw_arrays(draw, dtypes=DTYPES, max_dims=3):
    """(dtype name, shape, native raw bytes) with specials mixed in."""
    name = draw(st.sampled_from(dtypes))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=max_dims)))
    n = int(np.prod(shape, dtype=np.int64))
    size = np_dtype(name).itemsize
    element = st.one_of(st.binary(min_size=size, max_size=size),
                        st.sampled_from(special_elements(name)))
    if name == "bool":
        element = st.sampled_from([b"\x00", b"\x01"])
    raw = b"".join(draw(st.lists(element, min_size=n, max_size=n)))
    return name, shape, raw


def array_from_raw(name, shape, raw):
    # bytearray: frombuffer over bytes would be read-only.
    return np.frombuffer(bytearray(raw), np_dtype(name)).reshape(shape)


def swap_elements(name, raw):
    """raw with each element (each part, for complex) byte-reversed."""
    part = np_dtype(name).itemsize // (2 if name.startswith("complex") else 1)
    return b"".join(raw[i:i + part][::-1] for i in range(0, len(raw), part))


# --- Python values ----------------------------------------------------------

def test_python_float_is_float64():
    buf = fjffi.to_buffer(2.5)
    assert (buf.dtype, buf.shape, buf.nbytes) == (np.float64, (), 8)
    assert buf.tobytes() == struct.pack("=d", 2.5)


def test_python_int_is_int64():
    buf = fjffi.to_buffer(-3)
    assert (buf.dtype, buf.shape) == (np.int64, ())
    assert buf.tobytes() == struct.pack("=q", -3)


def test_python_bool_is_bool_not_int():
    assert fjffi.to_buffer(True).dtype == np.bool_
    assert fjffi.to_buffer(True).tobytes() == b"\x01"
    assert fjffi.to_buffer(False).tobytes() == b"\x00"


def test_python_complex_is_complex128():
    buf = fjffi.to_buffer(complex(1.25, -3.5))
    assert (buf.dtype, buf.shape) == (np.complex128, ())
    assert buf.tobytes() == struct.pack("=dd", 1.25, -3.5)


@pytest.mark.parametrize("value", [INT64_MIN, INT64_MAX, 0])
def test_int64_extremes_fit(value):
    assert roundtrip(value)[()] == value


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1, 2**100, -(2**64)])
def test_tensor_to_buffer_rejects_int_out_of_range(value):
    with pytest.raises(fjffi.UnrepresentableValueError) as info:
        fjffi.to_buffer(value)
    assert info.value.dtype == "int64"
    assert info.value.value == value
    assert isinstance(info.value, OverflowError)


def test_python_list_goes_through_numpy():
    buf = fjffi.to_buffer([[1.0, 2.0], [3.0, 4.0]])
    assert (buf.dtype, buf.shape) == (np.float64, (2, 2))
    assert fjffi.from_buffer(buf).tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_buffer_protocol_object_goes_through_numpy_without_copy():
    src = array.array("d", [1.0, 2.0, 3.0])
    buf = fjffi.to_buffer(src)
    assert (buf.dtype, buf.shape) == (np.float64, (3,))
    fjffi.from_buffer(buf)[0] = 9.0
    assert src[0] == 9.0


def test_to_buffer_of_a_buffer_is_itself():
    buf = fjffi.Buffer.zeros((2,), "int8")
    assert fjffi.to_buffer(buf) is buf


@pytest.mark.parametrize("value", ["text", b"bytes"])
def test_str_and_bytes_are_refused(value):
    with pytest.raises(fjffi.UnsupportedDtypeError, match="fjffi.Buffer"):
        fjffi.to_buffer(value)


@pytest.mark.parametrize("value", [
    np.array([1], dtype=object), np.array(["a"]), np.zeros(2, np.longdouble),
    np.zeros(2, "datetime64[s]"), np.zeros(2, "V4"),
])
def test_tensor_to_buffer_rejects_declared_dtype_mismatch(value):
    with pytest.raises(fjffi.UnsupportedDtypeError) as info:
        fjffi.to_buffer(value)
    assert info.value.dtype == value.dtype


def test_object_arrays_are_refused_even_from_lists():
    with pytest.raises(fjffi.UnsupportedDtypeError):
        fjffi.to_buffer([1, "two"])


# --- numpy scalars and arrays keep dtype and shape --------------------------

@pytest.mark.parametrize("name", DTYPES)
def test_numpy_scalar_keeps_dtype(name):
    scalar = np.zeros((), np_dtype(name))[()]
    buf = fjffi.to_buffer(scalar)
    assert buf.dtype == np_dtype(name)
    assert buf.shape == ()
    assert fjffi.from_buffer(buf).dtype == np_dtype(name)


@pytest.mark.parametrize("name", DTYPES)
def test_numpy_array_keeps_dtype_and_shape(name):
    arr = np.zeros((2, 0, 3) if name == "int8" else (2, 3), np_dtype(name))
    buf = fjffi.to_buffer(arr)
    assert buf.dtype == arr.dtype
    assert buf.shape == arr.shape
    assert buf.nbytes == arr.nbytes


def test_contiguous_array_is_wrapped_without_copy():
    arr = np.arange(6, dtype=np.int32).reshape(2, 3)
    buf = fjffi.to_buffer(arr)
    back = fjffi.from_buffer(buf)
    assert np.shares_memory(back, arr)
    back[1, 1] = -1
    assert arr[1, 1] == -1
    assert not buf.readonly


def test_readonly_array_gives_readonly_buffer():
    arr = np.arange(3.0)
    arr.flags.writeable = False
    buf = fjffi.to_buffer(arr)
    assert buf.readonly
    back = fjffi.from_buffer(buf)
    assert np.shares_memory(back, arr)
    assert not back.flags.writeable


def test_non_contiguous_array_is_copied():
    base = np.arange(10.0)
    buf = fjffi.to_buffer(base[::3])
    back = fjffi.from_buffer(buf)
    assert back.tolist() == [0.0, 3.0, 6.0, 9.0]
    assert not np.shares_memory(back, base)
    assert back.flags.c_contiguous


def test_fortran_array_is_copied_in_c_order():
    arr = np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3))
    back = roundtrip(arr)
    assert back.shape == (2, 3)
    assert back.tolist() == arr.tolist()
    assert not np.shares_memory(back, arr)


def test_byte_swapped_array_is_copied_to_native():
    arr = np.array([1.5, -2.0, 3.0e300], dtype=np.dtype(np.float64).newbyteorder("S"))
    buf = fjffi.to_buffer(arr)
    assert buf.dtype == np.float64 and buf.dtype.isnative
    assert fjffi.from_buffer(buf).tolist() == [1.5, -2.0, 3.0e300]


def test_misaligned_array_is_copied_to_aligned_memory():
    raw = bytearray(8 * 3 + 1)
    arr = np.frombuffer(raw, np.float64, count=3, offset=1)
    arr_w = arr  # writable view over raw
    arr_w[:] = [1.0, -0.0, 2.5]
    assert not arr.flags.aligned
    back = roundtrip(arr)
    assert back.ctypes.data % 8 == 0
    assert not np.shares_memory(back, arr)
    assert back.tobytes() == arr.tobytes()


def test_bool_array_with_noncanonical_byte_is_refused():
    arr = np.array([0, 1, 2], np.uint8).view(np.bool_)
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        fjffi.to_buffer(arr)
    assert (info.value.byte_index, info.value.value) == (2, 2)


# --- from_buffer ------------------------------------------------------------

def test_from_buffer_scalar_is_0d():
    back = fjffi.from_buffer(fjffi.Buffer(bytearray(struct.pack("=d", 4.0)), (), "float64"))
    assert isinstance(back, np.ndarray)
    assert back.shape == () and back.ndim == 0
    assert back[()] == 4.0


def test_from_buffer_is_a_view_that_keeps_the_buffer_alive():
    buf = fjffi.Buffer.zeros((3,), "int64")
    arr = fjffi.from_buffer(buf)
    arr[2] = 7
    assert buf.tobytes()[16:] == struct.pack("=q", 7)
    assert arr.base is buf
    del buf
    assert arr.tolist() == [0, 0, 7]


def test_from_buffer_takes_only_buffers():
    with pytest.raises(TypeError):
        fjffi.from_buffer(np.zeros(2))
    with pytest.raises(TypeError):
        fjffi.from_buffer(None)


def test_from_buffer_bfloat16_is_ml_dtypes():
    raw = struct.pack("=HH", 0x3F80, 0xC000)  # 1.0 and -2.0
    back = fjffi.from_buffer(fjffi.Buffer(bytearray(raw), (2,), "bfloat16"))
    assert back.dtype == np.dtype(ml_dtypes.bfloat16)
    assert back.astype(np.float32).tolist() == [1.0, -2.0]


# --- the reference's round trips --------------------------------------------

def test_roundtrip_scalar_f64():
    back = roundtrip(42.0)
    assert back.dtype == np.float64 and back[()] == 42.0


def test_roundtrip_scalar_i64():
    back = roundtrip(99)
    assert back.dtype == np.int64 and back[()] == 99


def test_roundtrip_scalar_bool():
    assert roundtrip(True)[()] is np.True_
    assert roundtrip(False)[()] is np.False_


def test_roundtrip_scalar_u32():
    back = roundtrip(np.uint32(2**32 - 1))
    assert back.dtype == np.uint32 and back[()] == 2**32 - 1


def test_roundtrip_scalar_u64():
    back = roundtrip(np.uint64(2**64 - 1))
    assert back.dtype == np.uint64 and back[()] == 2**64 - 1


def test_roundtrip_scalar_complex():
    c64 = roundtrip(np.complex64(1.25 - 3.5j))
    assert c64.dtype == np.complex64 and c64[()] == np.complex64(1.25 - 3.5j)
    c128 = roundtrip(np.complex128(1.25 - 3.5j))
    assert c128.dtype == np.complex128 and c128[()] == 1.25 - 3.5j


def test_roundtrip_tensor_f64():
    buf = fjffi.to_buffer(np.array([1.0, 2.0, 3.0]))
    assert (buf.nbytes, buf.shape) == (24, (3,))
    assert fjffi.from_buffer(buf).tolist() == [1.0, 2.0, 3.0]


F64_BITS = [struct.unpack("=Q", struct.pack("=d", -0.0))[0], 0x7FF8_0000_0000_0001,
            struct.unpack("=Q", struct.pack("=d", 3.5))[0]]


def test_tensor_to_buffer_tensor_f64_preserves_bit_order():
    arr = np.array(F64_BITS, np.uint64).view(np.float64)
    buf = fjffi.to_buffer(arr)
    assert buf.tobytes() == b"".join(struct.pack("=Q", b) for b in F64_BITS)
    assert buf.shape == (3,)


def test_buffer_to_value_tensor_f64_preserves_bit_order():
    raw = bytearray(b"".join(struct.pack("=Q", b) for b in F64_BITS))
    back = fjffi.from_buffer(fjffi.Buffer(raw, (3,), "float64"))
    assert back.dtype == np.float64 and back.shape == (3,)
    assert back.view(np.uint64).tolist() == F64_BITS


def test_roundtrip_tensor_i64_matrix():
    buf = fjffi.to_buffer(np.array([[10, 20], [30, 40]], np.int64))
    assert (buf.nbytes, buf.shape) == (32, (2, 2))
    assert fjffi.from_buffer(buf).tolist() == [[10, 20], [30, 40]]


def test_roundtrip_tensor_i32():
    values = [-(2**31), 0, 2**31 - 1]
    buf = fjffi.to_buffer(np.array(values, np.int32))
    assert (buf.nbytes, buf.dtype) == (12, np.int32)
    assert fjffi.from_buffer(buf).tolist() == values


def test_roundtrip_tensor_bool():
    buf = fjffi.to_buffer(np.array([True, False, True, False]))
    assert buf.nbytes == 4
    assert fjffi.from_buffer(buf).tolist() == [True, False, True, False]


def test_roundtrip_tensor_u32():
    buf = fjffi.to_buffer(np.array([0, 7, 2**32 - 1], np.uint32))
    assert buf.nbytes == 12
    assert fjffi.from_buffer(buf).tolist() == [0, 7, 2**32 - 1]


def test_roundtrip_scalar_f32():
    buf = fjffi.to_buffer(np.float32(1.25))
    assert buf.nbytes == 4
    back = fjffi.from_buffer(buf)
    assert back.dtype == np.float32 and back[()] == np.float32(1.25)


def test_buffer_to_value_f32():
    back = fjffi.from_buffer(fjffi.Buffer(bytearray(4), (), "float32"))
    assert back.dtype == np.float32 and back.shape == ()
    assert back.tobytes() == bytes(4)


def test_buffer_to_value_i32_scalar_preserves_i32():
    raw = bytearray((-7).to_bytes(4, sys.byteorder, signed=True))
    back = fjffi.from_buffer(fjffi.Buffer(raw, (), "int32"))
    assert back.dtype == np.int32 and back[()] == -7


def test_buffer_to_value_rejects_noncanonical_bool_byte():
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        fjffi.Buffer(bytearray([0, 1, 2]), (3,), "bool")
    assert (info.value.byte_index, info.value.value) == (2, 2)


def test_buffer_to_value_large_dimension():
    # fj-core caps a dimension at u32::MAX; fjffi takes any dimension whose
    # buffer size fits, so an empty buffer may have a huge axis.
    back = fjffi.from_buffer(fjffi.Buffer(bytearray(0), (2**32, 0), "float64"))
    assert back.shape == (2**32, 0)


def test_marshal_roundtrip_all_supported_types():
    cases = [np.pi, np.float32(1.25), INT64_MIN, INT64_MAX, True, False,
             np.array([0.0, -np.inf]), np.array([[42]], np.int64)]
    for value in cases:
        back = roundtrip(value)
        expected = np.asarray(value)
        assert back.shape == expected.shape
        assert back.dtype == expected.dtype
        assert back.tobytes() == expected.tobytes()


def test_metamorphic_marshal_roundtrip_is_identity():
    for value in [42.0, -99, True, np.array([[1.0, 2.0], [3.0, 4.0]])]:
        back = roundtrip(value)
        np.testing.assert_array_equal(back, np.asarray(value))
        assert back.dtype == np.asarray(value).dtype


# --- properties -------------------------------------------------------------

@given(st.integers(0, 2**64 - 1))
def test_prop_f64_scalar_roundtrip(bits):
    value = struct.unpack("=d", struct.pack("=Q", bits))[0]
    assert roundtrip(value).tobytes() == struct.pack("=Q", bits)


@given(st.integers(INT64_MIN, INT64_MAX))
def test_prop_i64_scalar_roundtrip(value):
    back = roundtrip(value)
    assert back.dtype == np.int64 and int(back[()]) == value


@given(raw_arrays())
def test_prop_array_roundtrip_is_bit_exact_and_zero_copy(case):
    name, shape, raw = case
    arr = array_from_raw(name, shape, raw)
    buf = fjffi.to_buffer(arr)
    assert (buf.dtype, buf.shape, buf.nbytes) == (arr.dtype, shape, len(raw))
    back = fjffi.from_buffer(buf)
    assert back.dtype == arr.dtype and back.shape == shape
    assert back.tobytes() == raw
    if raw:
        assert np.shares_memory(back, arr)


@given(raw_arrays(max_dims=0))
def test_prop_numpy_scalar_roundtrip_is_bit_exact(case):
    name, shape, raw = case
    scalar = array_from_raw(name, shape, raw)[()]
    assert type(scalar) is not np.ndarray
    buf = fjffi.to_buffer(scalar)
    assert buf.dtype == np_dtype(name) and buf.shape == ()
    assert buf.tobytes() == raw
    assert fjffi.from_buffer(buf).tobytes() == raw


@given(raw_arrays())
def test_prop_raw_bytes_buffer_roundtrip_is_identity(case):
    name, shape, raw = case
    buf = fjffi.Buffer(bytearray(raw), shape, name)
    back = fjffi.from_buffer(buf)
    assert back.dtype == np_dtype(name) and back.shape == shape
    assert back.tobytes() == raw
    assert fjffi.to_buffer(back).tobytes() == raw


@given(raw_arrays([d for d in DTYPES if np_dtype(d).itemsize > 1]),
       st.sampled_from(["byteswapped", "strided", "misaligned"]))
def test_prop_copied_layouts_preserve_bits(case, layout):
    name, shape, raw = case
    dt = np_dtype(name)
    if layout == "byteswapped":
        arr = np.frombuffer(bytearray(swap_elements(name, raw)), dt.newbyteorder("S"))
    elif layout == "strided":
        doubled = b"".join(raw[i:i + dt.itemsize] * 2 for i in range(0, len(raw), dt.itemsize))
        arr = np.frombuffer(bytearray(doubled), dt)[::2]
    else:
        arr = np.frombuffer(bytearray(b"\0" + raw), dt, offset=1)
    arr = arr.reshape(shape)
    back = roundtrip(arr)
    assert back.dtype == dt and back.dtype.isnative
    assert back.shape == shape
    assert back.tobytes() == raw
    assert back.flags.c_contiguous and back.flags.aligned


# A float32 or float16 signalling NaN turns quiet if it ever becomes a
# Python float (a C double): these bits survive only a bit-exact path.
SNAN = [("float32", 0x7F800001), ("float32", 0xFFA00005), ("float16", 0x7C01),
        ("bfloat16", 0x7F81)]


@pytest.mark.parametrize("name, bits", SNAN)
def test_float32_never_passes_through_a_python_float(name, bits):
    dt = np_dtype(name)
    raw = bits.to_bytes(dt.itemsize, sys.byteorder)
    scalar = np.frombuffer(raw, dt)[0]
    assert fjffi.to_buffer(scalar).tobytes() == raw
    assert fjffi.to_buffer(np.frombuffer(raw, dt).reshape(())).tobytes() == raw
    assert fjffi.from_buffer(fjffi.Buffer(bytearray(raw), (), name)).tobytes() == raw
    # The same through a call: negate flips the sign bit and nothing else.
    if name == "float32":
        out = np.zeros((), np.float32)
        fjffi.Call("negate").invoke([scalar], [out])
        assert out.tobytes() == (bits ^ 0x80000000).to_bytes(4, sys.byteorder)
