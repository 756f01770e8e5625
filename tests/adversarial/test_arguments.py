"""Every argument of every public function given a wrong type, a numpy
scalar, a bool, a huge int, a float, None or a str: a clear exception of
the documented kind, and the registry and buffers left unchanged.  Also the
edges of the values fjffi does take: exotic buffer objects, 0-d and
zero-size buffers, thousands of buffers or names, odd unicode names."""

import array
import ctypes
import decimal
import fractions

import numpy as np
import pytest

import fjffi
from fjffi import errors as E

from .helpers import assert_clean, run_snippets

RawProto = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t,
                            ctypes.c_void_p, ctypes.c_size_t)
KERNEL = RawProto(lambda *a: 0)  # shared, never freed: registered in many registries


def fresh():
    r = fjffi.Registry()
    r.register_builtins()
    return r


class SelfCtypes:
    @property
    def ctypes(self):
        return self


class ChainCtypes:
    def __init__(self, depth=5000):
        self.depth = depth

    @property
    def ctypes(self):
        return ChainCtypes(self.depth - 1) if self.depth else self


class DLPackOnly:
    """Implements only __dlpack__ (and its device): numpy may try it."""

    def __init__(self):
        self.arr = np.arange(3.0)

    def __dlpack__(self, *args, **kwargs):
        return self.arr.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.arr.__dlpack_device__()


# --- inputs and outputs of invoke and call ---------------------------------

NOT_A_SEQUENCE = {
    "2d_array": lambda: np.zeros((2, 3)),
    "1d_array": lambda: np.zeros(3),
    "generator": lambda: (x for x in [np.zeros(3)]),
    "str": lambda: "ab",
    "bytes": lambda: b"ab",
    "dict": lambda: {0: np.zeros(3)},
    "set": lambda: {1.0},
    "None": lambda: None,
    "int": lambda: 3,
    "np_float": lambda: np.float64(1.0),
    "Buffer": lambda: fjffi.Buffer.zeros((3,), "float64"),
}


@pytest.mark.parametrize("side", ["inputs", "outputs"])
@pytest.mark.parametrize("bad", NOT_A_SEQUENCE)
def test_invoke_takes_only_a_tuple_or_list(side, bad):
    r = fresh()
    value = NOT_A_SEQUENCE[bad]()
    args = (value, ()) if side == "inputs" else ((), value)
    with pytest.raises(TypeError):
        fjffi.Call("noop", r).invoke(*args)


@pytest.mark.parametrize("bad", NOT_A_SEQUENCE)
def test_call_inputs_take_only_a_tuple_or_list(bad):
    with pytest.raises(TypeError):
        fjffi.call("noop", NOT_A_SEQUENCE[bad](), (), registry=fresh())


@pytest.mark.parametrize("bad", ["2d_array", "generator", "str", "dict", "None", "int"])
def test_call_results_take_only_a_tuple_or_list(bad):
    with pytest.raises(TypeError):
        fjffi.call("noop", (), NOT_A_SEQUENCE[bad](), registry=fresh())


class Spec:
    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype


BAD_RESULT_SPECS = {
    "None": (None, TypeError),
    "float": (1.0, TypeError),
    "str": ("float64", TypeError),
    "dtype_object": (np.dtype("float64"), TypeError),
    "type": (np.float64, TypeError),
    "shape_bool": (Spec((True,), "float64"), TypeError),
    "shape_float": (Spec((2.0,), "float64"), TypeError),
    "shape_negative": (Spec((-1,), "float64"), ValueError),
    "shape_none": (Spec(None, "float64"), TypeError),
    "dtype_none": (Spec((2,), None), TypeError),
    "dtype_object_kind": (Spec((2,), object), E.UnsupportedDtypeError),
    "dtype_datetime": (Spec((2,), "M8[s]"), E.UnsupportedDtypeError),
    "huge_2d": (Spec((2**62, 4), "float64"), (E.BufferMismatchError, MemoryError)),
    "huge_1d": (Spec((2**62,), "float64"), (E.BufferMismatchError, MemoryError)),
    "huge_product": (Spec((2**31, 2**31, 2**3), "uint8"), (E.BufferMismatchError, MemoryError)),
    "huge_int": (Spec((2**70,), "float64"), (E.BufferMismatchError, MemoryError)),
}


