"""The bad input catalogue: every malformed input a user can hand fjffi.

Each case builds fresh objects, hands them to fjffi and names the exact
exception docs/reference.md's error table gives for it.  After every case, each buffer
handed in is byte-for-byte what it was, except outputs of a call that failed
after its kernel ran, which are zeroed; and no registry has changed.
"""

import ctypes
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

import fjffi
from fjffi import (
    Buffer,
    BufferMismatchError,
    Call,
    CallFailedError,
    DuplicateTargetError,
    FfiError,
    InvalidBoolByteError,
    LayoutError,
    NullPointerError,
    TargetNotFoundError,
    UnrepresentableValueError,
    UnsupportedDtypeError,
    _testing,
)

# The builtin each fjffi error also derives from (docs/reference.md, "Errors").
ALSO_A = {
    TargetNotFoundError: LookupError,
    DuplicateTargetError: ValueError,
    NullPointerError: ValueError,
    BufferMismatchError: ValueError,
    InvalidBoolByteError: ValueError,
    UnsupportedDtypeError: TypeError,
    UnrepresentableValueError: OverflowError,
    LayoutError: ValueError,
    CallFailedError: RuntimeError,
}

PATTERN = 0x5A  # what outputs hold before a call, so "untouched" is visible


@dataclass
class Case:
    name: str
    raises: type | None  # None: the call succeeds (inputs that fjffi copies)
    build: object  # build(reg) -> Handed
    zeroed: bool = False  # outputs zeroed: the failure came after the kernel ran
    fields: dict = field(default_factory=dict)


@dataclass
class Handed:
    act: object  # the call that must fail (or succeed)
    inputs: tuple = ()
    outputs: tuple = ()
    expected: object = None  # for a success: what output 0 must hold


TABLE = []


def case(raises, *, zeroed=False, **fields):
    def add(build):
        TABLE.append(Case(build.__name__, raises, build, zeroed, fields))
        return build

    return add


def patterned(shape, dtype="float64"):
    out = np.empty(shape, dtype=dtype)
    out.reshape(-1).view(np.uint8)[:] = PATTERN if np.dtype(dtype) != bool else 1
    return out


def misaligned(n, dtype="float64", fill=None):
    """A writable array whose data starts one byte past an aligned address."""
    itemsize = np.dtype(dtype).itemsize
    arr = np.frombuffer(bytearray(n * itemsize + 1), dtype=dtype, offset=1, count=n)
    assert not arr.flags.aligned
    arr[:] = np.arange(n) + 1 if fill is None else fill
    return arr


def readonly(arr):
    arr.flags.writeable = False
    return arr


def capsule():
    """A real kernel to register: only the name or the options are wrong."""
    return _testing.kernels()["write_one_byte_ok"][0]


def invoke(reg, name, inputs, outputs):
    return lambda: Call(name, reg).invoke(inputs, outputs)


class NotADtype:
    pass


# --- wrong or unknown dtypes; object and string arrays ----------------------

def buffer_case(data, shape, dtype):
    return Handed(lambda: Buffer(data, shape, dtype), inputs=(data,))


for _dtype in ("float128", object, NotADtype, "nonsense", [("a", "f8")], ">f8", "U1",
               "M8[s]", "V8", 3.5, "f8,,", "f8,["):
    TABLE.append(Case(f"Buffer dtype {_dtype!r}", UnsupportedDtypeError,
                      lambda reg, d=_dtype: buffer_case(bytearray(16), (1,), d)))


@case(UnsupportedDtypeError)
def zeros_float128(reg):
    return Handed(lambda: Buffer.zeros((2,), "float128"))


@case(UnsupportedDtypeError)
def to_buffer_string_array(reg):
    x = np.array(["a", "bc"])
    return Handed(lambda: fjffi.to_buffer(x), inputs=(x,))


@case(UnsupportedDtypeError)
def to_buffer_object_array(reg):
    x = np.array([1.0, None], dtype=object)
    return Handed(lambda: fjffi.to_buffer(x), inputs=(x,))


