"""Failures in every position of a callback, BaseException included: the
callback raising, __array__ or __len__ of what it returned raising, the
wrong number of results, results of the wrong shape or dtype.  On any
failure every output is left zeroed; an Exception becomes CallFailedError
with __cause__; KeyboardInterrupt and SystemExit propagate as themselves."""

import numpy as np
import pytest

import fjffi
from fjffi import errors as E


class Custom(Exception):
    pass


class CustomBase(BaseException):
    pass


RAISED = {
    "ValueError": ValueError,
    "Custom": Custom,
    "MemoryError": MemoryError,
    "StopIteration": StopIteration,
    "RecursionError": RecursionError,
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": SystemExit,
    "GeneratorExit": GeneratorExit,
    "CustomBase": CustomBase,
}


class RaisesInArray:
    def __init__(self, exc):
        self.exc = exc

    def __array__(self, dtype=None, copy=None):
        raise self.exc("from __array__")


class RaisesInLen:
    def __init__(self, exc):
        self.exc = exc

    def __len__(self):
        raise self.exc("from __len__")

    def __getitem__(self, i):
        return 1.0


def raise_(exc):
    raise exc


def caused_by(err, exc):
    """Whether exc is in err's chain of causes (a StopIteration raised
    inside a generator arrives as the cause of a RuntimeError)."""
    while err is not None:
        if isinstance(err, exc):
            return True
        err = err.__cause__ or err.__context__
    return False


def positions(exc):
    """Callback bodies (after they wrote the outputs) that fail with exc."""
    return {
        "raise": lambda: raise_(exc("from the callback")),
        "__array__": lambda: (RaisesInArray(exc), np.zeros(3)),
        "__array__second": lambda: (np.zeros(3), RaisesInArray(exc)),
        "__len__": lambda: (RaisesInLen(exc), np.zeros(3)),
    }


def run_failing(flavor, position, exc_name, n_outputs=2):
    exc = RAISED[exc_name]
    body = positions(exc)[position]
    outs = tuple(np.zeros(3) for _ in range(n_outputs))
    r = fjffi.Registry()

    def cb(x):
        for o in outs:
            o[:] = 7.0  # written through the closure before failing
        return body()

    r.register_callback("cb", cb, flavor=flavor)
    with pytest.raises(BaseException) as info:
        fjffi.Call("cb", r).invoke((np.ones(3),), outs)
    return info.value, outs, exc


@pytest.mark.parametrize("flavor", ["pure", "io"])
@pytest.mark.parametrize("position", ["raise", "__array__", "__array__second", "__len__"])
@pytest.mark.parametrize("exc_name", RAISED)
def test_failure_leaves_outputs_zeroed(flavor, position, exc_name):
    raised, outs, exc = run_failing(flavor, position, exc_name)
    assert all((o == 0).all() for o in outs), [o.tolist() for o in outs]
    if position == "__len__":
        # numpy takes an object whose len() fails, even with a BaseException,
        # for a scalar (it swallows the exception): then the result is
        # refused for its dtype instead.
        assert isinstance(raised, (E.FfiError, exc)), repr(raised)
    elif issubclass(exc, Exception):
        assert isinstance(raised, E.CallFailedError), repr(raised)
        assert raised.target == "cb" and caused_by(raised.__cause__, exc)
    else:
        assert isinstance(raised, exc), repr(raised)


BAD_RESULTS = {
    "too_few": lambda: (np.zeros(3),),
    "too_many": lambda: (np.zeros(3),) * 3,
    "none": lambda: None,
    "wrong_shape": lambda: (np.zeros(4), np.zeros(3)),
    "wrong_shape_second": lambda: (np.zeros(3), np.zeros((3, 1))),
    "wrong_dtype_same_size": lambda: (np.zeros(3, np.int64), np.zeros(3)),
    "wrong_dtype_second": lambda: (np.zeros(3), np.zeros(6, np.float32)),
    "unsupported_dtype": lambda: (np.zeros(3, "M8[s]"), np.zeros(3)),
    "object_dtype": lambda: (np.array([None] * 3), np.zeros(3)),
    "str": lambda: ("abc", np.zeros(3)),
}


