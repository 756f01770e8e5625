"""The error table of docs/reference.md: each exception raised for the case it
names, with its fields, its builtin base, an actionable message, and a
pickle round trip (errors cross process boundaries in worker pools).

PurityViolationError and BufferOverrunError are raised by the callback and
guard-mode tests.  Ported from fj-ffi's error display tests.
"""

import pickle
import re

import numpy as np
import pytest

import fjffi
from fjffi import _testing

KERNELS = _testing.kernels()


def raised(fn):
    with pytest.raises(fjffi.FfiError) as info:
        fn()
    return info.value


def target_not_found():
    reg = _testing.registry(zeta="raw_noop", alpha="raw_noop")
    return raised(lambda: fjffi.Call("missing_fn", reg).invoke([], []))


def duplicate_target():
    reg = _testing.registry(dup="raw_noop")
    return raised(lambda: reg.register("dup", KERNELS["raw_noop"][0]))


def null_pointer():
    import ctypes
    p, n = ctypes.c_void_p, ctypes.c_size_t
    null = ctypes.CFUNCTYPE(ctypes.c_int32, p, n, p, n)()
    return raised(lambda: fjffi.Registry().register("null_target", null))


def buffer_mismatch():
    return raised(lambda: fjffi.Buffer(bytearray(32), (8,), "float64"))


def buffer_overflow():
    return raised(lambda: fjffi.Buffer.zeros((2**40, 2**40), "float64"))


def callback_output_mismatch():
    reg = fjffi.Registry()
    reg.register_callback("wrong_shape", lambda x: np.zeros(3))
    return raised(lambda: fjffi.Call("wrong_shape", reg).invoke([np.zeros(1)], [np.zeros(2)]))


def bool_input():
    reg = _testing.registry(takes_bools="raw_noop")
    bad = np.array([1, 0, 0, 9], np.uint8).view(np.bool_)
    return raised(lambda: fjffi.Call("takes_bools", reg).invoke([np.zeros(1), bad], []))


def bool_output():
    reg = _testing.registry(bool_two="bool_two")
    return raised(lambda: fjffi.Call("bool_two", reg).invoke([np.zeros(1)], [np.zeros(2, bool)]))


def bool_buffer():
    return raised(lambda: fjffi.Buffer(bytearray([1, 3]), (2,), "bool"))


def unsupported_dtype():
    return raised(lambda: fjffi.Buffer.zeros((2,), np.longdouble))


def unknown_dtype_name():
    return raised(lambda: fjffi.Buffer.zeros((2,), "notadtype"))


def unrepresentable():
    return raised(lambda: fjffi.to_buffer(2**63))


def layout():
    ro = np.zeros(2)
    ro.flags.writeable = False
    return raised(lambda: fjffi.Call("negate").invoke([np.zeros(2)], [ro]))


def call_failed():
    reg = _testing.registry(says_no="fail_with_message")
    return raised(lambda: fjffi.Call("says_no", reg).invoke([], []))