@case(UnsupportedDtypeError)
def to_buffer_str(reg):
    return Handed(lambda: fjffi.to_buffer("abc"))


@case(UnsupportedDtypeError)
def to_buffer_bytes(reg):
    return Handed(lambda: fjffi.to_buffer(b"\x00" * 8))


@case(UnsupportedDtypeError)
def to_buffer_longdouble(reg):
    return Handed(lambda: fjffi.to_buffer(np.longdouble(1.5)))


@case(UnsupportedDtypeError)
def input_object_array(reg):
    x, out = np.array([1.0, "a"], dtype=object), patterned(2)
    return Handed(invoke(reg, "negate", [x], [out]), (x,), (out,))


@case(UnsupportedDtypeError)
def input_string_array(reg):
    x, out = np.array(["a", "b"]), patterned(2)
    return Handed(invoke(reg, "negate", [x], [out]), (x,), (out,))


@case(UnsupportedDtypeError)
def input_float128(reg):
    x, out = np.ones(2, dtype="float128"), patterned(2)
    return Handed(invoke(reg, "negate", [x], [out]), (x,), (out,))


@case(UnsupportedDtypeError)
def output_object_array(reg):
    x, out = np.arange(2.0), np.array([7, "keep"], dtype=object)
    return Handed(invoke(reg, "negate", [x], [out]), (x,), (out,))


@case(UnsupportedDtypeError)
def output_string_array(reg):
    x, out = np.arange(2.0), np.array(["ab", "cd"])
    return Handed(invoke(reg, "negate", [x], [out]), (x,), (out,))


@case(UnsupportedDtypeError)
def output_float128(reg):
    x, out = np.arange(2.0), patterned(2, "float128")
    return Handed(invoke(reg, "negate", [x], [out]), (x,), (out,))


@case(UnsupportedDtypeError)
def call_result_dtype_object(reg):
    x = np.arange(2.0)
    return Handed(lambda: fjffi.call("negate", [x], [np.empty(2, dtype=object)], reg), (x,))


# --- values the declared dtype cannot hold ------------------------------------

@case(UnrepresentableValueError, dtype="int64", value=2**64)
def to_buffer_int_too_big(reg):
    return Handed(lambda: fjffi.to_buffer(2**64))


@case(UnrepresentableValueError, dtype="int64", value=-(2**63) - 1)
def to_buffer_int_too_small(reg):
    return Handed(lambda: fjffi.to_buffer(-(2**63) - 1))


@case(UnrepresentableValueError, value=2**70)
def input_int_too_big(reg):
    out = patterned((), "int64")
    return Handed(invoke(reg, "negate", [2**70], [out]), (), (out,))


# --- negative, huge and overflowing shapes ------------------------------------

@case(ValueError)
def buffer_negative_dim(reg):
    return buffer_case(bytearray(8), (-1,), "float64")


@case(ValueError)
def zeros_negative_dim(reg):
    return Handed(lambda: Buffer.zeros((-3, 2), "float64"))


@case(BufferMismatchError, expected_bytes=None)
def buffer_dim_past_int64(reg):
    return buffer_case(bytearray(8), (2**63,), "float64")


@case(BufferMismatchError, expected_bytes=None)
def zeros_dim_past_uint64(reg):
    return Handed(lambda: Buffer.zeros((2**64,), "uint8"))


@case(BufferMismatchError, expected_bytes=None, actual_bytes=8)
def buffer_shape_product_overflows(reg):
    return buffer_case(bytearray(8), (2**62, 4), "float64")


@case(BufferMismatchError, expected_bytes=None)
def zeros_shape_product_overflows(reg):
    return Handed(lambda: Buffer.zeros((2**40, 2**40), "float64"))


@case(BufferMismatchError, expected_bytes=None)
def zeros_itemsize_overflows(reg):
    # The element count fits, times 16 bytes it does not.
    return Handed(lambda: Buffer.zeros((2**60,), "complex128"))


@case(ValueError)
def buffer_too_many_dims(reg):
    return buffer_case(bytearray(8), (1,) * 65, "float64")