@pytest.mark.parametrize("bad", BAD_RESULT_SPECS)
def test_call_bad_result_spec(bad):
    spec, expected = BAD_RESULT_SPECS[bad]
    with pytest.raises(expected):
        fjffi.call("noop", (), (spec,), registry=fresh())


@pytest.mark.parametrize("good", [np.zeros(3), np.float64(1.0), Spec((np.int64(2), 3), "int32"),
                                  Spec([2], np.dtype("f4")), Spec((), "bool")])
def test_call_good_result_specs(good):
    (out,) = fjffi.call("noop", (), (good,), registry=fresh())
    assert out.shape == tuple(int(d) for d in good.shape) and not out.any()


BAD_OUTPUTS = {
    "list": ([0.0], E.LayoutError),
    "np_scalar": (np.float64(0), E.LayoutError),
    "py_float": (0.0, E.LayoutError),
    "bytearray": (bytearray(8), E.LayoutError),
    "readonly": (np.frombuffer(b"\0" * 8), E.LayoutError),
    "strided": (np.zeros(6)[::2], E.LayoutError),
    "byteswapped": (np.zeros(2, ">f8"), E.LayoutError),
    "object": (np.zeros(2, object), E.UnsupportedDtypeError),
    "datetime": (np.zeros(2, "M8[s]"), E.UnsupportedDtypeError),
    "structured": (np.zeros(2, "i4,f4"), E.UnsupportedDtypeError),
    "readonly_Buffer": (fjffi.Buffer(b"\0" * 8, (1,), "float64"), E.LayoutError),
    "None": (None, (E.LayoutError, TypeError)),
}


@pytest.mark.parametrize("bad", BAD_OUTPUTS)
def test_bad_outputs_are_refused(bad):
    value, expected = BAD_OUTPUTS[bad]
    ok = np.full(2, 5.0)
    with pytest.raises(expected):
        fjffi.Call("noop", fresh()).invoke((), (ok, value))
    assert (ok == 5.0).all()  # validation failed first: nothing zeroed


# --- register, register_callback, register_builtins ------------------------

API_VERSION_BAD = {
    "float_1": (1.0, TypeError), "float_0": (0.0, TypeError), "str": ("1", TypeError),
    "True": (True, TypeError), "False": (False, TypeError), "np_bool": (np.bool_(True), TypeError),
    "None": (None, TypeError), "two": (2, ValueError), "minus_one": (-1, ValueError),
    "huge": (2**70, ValueError), "huge_negative": (-(2**70), ValueError),
    "int32_max_plus": (2**31, ValueError),
}


@pytest.mark.parametrize("bad", API_VERSION_BAD)
def test_register_api_version(bad):
    value, expected = API_VERSION_BAD[bad]
    r = fresh()
    before = r.names()
    with pytest.raises(expected) as info:
        r.register("k", KERNEL, api_version=value)
    assert not isinstance(info.value, OverflowError)
    assert r.names() == before


GIL_BAD = {
    "upper": ("RELEASE", ValueError), "empty": ("", ValueError), "none_str": ("none", ValueError),
    "space": ("hold ", ValueError),
    "None": (None, TypeError), "int": (1, TypeError), "bytes": (b"hold", TypeError),
    "True": (True, TypeError), "list": (["hold"], TypeError),
}


@pytest.mark.parametrize("bad", GIL_BAD)
def test_register_gil(bad):
    value, expected = GIL_BAD[bad]
    r = fresh()
    before = r.names()
    with pytest.raises(expected):
        r.register("k", KERNEL, gil=value)
    assert r.names() == before