# name -> (how to provoke it, its class, the builtin it also is, its fields)
CASES = {
    "target_not_found": (target_not_found, fjffi.TargetNotFoundError, LookupError,
                         {"name": "missing_fn", "available": ["alpha", "zeta"]}),
    "duplicate_target": (duplicate_target, fjffi.DuplicateTargetError, ValueError,
                         {"name": "dup"}),
    "null_pointer": (null_pointer, fjffi.NullPointerError, ValueError,
                     {"target_name": "null_target"}),
    "buffer_mismatch": (buffer_mismatch, fjffi.BufferMismatchError, ValueError,
                        {"buffer_index": None, "expected_bytes": 64, "actual_bytes": 32}),
    "buffer_overflow": (buffer_overflow, fjffi.BufferMismatchError, ValueError,
                        {"buffer_index": None, "expected_bytes": None, "actual_bytes": 0}),
    "callback_output_mismatch": (callback_output_mismatch, fjffi.BufferMismatchError, ValueError,
                                 {"buffer_index": 1, "expected_bytes": 16, "actual_bytes": 24}),
    "bool_input": (bool_input, fjffi.InvalidBoolByteError, ValueError,
                   {"buffer_index": 1, "byte_index": 3, "value": 9}),
    "bool_output": (bool_output, fjffi.InvalidBoolByteError, ValueError,
                    {"buffer_index": 1, "byte_index": 0, "value": 2}),
    "bool_buffer": (bool_buffer, fjffi.InvalidBoolByteError, ValueError,
                    {"buffer_index": None, "byte_index": 1, "value": 3}),
    "unsupported_dtype": (unsupported_dtype, fjffi.UnsupportedDtypeError, TypeError,
                          {"dtype": np.dtype(np.longdouble)}),
    "unknown_dtype_name": (unknown_dtype_name, fjffi.UnsupportedDtypeError, TypeError,
                           {"dtype": "notadtype"}),
    "unrepresentable": (unrepresentable, fjffi.UnrepresentableValueError, OverflowError,
                        {"dtype": "int64", "value": 2**63}),
    "layout": (layout, fjffi.LayoutError, ValueError, {}),
    "call_failed": (call_failed, fjffi.CallFailedError, RuntimeError,
                    {"target": "says_no", "code": 3,
                     "message": "fail_with_message: the kernel said no"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_raised_with_fields_and_builtin_base(case):
    provoke, cls, builtin, fields = CASES[case]
    err = provoke()
    assert type(err) is cls
    assert isinstance(err, fjffi.FfiError) and isinstance(err, builtin)
    for field, value in fields.items():
        assert getattr(err, field) == value, field
    assert str(err)


@pytest.mark.parametrize("case", sorted(CASES))
def test_pickle_round_trip(case):
    provoke, cls, _, fields = CASES[case]
    err = provoke()
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    for field in fields:
        assert getattr(back, field) == getattr(err, field), field
    assert str(back) == str(err)


# The words each message must carry for a user to act on it.
MESSAGE_WORDS = {
    "target_not_found": ["'missing_fn'", "alpha", "zeta"],
    "duplicate_target": ["'dup'"],
    "null_pointer": ["'null_target'", "null"],
    "buffer_mismatch": ["64", "32", "(8,)", "float64"],
    "buffer_overflow": ["overflow", str(2**40)],
    "callback_output_mismatch": ["wrong_shape", "output 0", "(3,)", "(2,)"],
    "bool_input": ["takes_bools", "input 1", "byte 3", "9"],
    "bool_output": ["bool_two", "output 0", "byte 0", "2"],
    "bool_buffer": ["byte 1", "3"],
    "unsupported_dtype": ["float128", "float64"],
    "unknown_dtype_name": ["notadtype"],
    "unrepresentable": [str(2**63), "int64"],
    "layout": ["negate", "output 0", "read-only"],
    "call_failed": ["'says_no'", "code 3", "the kernel said no"],
}


@pytest.mark.parametrize("case", sorted(MESSAGE_WORDS))
def test_messages_are_actionable(case):
    message = str(CASES[case][0]())
    for word in MESSAGE_WORDS[case]:
        assert word in message, (word, message)


@pytest.mark.parametrize("case", ["bool_input", "bool_output"])
def test_bool_byte_message_states_each_index_once(case):
    # "input 1 1" or "output 0 1" reads as a two-dimensional index.
    message = str(CASES[case][0]())
    assert not re.search(r"(input|output) \d+ \d+", message), message


def test_target_not_found_message_is_bounded():
    reg = fjffi.Registry()
    for i in range(25):
        reg.register(f"k{i:02d}", KERNELS["raw_noop"][0])
    err = raised(lambda: reg.get("nope"))
    assert len(err.available) == 25
    assert "k00" in str(err) and "k19" in str(err)
    assert "k24" not in str(err) and "25 in all" in str(err)


def test_get_and_call_raise_the_same_not_found():
    reg = _testing.registry(b="raw_noop", a="raw_noop")
    via_get = raised(lambda: reg.get("x"))
    via_call = raised(lambda: fjffi.Call("x", reg).invoke([], []))
    assert ((via_get.name, via_get.available) == (via_call.name, via_call.available)
            == ("x", ["a", "b"]))


def test_unsupported_byte_order_names_it():
    err = raised(lambda: fjffi.Buffer(bytearray(8), (), ">f8" if np.little_endian else "<f8"))
    assert isinstance(err, fjffi.UnsupportedDtypeError)
    assert "byte order" in str(err)


def test_layout_error_for_buffer_data():
    err = raised(lambda: fjffi.Buffer(memoryview(bytearray(9))[1:], (), "float64"))
    assert isinstance(err, fjffi.LayoutError) and "aligned" in str(err)


def test_error_display_messages():
    err = fjffi.TargetNotFoundError("missing", ["fn_b", "fn_a"])
    assert "missing" in str(err) and "fn_a" in str(err)
    assert err.available == ["fn_a", "fn_b"]
    err = fjffi.BufferMismatchError(2, 64, 32)
    assert "64" in str(err) and "32" in str(err) and "buffer 2" in str(err)


def test_all_error_variant_displays():
    errors = [
        fjffi.CallFailedError("t", 1, "msg"), fjffi.TargetNotFoundError("n", []),
        fjffi.DuplicateTargetError("d"), fjffi.NullPointerError("np"),
        fjffi.BufferMismatchError(0, 8, 4), fjffi.InvalidBoolByteError(1, 2, 3),
        fjffi.UnsupportedDtypeError("float128"), fjffi.UnrepresentableValueError("int64", 2**64),
        fjffi.LayoutError("x"), fjffi.PurityViolationError("cb", "non-deterministic"),
        fjffi.BufferOverrunError("t", 0, 1), fjffi.TargetCrashedError("t", 11),
        fjffi.TargetCrashedError("t", None, 3), fjffi.TargetTimeoutError("t", 1.5),
        fjffi.DuplicateTargetError("d", "it holds x; the spec wants y"),
    ]
    for err in errors:
        assert isinstance(err, fjffi.FfiError)
        assert str(err)
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)


def test_every_public_error_is_exported():
    names = [n for n in fjffi.__all__ if n.endswith("Error")]
    assert sorted(names) == sorted([
        "FfiError", "TargetNotFoundError", "DuplicateTargetError", "NullPointerError",
        "BufferMismatchError", "InvalidBoolByteError", "UnsupportedDtypeError",
        "UnrepresentableValueError", "LayoutError", "CallFailedError", "PurityViolationError",
        "BufferOverrunError", "TargetCrashedError", "TargetTimeoutError"])
    for name in names:
        assert issubclass(getattr(fjffi, name), fjffi.FfiError)


def test_isolated_target_errors_keep_their_fields():
    crashed = fjffi.TargetCrashedError("seg", 11)
    assert isinstance(crashed, fjffi.CallFailedError)
    assert (crashed.target, crashed.signal, crashed.code) == ("seg", 11, -11)
    assert "SIGSEGV" in str(crashed)
    exited = pickle.loads(pickle.dumps(fjffi.TargetCrashedError("ex", None, 3)))
    assert (exited.signal, exited.status, exited.code) == (None, 3, 3)
    assert "exited with status 3" in str(exited)
    late = pickle.loads(pickle.dumps(fjffi.TargetTimeoutError("loop", 1.5)))
    assert isinstance(late, TimeoutError) and isinstance(late, fjffi.CallFailedError)
    assert (late.target, late.timeout) == ("loop", 1.5) and "1.5 s" in str(late)