@case(TypeError)
def buffer_float_dim(reg):
    return buffer_case(bytearray(8), (1.0,), "float64")


@case(TypeError)
def buffer_str_shape(reg):
    return buffer_case(bytearray(8), "ab", "float64")


@case(TypeError)
def buffer_none_shape(reg):
    return buffer_case(bytearray(8), None, "float64")


@case(ValueError)
def call_result_negative_shape(reg):
    x, spec = np.arange(2.0), SimpleNamespace(shape=(-2,), dtype=np.dtype("float64"))
    return Handed(lambda: fjffi.call("negate", [x], [spec], reg), (x,))


# --- mismatched byte lengths --------------------------------------------------

@case(BufferMismatchError, expected_bytes=8, actual_bytes=7)
def buffer_short(reg):
    return buffer_case(bytearray(7), (), "float64")


@case(BufferMismatchError, expected_bytes=16, actual_bytes=24)
def buffer_long(reg):
    return buffer_case(bytearray(24), (2,), "float64")


@case(BufferMismatchError, expected_bytes=1, actual_bytes=0)
def buffer_empty_for_one_bool(reg):
    return buffer_case(bytearray(0), (1,), "bool")


@case(BufferMismatchError, expected_bytes=0, actual_bytes=8)
def buffer_zero_size_shape_with_bytes(reg):
    return buffer_case(bytearray(8), (0, 5), "float64")


@case(CallFailedError, zeroed=True, code=4)
def output_shape_differs(reg):
    x, out = np.arange(4.0), patterned(3)
    return Handed(invoke(reg, "negate", [x], [out]), (x,), (out,))


@case(CallFailedError, zeroed=True, code=3)
def output_dtype_differs(reg):
    x, out = np.arange(4.0), patterned(4, "float32")
    return Handed(invoke(reg, "negate", [x], [out]), (x,), (out,))


# --- outputs that cannot be written in place ---------------------------------

@case(LayoutError)
def output_not_contiguous(reg):
    base = patterned(8)
    return Handed(invoke(reg, "negate", [np.arange(4.0)], [base[::2]]), (), (base,))


@case(LayoutError)
def output_fortran_order(reg):
    x, out = np.ones((2, 3)), np.asfortranarray(patterned((2, 3)))
    return Handed(invoke(reg, "negate", [x], [out]), (x,), (out,))


@case(LayoutError)
def output_misaligned(reg):
    out = misaligned(4)
    return Handed(invoke(reg, "negate", [np.arange(4.0)], [out]), (), (out,))


@case(LayoutError)
def output_byte_swapped(reg):
    out = patterned(4, ">f8")
    return Handed(invoke(reg, "negate", [np.arange(4.0)], [out]), (), (out,))


@case(LayoutError)
def output_read_only_array(reg):
    out = readonly(patterned(4))
    return Handed(invoke(reg, "negate", [np.arange(4.0)], [out]), (), (out,))


@case(LayoutError)
def output_read_only_buffer(reg):
    arr = readonly(patterned(4))
    out = fjffi.to_buffer(arr)
    return Handed(invoke(reg, "negate", [np.arange(4.0)], [out]), (), (arr,))


@case(LayoutError)
def output_buffer_over_bytes(reg):
    data = bytes([PATTERN] * 32)
    out = Buffer(data, (4,), "float64")
    return Handed(invoke(reg, "negate", [np.arange(4.0)], [out]), (), (data,))


@case(LayoutError)
def buffer_over_non_contiguous_array(reg):
    return buffer_case(np.zeros(8)[::2], (4,), "float64")


@case(LayoutError)
def buffer_over_non_contiguous_memoryview(reg):
    return buffer_case(memoryview(bytearray(16))[::2], (8,), "uint8")


@case(LayoutError)
def buffer_misaligned(reg):
    return buffer_case(memoryview(bytearray(9))[1:], (1,), "float64")


@case(LayoutError)
def output_bytearray(reg):
    out = bytearray([PATTERN] * 32)
    return Handed(invoke(reg, "negate", [np.arange(4.0)], [out]), (), (out,))