@pytest.mark.parametrize("value", ["no", "false", "", None, 2, 1.5, [], np.float64(0.0)])
def test_register_thread_safe_takes_only_a_bool(value):
    """thread_safe="no" must not quietly mean thread-safe."""
    r = fresh()
    before = r.names()
    with pytest.raises(TypeError):
        r.register("k", KERNEL, thread_safe=value)
    assert r.names() == before


@pytest.mark.parametrize("value", [True, False, np.bool_(False)])
def test_register_thread_safe_bools(value):
    r = fjffi.Registry()
    assert r.register("k", KERNEL, thread_safe=value).thread_safe is bool(value)


NAME_BAD = {
    "int": (1, TypeError), "None": (None, TypeError), "bytes": (b"k", TypeError),
    "np_str": (np.str_("k"), None),  # a str subclass: refused or taken, never a crash
    "empty": ("", ValueError), "nul": ("a\0b", ValueError), "surrogate": ("\ud800", ValueError),
    "float": (1.5, TypeError), "tuple": (("k",), TypeError),
}


@pytest.mark.parametrize("how", ["register", "register_callback", "Call", "call"])
@pytest.mark.parametrize("bad", NAME_BAD)
def test_names(how, bad):
    value, expected = NAME_BAD[bad]
    r = fresh()
    before = r.names()
    fns = {
        "register": lambda: r.register(value, KERNEL),
        "register_callback": lambda: r.register_callback(value, lambda: ()),
        "Call": lambda: fjffi.Call(value, r).invoke((), ()),
        "call": lambda: fjffi.call(value, (), (), registry=r),
    }
    if expected is None:
        try:
            fns[how]()
        except (TypeError, ValueError, LookupError):
            pass
        return
    with pytest.raises(expected):
        fns[how]()
    assert r.names() == before


TARGET_BAD = {
    "None": None, "int": 1, "huge_int": 2**70, "np_int": np.int64(5), "str": "noop",
    "float": 1.0, "bool": True, "self_ctypes": SelfCtypes(), "chain_ctypes": ChainCtypes(),
    "python_function": lambda *a: 0, "bytes": b"\0" * 8, "array": np.zeros(1),
}


@pytest.mark.parametrize("api_version", [0, 1])
@pytest.mark.parametrize("bad", TARGET_BAD)
def test_register_target(bad, api_version):
    r = fresh()
    before = r.names()
    with pytest.raises(TypeError) as info:
        r.register("k", TARGET_BAD[bad], api_version=api_version)
    assert not isinstance(info.value, RecursionError)
    assert r.names() == before


CALLBACK_BAD = {
    "fn_None": (dict(fn=None), TypeError), "fn_int": (dict(fn=1), TypeError),
    "fn_str": (dict(fn="f"), TypeError),
    "flavor_upper": (dict(flavor="PURE"), ValueError),
    "flavor_empty": (dict(flavor=""), ValueError),
    "flavor_None": (dict(flavor=None), (TypeError, ValueError)),
    "flavor_int": (dict(flavor=1), TypeError),
    "purity_True": (dict(purity=True), TypeError), "purity_dict": (dict(purity={}), TypeError),
}


@pytest.mark.parametrize("bad", CALLBACK_BAD)
def test_register_callback_arguments(bad):
    kwargs, expected = CALLBACK_BAD[bad]
    kwargs = dict(kwargs)  # the table is shared by concurrent runs of this test
    fn = kwargs.pop("fn", lambda: ())
    r = fresh()
    before = r.names()
    with pytest.raises(expected):
        r.register_callback("cb", fn, **kwargs)
    assert r.names() == before


@pytest.mark.parametrize("taken", ["noop", "copy", "sum", "negate"])
@pytest.mark.parametrize("how", ["callback", "kernel"])
def test_register_builtins_is_all_or_nothing(taken, how):
    r = fjffi.Registry()
    if how == "callback":
        r.register_callback(taken, lambda: ())
    else:
        r.register(taken, KERNEL)
    with pytest.raises(E.DuplicateTargetError):
        r.register_builtins()
    assert r.names() == [taken] and len(r) == 1


