"""The built-in kernels given wrong sizes, dtypes and counts: a clear error,
nothing written past any output, outputs zeroed.  copy and double_f64 are
raw-ABI kernels that see no sizes, so fjffi must enforce their contracts
(python -c "import fjffi; print(fjffi.default_registry.get('copy').doc)");
a wrong size there writes or reads out of bounds, so those cases run in a
child interpreter, with the output at the very end of a page of its own."""

import numpy as np
import pytest

import fjffi
from fjffi import errors as E

from .helpers import assert_clean, run_snippets

# An output array ending exactly at a page boundary followed by an
# inaccessible page: one byte too many written is a SIGSEGV.
PAGE_END = """
import mmap
def at_page_end(nbytes, dtype=np.uint8):
    page = mmap.PAGESIZE
    m = mmap.mmap(-1, 2 * page)
    mprotect = ctypes.CDLL(None).mprotect
    mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    assert mprotect(base + page, page, 0) == 0
    whole = np.frombuffer(m, np.uint8)
    keep.append(m)
    return whole[page - nbytes:page].view(dtype)
keep = []
r = fjffi.Registry(); r.register_builtins()
"""

RAW_CASES = {
    # name: (target, inputs, (output nbytes, output dtype), expected error classes)
    "copy_out_1_byte": ("copy", "(np.full(8, 7, np.uint8),)", (1, "np.uint8"),
                        "E.BufferMismatchError"),
    "copy_out_7_bytes": ("copy", "(np.full(8, 7, np.uint8),)", (7, "np.uint8"),
                         "E.BufferMismatchError"),
    "copy_out_0_bytes": ("copy", "(np.full(8, 7, np.uint8),)", (0, "np.uint8"),
                         "E.BufferMismatchError"),
    "copy_in_1_byte": ("copy", "(np.full(1, 7, np.uint8),)", (8, "np.uint8"),
                       "E.BufferMismatchError"),
    "copy_in_py_bool": ("copy", "(True,)", (8, "np.uint8"), "E.BufferMismatchError"),
    "copy_in_float32": ("copy", "(np.float32(1),)", (8, "np.uint8"), "E.BufferMismatchError"),
    "copy_in_empty": ("copy", "(np.zeros(0),)", (8, "np.uint8"), "E.BufferMismatchError"),
    "copy_no_input": ("copy", "()", (8, "np.uint8"), "(E.CallFailedError, E.BufferMismatchError)"),
    "double_out_float32": ("double_f64", "(2.0,)", (4, "np.float32"),
                           "(E.UnsupportedDtypeError, E.BufferMismatchError)"),
    "double_out_int32": ("double_f64", "(2.0,)", (4, "np.int32"),
                         "(E.UnsupportedDtypeError, E.BufferMismatchError)"),
    "double_out_uint8": ("double_f64", "(2.0,)", (1, "np.uint8"),
                         "(E.UnsupportedDtypeError, E.BufferMismatchError)"),
    "double_out_int64": ("double_f64", "(2.0,)", (8, "np.int64"), "E.UnsupportedDtypeError"),
    "double_out_2_elements": ("double_f64", "(2.0,)", (16, "np.float64"),
                              "(E.UnsupportedDtypeError, E.BufferMismatchError)"),
    "double_out_empty": ("double_f64", "(2.0,)", (0, "np.float64"),
                         "(E.UnsupportedDtypeError, E.BufferMismatchError)"),
    "double_in_float32": ("double_f64", "(np.float32(2),)", (8, "np.float64"),
                          "(E.UnsupportedDtypeError, E.BufferMismatchError)"),
    "double_in_int64": ("double_f64", "(2,)", (8, "np.float64"),
                        "(E.UnsupportedDtypeError, E.BufferMismatchError)"),
    "double_in_bool": ("double_f64", "(True,)", (8, "np.float64"),
                       "(E.UnsupportedDtypeError, E.BufferMismatchError)"),
    "double_in_2_elements": ("double_f64", "(np.ones(2),)", (8, "np.float64"),
                             "(E.UnsupportedDtypeError, E.BufferMismatchError)"),
    "double_no_input": ("double_f64", "()", (8, "np.float64"),
                        "(E.CallFailedError, E.BufferMismatchError)"),
}