@case(LayoutError)
def output_list(reg):
    out = [0.0, 0.0]
    return Handed(invoke(reg, "negate", [np.arange(2.0)], [out]), (), ())


@case(LayoutError)
def output_python_float(reg):
    return Handed(invoke(reg, "noop", [], [1.5]))


# --- inputs that fjffi copies: the call works and the original is untouched --

def copied_input(reg, x):
    out = patterned(x.shape, "float64")
    return Handed(invoke(reg, "negate", [x], [out]), (x,), (out,),
                  expected=-np.ascontiguousarray(x, dtype="float64"))


@case(None)
def input_not_contiguous(reg):
    return copied_input(reg, np.arange(8.0)[::2])


@case(None)
def input_fortran_order(reg):
    return copied_input(reg, np.asfortranarray(np.arange(6.0).reshape(2, 3)))


@case(None)
def input_misaligned(reg):
    return copied_input(reg, misaligned(5))


@case(None)
def input_0d_byte_swapped(reg):
    return copied_input(reg, np.array(-2.5, dtype=">f8"))


@case(None)
def input_byte_swapped(reg):
    return copied_input(reg, np.arange(4.0).astype(">f8"))


@case(None)
def input_read_only(reg):
    return copied_input(reg, readonly(np.arange(4.0)))


@case(None)
def input_negative_strides(reg):
    return copied_input(reg, np.arange(5.0)[::-1])


# --- overlapping inputs and outputs -------------------------------------------

@case(LayoutError)
def output_is_input(reg):
    x = np.arange(4.0)
    return Handed(invoke(reg, "negate", [x], [x]), (), (x,))


@case(LayoutError)
def output_overlaps_input(reg):
    base = np.arange(6.0)
    return Handed(invoke(reg, "negate", [base[:4]], [base[2:]]), (), (base,))


@case(LayoutError)
def output_overlaps_output(reg):
    base = patterned(6)
    return Handed(invoke(reg, "raw_noop", [], [base[:4], base[3:]]), (), (base,))


@case(LayoutError)
def input_buffer_over_output(reg):
    out = patterned(4)
    alias = Buffer(out, (4,), "float64")
    return Handed(invoke(reg, "negate", [alias], [out]), (), (out,))


# --- bool bytes other than 0 and 1 --------------------------------------------

@case(InvalidBoolByteError, buffer_index=None, byte_index=1, value=2)
def buffer_bool_two(reg):
    return buffer_case(bytearray([0, 2, 1]), (3,), "bool")


@case(InvalidBoolByteError, buffer_index=None, byte_index=9, value=0x80)
def buffer_bool_high_bit_past_first_word(reg):
    return buffer_case(bytearray([1] * 9 + [0x80]), (10,), "bool")


@case(InvalidBoolByteError, byte_index=0, value=255)
def to_buffer_bool_255(reg):
    x = np.array([255, 0], dtype=np.uint8).view(bool)
    return Handed(lambda: fjffi.to_buffer(x), inputs=(x,))


@case(InvalidBoolByteError, buffer_index=0, byte_index=1, value=3)
def input_bool_three_kernel_never_runs(reg):
    # write_one_byte_ok would write 0xAB: an untouched output shows it never ran.
    x, out = np.array([1, 3], dtype=np.uint8).view(bool), patterned(4, "uint8")
    return Handed(invoke(reg, "write_one_byte_ok", [x], [out]), (x,), (out,))


@case(InvalidBoolByteError, buffer_index=1, byte_index=2, value=7)
def input_buffer_bool_spoiled_after_construction(reg):
    buf = Buffer.zeros((3,), "bool")
    np.asarray(buf).view(np.uint8)[2] = 7
    out = patterned(1, "uint8")
    return Handed(invoke(reg, "raw_noop", [True, buf], [out]), (buf,), (out,))


@case(InvalidBoolByteError, zeroed=True, buffer_index=0, byte_index=0, value=2)
def output_bool_two_from_kernel(reg):
    out = patterned(4, "bool")
    return Handed(invoke(reg, "bool_two", [], [out]), (), (out,))