def test_register_builtins_twice():
    r = fresh()
    with pytest.raises(E.DuplicateTargetError):
        r.register_builtins()
    assert len(r) == 8


# --- Call ------------------------------------------------------------------

@pytest.mark.parametrize("registry", [{}, "default", 1, fjffi.default_registry.names()])
def test_call_registry_wrong_type(registry):
    with pytest.raises(TypeError):
        fjffi.Call("noop", registry)
    with pytest.raises(TypeError):
        fjffi.call("noop", (), (), registry=registry)


@pytest.mark.parametrize("value", ["no", "false", "", 1.5, [], "0"])
def test_call_guard_takes_only_a_bool_or_none(value):
    """guard="no" must not quietly turn guard mode on."""
    with pytest.raises(TypeError):
        fjffi.Call("noop", fresh(), guard=value)


@pytest.mark.parametrize("value", [None, True, False, np.bool_(True)])
def test_call_guard_bools(value):
    c = fjffi.Call("noop", fresh(), guard=value)
    assert c.guard in (True, False)
    c.invoke((), ())


def test_invoke_arity():
    c = fjffi.Call("noop", fresh())
    with pytest.raises(TypeError):
        c.invoke(())
    with pytest.raises(TypeError):
        c.invoke((), (), ())
    with pytest.raises(TypeError):
        c.invoke(inputs=(), outputs=())


# --- Buffer, Buffer.zeros ----------------------------------------------------

SHAPE_BAD = {
    "True": (True, TypeError), "tuple_True": ((True,), TypeError),
    "tuple_False": ((True, False), TypeError), "np_bool": ((np.bool_(True),), TypeError),
    "float": ((1.0,), TypeError), "np_float": ((np.float64(1),), TypeError),
    "None": (None, TypeError), "str": ("1", TypeError), "nested": (((1,),), TypeError),
    "negative": ((-1,), ValueError), "np_negative": ((np.int64(-1),), ValueError),
    "huge": ((2**63,), E.BufferMismatchError), "huge_int": ((2**70,), E.BufferMismatchError),
    "product": ((2**62, 4), E.BufferMismatchError),
    "product3": ((2**21,) * 3, E.BufferMismatchError),
    "too_many_dims": ((1,) * 65, ValueError),
}


@pytest.mark.parametrize("bad", SHAPE_BAD)
def test_buffer_zeros_shape(bad):
    shape, expected = SHAPE_BAD[bad]
    with pytest.raises(expected):
        fjffi.Buffer.zeros(shape, "float64")


@pytest.mark.parametrize("bad", SHAPE_BAD)
def test_buffer_shape(bad):
    shape, expected = SHAPE_BAD[bad]
    with pytest.raises(expected):
        fjffi.Buffer(bytearray(8), shape, "float64")


@pytest.mark.parametrize("shape", [(np.int64(2),), (np.int32(1), np.uint8(2)), [2], (2,), 2,
                                   np.int64(2)])
def test_buffer_numpy_integer_shapes_are_accepted(shape):
    b = fjffi.Buffer.zeros(shape, "float64")
    assert b.nbytes == 16
    b = fjffi.Buffer(bytearray(16), shape, "float64")
    assert b.nbytes == 16


DTYPE_BAD = {
    "None": None, "True": True, "float": 1.5, "int": 5, "float128": "float128",
    "object": object, "datetime": "M8[s]", "str_dtype": "U3", "structured": "i4,f4",
    "unknown": "float65", "list": [("a", "f8")],
}


@pytest.mark.parametrize("bad", DTYPE_BAD)
@pytest.mark.parametrize("how", ["Buffer", "zeros"])
def test_buffer_dtype(bad, how):
    with pytest.raises(TypeError):  # UnsupportedDtypeError is a TypeError
        if how == "zeros":
            fjffi.Buffer.zeros((1,), DTYPE_BAD[bad])
        else:
            fjffi.Buffer(bytearray(8), (1,), DTYPE_BAD[bad])