SNIPPETS = {
    key: PAGE_END + f"""
out = at_page_end({nbytes}, {dtype})
out[...] = 3
before = out.tobytes()
try:
    fjffi.Call("{target}", r).invoke({inputs}, (out,))
    print("accepted; output now", out.tobytes())
except {errors} as e:
    assert out.tobytes() == before or not any(out.tobytes()), out.tobytes()
    print("ok")
"""
    for key, (target, inputs, (nbytes, dtype), errors) in RAW_CASES.items()
}
SNIPPETS["copy_bad_then_good"] = PAGE_END + """
out = at_page_end(8)
for _ in range(100):
    try:
        fjffi.Call("copy", r).invoke((np.full(8, 7, np.uint8),), (out[:1],))
        raise SystemExit("a 1-byte output was accepted")
    except E.BufferMismatchError as e:
        assert (e.buffer_index, e.expected_bytes, e.actual_bytes) == (1, 8, 1), vars(e)
fjffi.Call("copy", r).invoke((np.full(8, 7, np.uint8),), (out,))
assert (out == 7).all()
print("ok")
"""


@pytest.fixture(scope="module")
def raw_results():
    return run_snippets(SNIPPETS)


@pytest.mark.parametrize("case", SNIPPETS)
def test_raw_builtin_contract_is_enforced(raw_results, case):
    assert_clean(raw_results[case], "ok")


def test_copy_wrong_size_error_fields():
    r = fjffi.Registry()
    r.register_builtins()
    backing = np.full(16, 3, np.uint8)
    with pytest.raises(E.BufferMismatchError) as info:
        # the other 15 bytes of backing are the victim of an unchecked copy
        fjffi.Call("copy", r).invoke((np.full(8, 7, np.uint8),), (backing[:1],))
    value = info.value
    assert (value.buffer_index, value.expected_bytes, value.actual_bytes) == (1, 8, 1)
    assert (backing == 3).all()


@pytest.mark.parametrize("target", ["copy", "double_f64"])
@pytest.mark.parametrize("n_out", [0, 2, 3])
def test_raw_builtins_wrong_output_count(target, n_out):
    r = fjffi.Registry()
    r.register_builtins()
    outs = tuple(np.full((), 5.0) for _ in range(n_out))
    with pytest.raises(E.CallFailedError):
        fjffi.Call(target, r).invoke((1.0,), outs)
    assert all(o == 0 for o in outs)


TYPED = ["negate", "add", "multiply", "sum"]
ARITY = {"negate": 1, "add": 2, "multiply": 2, "sum": 1}


def typed_call(target, ins, outs):
    r = fjffi.Registry()
    r.register_builtins()
    for o in outs:
        o[...] = 1
    with pytest.raises(E.CallFailedError) as info:
        fjffi.Call(target, r).invoke(ins, outs)
    assert all((o == 0).all() for o in outs), [o.tolist() for o in outs]
    assert info.value.message and info.value.target == target
    return info.value


@pytest.mark.parametrize("target", TYPED)
@pytest.mark.parametrize("dtype", ["float16", "int8", "int16", "uint8", "uint32", "uint64",
                                   "bool", "complex64", "complex128"])
def test_typed_builtins_unsupported_dtype(target, dtype):
    ins = tuple(np.zeros(3, dtype) for _ in range(ARITY[target]))
    out = np.zeros(() if target == "sum" else 3, dtype)
    err = typed_call(target, ins, (out,))
    assert err.code == 5 and dtype in err.message


@pytest.mark.parametrize("target", TYPED)
@pytest.mark.parametrize("pair", [("float64", "float32"), ("float32", "float64"),
                                  ("int64", "int32"), ("int32", "float32"), ("int64", "float64")])