# --- names that are empty, hold NUL or are not str ----------------------------

for _name, _exc in (("", ValueError), ("neg\0ate", ValueError), (b"negate", TypeError),
                    (None, TypeError), (5, TypeError)):
    TABLE += [
        Case(f"Call name {_name!r}", _exc, lambda reg, n=_name: Handed(lambda: Call(n, reg))),
        Case(f"register name {_name!r}", _exc,
             lambda reg, n=_name: Handed(lambda: reg.register(n, capsule()))),
        Case(f"get name {_name!r}", _exc, lambda reg, n=_name: Handed(lambda: reg.get(n))),
    ]


@case(ValueError)
def register_callback_empty_name(reg):
    return Handed(lambda: reg.register_callback("", lambda args: ()))


# --- targets that are None, bare ints, or no function at all ------------------

for _target in (None, 0x7F0000001000, 0, True, "negate", 1.5):
    TABLE.append(Case(f"register target {_target!r}", TypeError,
                      lambda reg, t=_target: Handed(lambda: reg.register("t", t))))


@case(NullPointerError, target_name="t")
def register_null_ctypes_pointer(reg):
    raw_abi = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t,
                               ctypes.c_void_p, ctypes.c_size_t)
    return Handed(lambda: reg.register("t", raw_abi(0)))


@case(DuplicateTargetError, name="negate")
def register_duplicate(reg):
    return Handed(lambda: reg.register("negate", capsule()))


@case(ValueError)
def register_bad_api_version(reg):
    return Handed(lambda: reg.register("t", capsule(), api_version=2))


@case(ValueError)
def register_bad_gil_policy(reg):
    return Handed(lambda: reg.register("t", capsule(), gil="sometimes"))


# --- wrong numbers of inputs or outputs: the kernel reports it ----------------

@case(CallFailedError, zeroed=True, target="negate", code=1,
      message="negate: expected 1 input, got 2")
def typed_too_many_inputs(reg):
    x, out = np.arange(2.0), patterned(2)
    return Handed(invoke(reg, "negate", [x, x], [out]), (x,), (out,))


@case(CallFailedError, zeroed=True, target="add", code=1)
def typed_too_few_inputs(reg):
    x, out = np.arange(2.0), patterned(2)
    return Handed(invoke(reg, "add", [x], [out]), (x,), (out,))


@case(CallFailedError, zeroed=True, code=2, message="negate: expected 1 output, got 2")
def typed_too_many_outputs(reg):
    x, out0, out1 = np.arange(2.0), patterned(2), patterned(2)
    return Handed(invoke(reg, "negate", [x], [out0, out1]), (x,), (out0, out1))


@case(CallFailedError, code=2, message="negate: expected 1 output, got 0")
def typed_no_outputs(reg):
    x = np.arange(2.0)
    return Handed(invoke(reg, "negate", [x], []), (x,))


@case(CallFailedError, zeroed=True, code=1)
def typed_test_kernel_wrong_inputs(reg):
    out = patterned(4, "uint8")
    return Handed(invoke(reg, "write_prefix", [1, np.uint8(2)], [out]), (), (out,))


@case(CallFailedError, zeroed=True, target="copy", code=1,
      message="extern function returned code 1")
def raw_no_inputs(reg):
    out = patterned(1)
    return Handed(invoke(reg, "copy", [], [out]), (), (out,))


@case(CallFailedError, zeroed=True, target="double_f64", code=2,
      message="extern function returned code 2")
def raw_two_outputs(reg):
    out0, out1 = patterned(()), patterned(())
    return Handed(invoke(reg, "double_f64", [1.0], [out0, out1]), (), (out0, out1))


# --- unknown target names and calls that are not calls ------------------------

@case(TargetNotFoundError, name="nope")
def call_unknown_name(reg):
    out = patterned(2)
    return Handed(invoke(reg, "nope", [np.arange(2.0)], [out]), (), (out,))