BUFFER_DATA_BAD = {
    "datetime": (lambda: np.zeros(2, "M8[s]"), E.UnsupportedDtypeError),
    "timedelta": (lambda: np.zeros(2, "m8[s]"), E.UnsupportedDtypeError),
    "object": (lambda: np.zeros(2, object), E.UnsupportedDtypeError),
    "noncontiguous": (lambda: np.zeros(4)[::2], E.LayoutError),
    "fortran_2d": (lambda: np.asfortranarray(np.zeros((2, 2), np.int32)), E.LayoutError),
    "None": (lambda: None, TypeError),
    "int": (lambda: 16, TypeError),
    "str": (lambda: "x" * 16, TypeError),
}


@pytest.mark.parametrize("bad", BUFFER_DATA_BAD)
def test_buffer_data(bad):
    make, expected = BUFFER_DATA_BAD[bad]
    data = make()
    with pytest.raises(expected):
        fjffi.Buffer(data, (2,), "int64")


# --- to_buffer and from_buffer -----------------------------------------------

TO_BUFFER_BAD = {
    "None": (None, E.UnsupportedDtypeError),
    "str": ("x", E.UnsupportedDtypeError),
    "bytes": (b"x", E.UnsupportedDtypeError),
    "dict": ({}, E.UnsupportedDtypeError),
    "object": (object(), E.UnsupportedDtypeError),
    "huge_int": (2**70, E.UnrepresentableValueError),
    "huge_negative": (-(2**63) - 1, E.UnrepresentableValueError),
    "int64_max_plus": (2**63, E.UnrepresentableValueError),
    "float128": (np.float128(1), E.UnsupportedDtypeError),
    "structured": (np.zeros(2, "i4,f8"), E.UnsupportedDtypeError),
    "bool_byte_2": (np.frombuffer(bytes([0, 2]), np.bool_), E.InvalidBoolByteError),
    "memoryview_c": (memoryview(b"ab").cast("c"), E.UnsupportedDtypeError),
    "decimal": (decimal.Decimal("1.5"), E.UnsupportedDtypeError),
    "fraction": (fractions.Fraction(1, 3), E.UnsupportedDtypeError),
    "ragged_list": ([[1.0], [1.0, 2.0]], E.FfiError),
    "list_of_str": (["a", "b"], E.UnsupportedDtypeError),
    "list_of_None": ([None], E.UnsupportedDtypeError),
    "ctypes_struct": (type("S", (ctypes.Structure,), {"_fields_": [("a", ctypes.c_double)]})(),
                      E.UnsupportedDtypeError),
    "type_object": (np.float64, E.UnsupportedDtypeError),
}


@pytest.mark.parametrize("bad", TO_BUFFER_BAD)
@pytest.mark.parametrize("how", ["to_buffer", "input"])
def test_to_buffer_bad_values(bad, how):
    value, expected = TO_BUFFER_BAD[bad]
    with pytest.raises(expected):
        if how == "to_buffer":
            fjffi.to_buffer(value)
        else:
            fjffi.Call("noop", fresh()).invoke((value,), ())


def test_an_object_with_only_dlpack_is_taken_without_a_copy():
    value = DLPackOnly()
    buf = fjffi.to_buffer(value)
    value.arr[1] = 7.0
    assert fjffi.from_buffer(buf).tolist() == [0.0, 7.0, 2.0]
    out = np.zeros(3)
    fjffi.Call("negate").invoke((value,), (out,))
    assert out.tolist() == [-0.0, -7.0, -2.0]