def test_typed_builtins_mixed_dtypes(target, pair):
    a, b = pair
    ins = (np.zeros(3, a),) + tuple(np.zeros(3, a if target != "add" and target != "multiply"
                                             else b) for _ in range(ARITY[target] - 1))
    out = np.zeros(() if target == "sum" else 3, b if ARITY[target] == 1 else a)
    if ARITY[target] == 1:
        out = np.zeros(() if target == "sum" else 3, b)
    err = typed_call(target, ins, (out,))
    assert err.code == 3


@pytest.mark.parametrize("target", TYPED)
@pytest.mark.parametrize("shapes", [((3,), (4,)), ((3,), (3, 1)), ((2, 3), (3, 2)),
                                    ((3,), ()), ((), (3,)), ((0,), (1,))])
def test_typed_builtins_mismatched_shapes(target, shapes):
    x, y = shapes
    if target == "sum":
        if y == ():
            y = (1,)  # sum wants shape (): (1,) is the mismatch
        ins, out = (np.zeros(x),), np.zeros(y)
    elif ARITY[target] == 2:
        ins, out = (np.zeros(x), np.zeros(y)), np.zeros(x)
    else:
        ins, out = (np.zeros(x),), np.zeros(y)
    err = typed_call(target, ins, (out,))
    assert err.code == 4


@pytest.mark.parametrize("target", TYPED)
@pytest.mark.parametrize("counts", [(0, 1), (3, 1), (1, 0), (1, 2), (2, 2), (0, 0)])
def test_typed_builtins_wrong_counts(target, counts):
    n_in, n_out = counts
    if (n_in, n_out) == (ARITY[target], 1):
        return
    ins = tuple(np.zeros(3) for _ in range(n_in))
    outs = tuple(np.zeros(() if target == "sum" else 3) for _ in range(n_out))
    typed_call(target, ins, outs)


@pytest.mark.parametrize("target", ["noop", "fail"])
@pytest.mark.parametrize("n", [0, 1, 8, 9, 17, 1000])
def test_noop_and_fail_take_any_buffers(target, n):
    r = fjffi.Registry()
    r.register_builtins()
    outs = tuple(np.full(2, 9.0) for _ in range(n))
    ins = tuple(np.full(2, float(i)) for i in range(n))
    if target == "noop":
        fjffi.Call(target, r).invoke(ins, outs)
        assert all((o == 0).all() for o in outs)  # zeroed before the call
    else:
        with pytest.raises(E.CallFailedError) as info:
            fjffi.Call(target, r).invoke(ins, outs)
        assert info.value.code == -42 and info.value.message
        assert all((o == 0).all() for o in outs)


@pytest.mark.parametrize("target", TYPED)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_typed_builtins_zero_size_and_0d(target, n):
    r = fjffi.Registry()
    r.register_builtins()
    for shape in [(0,), (0, 5), ()]:
        ins = tuple(np.ones(shape) for _ in range(ARITY[target]))
        out = np.full(() if target == "sum" else shape, 4.0)
        fjffi.Call(target, r).invoke(ins, (out,))
        expected = {"negate": -1.0, "add": 2.0, "multiply": 1.0,
                    "sum": float(np.ones(shape).sum())}[target]
        assert (out == expected).all()


@pytest.mark.parametrize("code", [1, 2, -1, 7, 2**31 - 1, -(2**31)])
def test_raw_abi_failure_message_is_never_empty(kernels_lib, code):
    import ctypes

    lib = ctypes.CDLL(kernels_lib)
    fn = lib["adv_return_code_raw"]
    fn.restype = ctypes.c_int32
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
    r = fjffi.Registry()
    r.register("rc", fn)
    with pytest.raises(E.CallFailedError) as info:
        fjffi.Call("rc", r).invoke((np.int32(code),), ())
    assert info.value.code == code
    assert info.value.message and str(code) in info.value.message


@pytest.mark.parametrize("target", ["copy", "double_f64"])
def test_builtin_raw_failure_message_is_never_empty(target):
    r = fjffi.Registry()
    r.register_builtins()
    with pytest.raises(E.CallFailedError) as info:
        fjffi.Call(target, r).invoke((), ())
    assert info.value.message