@case(TargetNotFoundError, name="negate ")
def call_name_with_trailing_space(reg):
    out = patterned(2)
    return Handed(invoke(reg, "negate ", [np.arange(2.0)], [out]), (), (out,))


@case(TargetNotFoundError, name="write_prefix")
def call_test_kernel_in_default_registry(reg):
    return Handed(lambda: fjffi.call("write_prefix", [], []))


@case(TargetNotFoundError, name="nope")
def get_unknown_name(reg):
    return Handed(lambda: reg.get("nope"))


@case(TypeError)
def invoke_inputs_not_iterable(reg):
    return Handed(invoke(reg, "noop", None, []))


@case(TypeError)
def invoke_outputs_not_iterable(reg):
    return Handed(invoke(reg, "noop", [], 5))


@case(TypeError)
def from_buffer_of_an_array(reg):
    x = np.arange(2.0)
    return Handed(lambda: fjffi.from_buffer(x), inputs=(x,))


# --- the checks ---------------------------------------------------------------

def memory_of(obj):
    """The bytes of all the memory obj can reach (a view: its whole base)."""
    while isinstance(obj, np.ndarray) and obj.base is not None:
        obj = obj.base
    if isinstance(obj, np.ndarray):
        return obj.tobytes() if obj.dtype != object else repr(obj.tolist()).encode()
    if isinstance(obj, Buffer):
        return obj.tobytes()
    if isinstance(obj, memoryview):
        obj = obj.obj
    return bytes(memoryview(obj).cast("B"))


def check_error(c, exc):
    assert type(exc) is c.raises, f"{type(exc).__name__}: {exc}"
    if c.raises in ALSO_A:
        assert isinstance(exc, FfiError) and isinstance(exc, ALSO_A[c.raises])
    else:
        assert not isinstance(exc, FfiError)
    for name, value in c.fields.items():
        assert getattr(exc, name) == value, f"{name} is {getattr(exc, name)!r}, not {value!r}"
    if isinstance(exc, TargetNotFoundError):
        assert exc.available == sorted(exc.available) and exc.name not in exc.available


def run_case(c, reg):
    names, count = reg.names(), len(reg)
    defaults = fjffi.targets()
    handed = c.build(reg)
    before_in = [memory_of(x) for x in handed.inputs]
    before_out = [memory_of(x) for x in handed.outputs]
    if c.raises is None:
        handed.act()
        np.testing.assert_array_equal(handed.outputs[0], handed.expected)
    else:
        with pytest.raises(Exception) as info:
            handed.act()
        check_error(c, info.value)
        for out, before in zip(handed.outputs, before_out, strict=True):
            after = memory_of(out)
            if c.zeroed:
                assert after == bytes(len(before)), "outputs must be zeroed"
            else:
                assert after == before, "outputs must be untouched"
    for x, before in zip(handed.inputs, before_in, strict=True):
        assert memory_of(x) == before, "an input changed"
    assert reg.names() == names and len(reg) == count, "the registry changed"
    assert fjffi.targets() == defaults, "the default registry changed"


def test_bad_input_catalogue(capsys):
    reg = _testing.registry()
    reg.register_builtins()
    failures, tried = [], 0
    for c in TABLE:
        tried += 1
        try:
            run_case(c, reg)
        except BaseException as exc:  # noqa: BLE001 -- collect every failing case
            failures.append(f"{c.name}: {type(exc).__name__}: {exc}")
    with capsys.disabled():
        print(f"\nbad-input cases tried: {tried}")
    assert tried == len(TABLE) and len({c.name for c in TABLE}) == len(TABLE)
    assert not failures, "\n".join(failures)


# --- regressions: bugs this catalogue and the fuzzer found -------------------
# Buffer.__init__ asked for a writable view first; Cython declares
# PyObject_GetBuffer `except -1`, so that request raised (BufferError, or
# numpy's ValueError) instead of falling back to a read-only view.