def exotic_inputs():
    import ml_dtypes

    d = ctypes.c_double * 3
    return {
        "array.array_d": (array.array("d", [1.5, 2.5, 3.5]), np.float64),
        "array.array_i": (array.array("i", [1, -2]), np.int32),
        "array.array_B": (array.array("B", [1, 255]), np.uint8),
        "ctypes_double3": (d(1.0, 2.0, 3.0), np.float64),
        "ctypes_int16": ((ctypes.c_int16 * 2)(7, -7), np.int16),
        "memoryview_f": (memoryview(np.arange(3, dtype=np.float32)), np.float32),
        "memoryview_e": (memoryview(np.arange(4, dtype=np.float16)),
                              np.float16),
        "memoryview_2d": (memoryview(np.arange(6.0).reshape(2, 3)), np.float64),
        "bytearray_view_Q": (memoryview(bytearray(16)).cast("Q"), np.uint64),
        "negative_strides": (np.arange(6.0)[::-1], np.float64),
        "negative_2d": (np.arange(12, dtype=np.int32).reshape(3, 4)[::-1, ::-2], np.int32),
        "byteswapped_f8": (np.arange(4, dtype=">f8"), np.float64),
        "byteswapped_c16": (np.array([1 + 2j], dtype=">c16"), np.complex128),
        "byteswapped_0d": (np.array(3, dtype=">i2"), np.int16),
        "readonly": (np.frombuffer(np.arange(3.0).tobytes()), np.float64),
        "fortran": (np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.float64),
        "misaligned": (np.frombuffer(b"\0" + np.arange(2.0).tobytes(), np.float64, offset=1),
                       np.float64),
        "zero_size": (np.zeros((0, 3)), np.float64),
        "zero_size_strided": (np.zeros((4, 0))[::2], np.float64),
        "0d": (np.array(2.5), np.float64),
        "bfloat16": (np.arange(3).astype(ml_dtypes.bfloat16), ml_dtypes.bfloat16),
        "bfloat16_strided": (np.arange(6).astype(ml_dtypes.bfloat16)[::2], ml_dtypes.bfloat16),
        "bool": (np.array([True, False]), np.bool_),
        "np_float16_scalar": (np.float16(1.5), np.float16),
        "nested_list": ([[1, 2], [3, 4]], np.int64),
        "float_subclass": (type("F", (float,), {})(2.5), np.float64),
        "int_subclass": (type("I", (int,), {})(7), np.int64),
        "bool_numpy": (np.bool_(True), np.bool_),
        "nan_payload": (np.frombuffer(bytes.fromhex("0100000000f8ff7f"), ">f8")[::-1]
                        if False else np.array([np.nan]), np.float64),
    }


@pytest.mark.parametrize("kind", list(exotic_inputs()))
def test_exotic_inputs_marshal_bit_exactly(kind):
    value, dtype = exotic_inputs()[kind]
    expected = np.asarray(value)
    b = fjffi.to_buffer(value)
    got = fjffi.from_buffer(b)
    assert got.dtype == np.dtype(dtype) and got.shape == expected.shape
    assert got.tobytes() == np.ascontiguousarray(expected).astype(
        expected.dtype.newbyteorder("=")).tobytes()
    # and the same bits through a call into a callback, and out again
    r = fjffi.Registry()
    r.register_callback("ident", lambda x: x)
    out = np.empty(expected.shape, got.dtype)
    fjffi.Call("ident", r).invoke((value,), (out,))
    assert out.tobytes() == got.tobytes()


@pytest.mark.parametrize("value", [None, np.zeros(2), b"x", memoryview(b"x"), 1.0])
def test_from_buffer_takes_only_a_buffer(value):
    with pytest.raises(TypeError):
        fjffi.from_buffer(value)