@pytest.mark.parametrize("flavor", ["pure", "io"])
@pytest.mark.parametrize("bad", BAD_RESULTS)
def test_bad_results_leave_outputs_zeroed(flavor, bad):
    outs = (np.zeros(3), np.zeros(3))
    r = fjffi.Registry()

    def cb(x):
        for o in outs:
            o[:] = 7.0
        return BAD_RESULTS[bad]()

    r.register_callback("cb", cb, flavor=flavor)
    with pytest.raises(E.FfiError):
        fjffi.Call("cb", r).invoke((np.ones(3),), outs)
    assert all((o == 0).all() for o in outs), [o.tolist() for o in outs]


@pytest.mark.parametrize("dtypes", [("int64", "float64"), ("float64", "int64"),
                                    ("int32", "float32"), ("uint8", "bool"),
                                    ("complex64", "float64"), ("int16", "float16")])
def test_same_size_wrong_dtype_message_names_both_dtypes(dtypes):
    got, declared = dtypes
    r = fjffi.Registry()
    r.register_callback("cb", lambda: np.zeros(2, got))
    with pytest.raises(E.BufferMismatchError) as info:
        fjffi.Call("cb", r).invoke((), (np.zeros(2, declared),))
    msg = str(info.value)
    assert got in msg and declared in msg
    n = 2 * np.dtype(got).itemsize
    assert f"expected {n} bytes" not in msg or f"got {n}" not in msg, msg


@pytest.mark.parametrize("flavor", ["pure", "io"])
@pytest.mark.parametrize("nested", ["fail", "negate_bad_dtype", "other_callback"])
def test_nested_call_failure_is_wrapped_with_the_outer_name(flavor, nested):
    r = fjffi.Registry()
    r.register_builtins()
    r.register_callback("inner", lambda: (_ for _ in ()).throw(ValueError("inner")))

    def outer(x):
        if nested == "fail":
            fjffi.Call("fail", r).invoke((), ())
        elif nested == "negate_bad_dtype":
            fjffi.Call("negate", r).invoke((np.ones(2),), (np.zeros(2, np.float32),))
        else:
            fjffi.Call("inner", r).invoke((), ())
        return x

    r.register_callback("outer", outer, flavor=flavor)
    out = np.zeros(2)
    with pytest.raises(E.CallFailedError) as info:
        fjffi.Call("outer", r).invoke((np.ones(2),), (out,))
    assert info.value.target == "outer"
    assert isinstance(info.value.__cause__, E.CallFailedError)
    assert info.value.__cause__.target != "outer"
    assert (out == 0).all()


@pytest.mark.parametrize("exc_name", ["KeyboardInterrupt", "SystemExit", "ValueError"])
def test_failure_with_verify_idempotency_on_second_run(exc_name):
    """A pure callback checked for idempotency that fails on its second run."""
    exc = RAISED[exc_name]
    out = np.zeros(3)
    runs = []
    r = fjffi.Registry()

    def cb(x):
        runs.append(1)
        out[:] = 5.0
        if len(runs) == 2:
            raise exc("second run")
        return x

    r.register_callback("cb", cb, purity=fjffi.PurityConfig.strict())
    # Which exception comes out depends on exc_name; the outputs are what is checked.
    with pytest.raises(BaseException):  # noqa: B017
        fjffi.Call("cb", r).invoke((np.ones(3),), (out,))
    assert (out == 0).all()


@pytest.mark.parametrize("flavor", ["pure", "io"])
def test_io_lock_is_released_after_base_exception(flavor):
    r = fjffi.Registry()
    state = {"raise": True}

    def cb(x):
        if state["raise"]:
            state["raise"] = False
            raise KeyboardInterrupt
        return x

    r.register_callback("cb", cb, flavor=flavor)
    with pytest.raises(KeyboardInterrupt):
        fjffi.Call("cb", r).invoke((np.ones(2),), (np.zeros(2),))
    import threading

    out = np.zeros(2)
    t = threading.Thread(target=lambda: fjffi.Call("cb", r).invoke((np.ones(2),), (out,)))
    t.start()
    t.join(60)  # a lock left held would hang it for good; a loaded machine is only slow
    assert not t.is_alive() and out.tolist() == [1.0, 1.0]