def test_buffer_over_read_only_bytes_is_a_read_only_buffer():
    data = b"\x00" * 7 + b"\x40"
    buf = Buffer(data, (), "float64")
    assert buf.readonly and buf.tobytes() == data
    out = np.zeros(())
    Call("negate").invoke([buf], [out])
    assert out == -np.frombuffer(data, dtype="float64")[0]
    with pytest.raises(LayoutError):
        Call("negate").invoke([np.ones(())], [buf])


def test_buffer_over_read_only_array_is_a_read_only_buffer():
    arr = readonly(np.arange(3.0))
    buf = Buffer(arr, (3,), "float64")
    assert buf.readonly and buf.tobytes() == arr.tobytes()


def test_buffer_over_non_contiguous_data_is_a_layout_error():
    with pytest.raises(LayoutError):
        Buffer(np.zeros(8)[::2], (4,), "float64")


@pytest.mark.parametrize("dtype", ["f8,,", "f8,(", ",", "f8,["])
def test_dtype_string_numpy_cannot_parse_is_unsupported(dtype):
    with pytest.raises(UnsupportedDtypeError):
        Buffer(bytearray(8), (1,), dtype)


# to_buffer and Call.invoke copied an array that is not C-contiguous, aligned
# and native with np.ascontiguousarray, which returns a contiguous array as
# is, however misaligned: the kernel then got a misaligned pointer.

def test_to_buffer_copies_a_misaligned_array_into_aligned_memory():
    x = misaligned(5)
    view = fjffi.from_buffer(fjffi.to_buffer(x))
    assert view.ctypes.data % 8 == 0 and not np.shares_memory(view, x)
    np.testing.assert_array_equal(view, x)


def test_misaligned_input_is_copied_before_the_kernel():
    x = misaligned(5)
    before = memory_of(x)
    out = np.zeros(5)
    Call("negate").invoke([x], [out])
    np.testing.assert_array_equal(out, -np.arange(1.0, 6.0))
    assert memory_of(x) == before


# The same np.ascontiguousarray made a 0-d array 1-d ("ndim >= 1"), so a
# 0-d input that needed a copy reached the kernel with shape (1,).

@pytest.mark.parametrize("make", [lambda: np.array(-2.5, dtype=">f8"),
                                  lambda: misaligned(1, fill=-2.5).reshape(())],
                         ids=["byte-swapped", "misaligned"])
def test_to_buffer_keeps_a_copied_0d_array_0d(make):
    assert fjffi.to_buffer(make()).shape == ()


def test_byte_swapped_0d_input_reaches_the_kernel_as_a_scalar():
    out = np.zeros(())
    Call("negate").invoke([np.array(-2.5, dtype=">f8")], [out])
    assert out == 2.5


# fjffi.call allocated each output with its spec's dtype as is, byte order
# included, and then refused the output it made itself as not native.

def test_call_with_a_byte_swapped_spec_returns_native_results():
    (out,) = fjffi.call("negate", [np.arange(3.0)], [np.empty(3, dtype=">f8")])
    assert out.dtype == np.dtype("float64") and out.dtype.isnative
    np.testing.assert_array_equal(out, [-0.0, -1.0, -2.0])


# `in` answers False for any name that is not registered: a non-str, and a
# str that UTF-8 cannot encode (a lone surrogate), included.

def test_in_registry_is_false_for_a_name_utf8_cannot_encode():
    assert "\ud800" not in fjffi.default_registry


# A Buffer over an object array (or any exporter whose format has 'O') would
# be writable memory of PyObject pointers: fjffi.Call("negate").invoke(x, [buf])
# would overwrite them, and the next use of the array crash the interpreter.

@pytest.mark.parametrize("make", [lambda: np.array([object(), None], dtype=object),
                                  lambda: (ctypes.py_object * 2)(),
                                  lambda: np.zeros(1, dtype=[("x", "f8"), ("o", "O")])],
                         ids=["object array", "ctypes py_object", "struct with an object"])
def test_buffer_refuses_memory_that_holds_python_objects(make):
    data = make()
    with pytest.raises(UnsupportedDtypeError):
        Buffer(data, (2,), "int64")