BFLOAT16_WITHOUT_ML_DTYPES = """
class NoMlDtypes:  # as if ml_dtypes were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ml_dtypes":
            raise ModuleNotFoundError("No module named 'ml_dtypes'", name=name)
sys.meta_path.insert(0, NoMlDtypes())
assert "ml_dtypes" not in sys.modules
b = fjffi.Buffer.zeros((3,), "bfloat16")
assert b.nbytes == 6 and b.tobytes() == bytes(6), b
assert bytes(memoryview(b)) == bytes(6)
try:
    fjffi.from_buffer(b); print("from_buffer worked")
except E.UnsupportedDtypeError:
    pass
r = fjffi.Registry(); r.register_builtins()
r.register_callback("ident", lambda x: x)
fjffi.Call("noop", r).invoke((b,), (fjffi.Buffer.zeros((3,), "bfloat16"),))
try:
    fjffi.Call("ident", r).invoke((b,), (fjffi.Buffer.zeros((3,), "bfloat16"),))
    print("callback took bfloat16")
except E.UnsupportedDtypeError:
    pass
try:
    fjffi.call("noop", (), (type("S", (), {"shape": (2,), "dtype": "bfloat16"})(),), registry=r)
    print("bfloat16 result made")
except E.UnsupportedDtypeError:
    pass
print("ok")
"""


@pytest.fixture(scope="module")
def bf16_results():
    return run_snippets({"no_ml_dtypes": BFLOAT16_WITHOUT_ML_DTYPES})


def test_bfloat16_without_ml_dtypes(bf16_results):
    assert_clean(bf16_results["no_ml_dtypes"], "ok")


# --- many buffers, many names, odd names -------------------------------------

@pytest.mark.parametrize("n", [7, 8, 9, 16, 17, 1000, 5000])
@pytest.mark.parametrize("kind", ["py_float", "array", "mixed"])
def test_many_inputs_reach_the_callback_intact(n, kind):
    r = fjffi.Registry()
    r.register_callback("total", lambda *xs: np.asarray(float(sum(float(np.sum(x)) for x in xs))))
    if kind == "py_float":
        ins = [float(i) for i in range(n)]
    elif kind == "array":
        ins = [np.full(2, float(i)) for i in range(n)]
    else:
        ins = [float(i) if i % 2 else np.full(1, float(i)) for i in range(n)]
    out = np.zeros(())
    fjffi.Call("total", r).invoke(ins, (out,))
    factor = 2 if kind == "array" else 1
    assert float(out) == factor * n * (n - 1) / 2


@pytest.mark.parametrize("n", [9, 17, 1000])
def test_many_outputs_overlap_checks_and_zeroing(n):
    r = fresh()
    backing = np.ones(n + 1)
    outs = [backing[i:i + 1] for i in range(n)]
    fjffi.Call("noop", r).invoke((), outs)
    assert (backing[:n] == 0).all() and backing[n] == 1
    outs.append(backing[n - 1:n + 1])  # overlaps the last one
    backing[:] = 1
    with pytest.raises(E.LayoutError):
        fjffi.Call("noop", r).invoke((), outs)
    assert (backing == 1).all()


ODD_NAMES = ["é", "e\u0301", "\u00e9\u00e9", "名前", "🙂", "a b", "a\nb", "\t", "\u200b",
             "\u202eabc", "x" * 100_000, "\U0010ffff", "ß", "SS", "İ", "ﬀ"]


def test_odd_unicode_names_are_distinct_and_callable():
    r = fjffi.Registry()
    for i, name in enumerate(ODD_NAMES):
        r.register_callback(name, lambda i=i: np.float64(i))
    assert sorted(ODD_NAMES) == r.names()
    for i, name in enumerate(ODD_NAMES):
        assert name in r and r.get(name).name == name
        (out,) = fjffi.call(name, (), (np.zeros(()),), registry=r)
        assert float(out) == i
    with pytest.raises(E.TargetNotFoundError):
        fjffi.Call("e", r).invoke((), ())


@pytest.mark.parametrize("n", [1000, 20000])
def test_registry_with_many_names(n):
    r = fjffi.Registry()
    for i in range(n):
        r.register_callback(f"n{i}", lambda: ())
    names = r.names()
    assert len(r) == n == len(names) and names == sorted(f"n{i}" for i in range(n))
    assert all(f"n{i}" in r for i in range(0, n, 97))
    with pytest.raises(E.TargetNotFoundError) as info:
        fjffi.Call("missing", r).invoke((), ())
    assert len(info.value.available) == n and "in all" in str(info.value)
