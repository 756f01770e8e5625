"""Python callbacks as targets: the same registry and call path as C
kernels, read-only inputs, checked outputs, purity verification, exception
chaining, and the io ordering lock.  Ports the reference implementation's
callback scenarios (callback.rs, ffi_oracle adversarial_callback_*,
e2e_ffi_callback_pipeline)."""

import itertools
import threading
import time
import traceback
import warnings

import numpy as np
import pytest

import fjffi
from fjffi import PurityConfig

# pytest-run-parallel runs a test on several threads at once: these tests
# register fixed names in one shared registry.
pytestmark = pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")

I64 = np.empty((), np.int64)
F64 = np.empty((), np.float64)


@pytest.fixture
def reg():
    return fjffi.Registry()


def counter_callback():
    """A callback returning 0, 1, 2, ... on successive calls (impure), and
    the counter it reads."""
    counter = itertools.count()
    calls = []

    def fn():
        calls.append(None)
        return np.int64(next(counter))

    return fn, calls


# --- reference scenarios: callback.rs ----------------------------------------

def test_pure_callback_invocation(reg):
    record = reg.register_callback("identity", lambda a: a.copy())
    assert (record.name, record.flavor) == ("identity", "pure")
    (out,) = fjffi.call("identity", (42.0,), (F64,), registry=reg)
    assert out == 42.0 and out.dtype == np.float64


def test_io_callback_invocation(reg):
    calls = []
    record = reg.register_callback("log_counter", lambda: calls.append(1), flavor="io")
    assert record.flavor == "io"
    fjffi.call("log_counter", (), (), registry=reg)
    fjffi.call("log_counter", (), (), registry=reg)
    assert len(calls) == 2


def test_callback_registry_operations(reg):
    assert len(reg) == 0 and reg.names() == []
    reg.register_callback("cb1", lambda a: a)
    reg.register_callback("cb2", lambda: None, flavor="io")
    assert len(reg) == 2 and reg.names() == ["cb1", "cb2"]
    assert reg.get("cb1").flavor == "pure" and reg.get("cb2").flavor == "io"


def test_callback_duplicate_rejected(reg):
    reg.register_callback("dup", lambda a: a)
    with pytest.raises(fjffi.DuplicateTargetError) as info:
        reg.register_callback("dup", lambda a: -a)
    assert info.value.name == "dup"
    assert fjffi.call("dup", (3,), (I64,), registry=reg)[0] == 3


def test_callback_and_kernel_names_share_one_namespace(reg):
    from fjffi import _testing

    reg.register_callback("shared", lambda: None, flavor="io")
    with pytest.raises(fjffi.DuplicateTargetError):
        reg.register("shared", _testing.kernels()["write_one_byte_ok"][0], api_version=1)
    assert reg.get("shared").kind == "callback"


def test_callback_registry_not_found(reg):
    with pytest.raises(fjffi.TargetNotFoundError) as info:
        fjffi.call("missing", (), (), registry=reg)
    assert info.value.name == "missing" and info.value.available == []


def test_callback_error_propagation(reg):
    def fail_cb():
        raise fjffi.CallFailedError("fail_cb", 1, "intentional failure")

    reg.register_callback("fail_cb", fail_cb)
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.call("fail_cb", (), (), registry=reg)
    assert (info.value.target, info.value.code, info.value.message) == (
        "fail_cb", 1, "intentional failure")


def test_purity_config_default_is_permissive():
    config = PurityConfig()
    assert (config.verify_idempotency, config.warn_on_pure_failure) == (False, False)
    assert PurityConfig.permissive() == config


def test_purity_config_strict_enables_all():
    config = PurityConfig.strict()
    assert (config.verify_idempotency, config.warn_on_pure_failure) == (True, True)


def test_pure_callback_passes_idempotency_check(reg):
    reg.register_callback("double", lambda n: n * 2, purity=PurityConfig.strict())
    assert fjffi.call("double", (np.int64(21),), (I64,), registry=reg)[0] == 42


def test_impure_callback_fails_idempotency_check(reg):
    fn, calls = counter_callback()
    reg.register_callback("impure_counter", fn, purity=PurityConfig.strict())
    out = np.full((), 99, np.int64)
    with pytest.raises(fjffi.PurityViolationError) as info:
        fjffi.Call("impure_counter", reg).invoke((), (out,))
    assert info.value.callback_name == "impure_counter"
    assert "output 0 differs" in info.value.detail
    assert len(calls) == 2 and out == 0  # ran twice; the output left zeroed


def test_io_callback_skips_idempotency_check(reg):
    fn, calls = counter_callback()
    reg.register_callback("counter", fn, flavor="io", purity=PurityConfig.strict())
    assert fjffi.call("counter", (), (I64,), registry=reg)[0] == 0
    assert len(calls) == 1


def test_permissive_config_skips_all_checks(reg):
    fn, calls = counter_callback()
    reg.register_callback("impure_but_permissive", fn)
    assert fjffi.call("impure_but_permissive", (), (I64,), registry=reg)[0] == 0
    assert len(calls) == 1


# --- reference scenarios: ffi_oracle and e2e ---------------------------------

def test_adversarial_callback_unexpected_arity(reg):
    def expects_one(*args):
        if len(args) != 1:
            raise fjffi.CallFailedError("expects_one", 2, f"expected 1 arg, got {len(args)}")
        return args[0]

    reg.register_callback("expects_one", expects_one)
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.call("expects_one", (np.int64(1), np.int64(2)), (I64,), registry=reg)
    assert info.value.code == 2 and info.value.message == "expected 1 arg, got 2"
    assert fjffi.call("expects_one", (np.int64(5),), (I64,), registry=reg)[0] == 5


def test_e2e_callback_pipeline(reg):
    def add_one(v):
        if v.dtype != np.int64 or v.shape != ():
            raise fjffi.CallFailedError("add_one", 1, "expected i64 scalar")
        return v + 1

    calls = []
    reg.register_callback("add_one", add_one)
    reg.register_callback("counter", lambda: calls.append(None), flavor="io")
    assert fjffi.call("add_one", (np.int64(41),), (I64,), registry=reg)[0] == 42
    with pytest.raises(fjffi.CallFailedError, match="expected i64 scalar"):
        fjffi.call("add_one", (1.5,), (I64,), registry=reg)
    for _ in range(3):
        fjffi.call("counter", (), (), registry=reg)
    assert len(calls) == 3


# --- the call contract ---------------------------------------------------------

def test_callback_and_c_kernel_go_through_the_same_call(reg):
    # A callback feeding a built-in kernel: both reached by name only.
    reg.register_callback("halve", lambda x: x / 2)
    x = np.arange(5.0)
    (half,) = fjffi.call("halve", (x,), (x,), registry=reg)
    (neg,) = fjffi.call("negate", (half,), (half,))
    assert neg.tolist() == (-x / 2).tolist()


def test_callback_sees_read_only_views_of_the_inputs(reg):
    seen = []

    def inspect(a, b):
        seen.append((a.flags.writeable, b.flags.writeable, a.dtype, b.shape))
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 99
        return np.int32(a.sum() + b.sum())

    reg.register_callback("inspect", inspect)
    a = np.array([1, 2, 3], np.int32)
    (out,) = fjffi.call("inspect", (a, np.ones((2, 2), np.int32)), (np.empty((), np.int32),),
                        registry=reg)
    assert out == 10 and a.tolist() == [1, 2, 3]
    assert seen == [(False, False, np.dtype(np.int32), (2, 2))]


def test_callback_input_views_share_the_callers_memory(reg):
    # No copy on the way in: a view's data pointer is the input's.
    pointers = []
    reg.register_callback("where", lambda a: pointers.append(a.ctypes.data), flavor="io")
    a = np.arange(4.0)
    fjffi.call("where", (a,), (), registry=reg)
    assert pointers == [a.ctypes.data]


def test_callback_results_are_copied_into_several_outputs(reg):
    reg.register_callback("split", lambda x: (x.real.copy(), x.imag.copy(), x.conj()))
    z = np.array([1 + 2j, -3.5 - 0.5j])
    re, im, conj = fjffi.call("split", (z,), (np.empty(2), np.empty(2), z), registry=reg)
    assert re.tolist() == [1.0, -3.5] and im.tolist() == [2.0, -0.5]
    assert conj.tolist() == [1 - 2j, -3.5 + 0.5j]


def test_callback_may_return_a_list_or_python_scalars(reg):
    reg.register_callback("pair", lambda: [1.5, np.array(7, np.int64)])
    a, b = fjffi.call("pair", (), (F64, I64), registry=reg)
    assert (float(a), int(b)) == (1.5, 7)


def test_non_contiguous_result_is_copied_in_order(reg):
    reg.register_callback("transpose", lambda x: x.T)
    x = np.arange(6.0).reshape(2, 3)
    (out,) = fjffi.call("transpose", (x,), (np.empty((3, 2)),), registry=reg)
    assert np.array_equal(out, x.T)


def test_bool_result_round_trips(reg):
    reg.register_callback("positive", lambda x: x > 0)
    (out,) = fjffi.call("positive", (np.array([-1.0, 0.0, 2.0]),),
                        (np.empty(3, np.bool_),), registry=reg)
    assert out.tolist() == [False, False, True]


@pytest.mark.parametrize("result, message", [
    (lambda x: np.zeros(4), "returned float64(4,) for output 0, declared float64(3,)"),
    (lambda x: np.zeros(3, np.float32), "returned float32(3,) for output 0, declared float64(3,)"),
    (lambda x: np.zeros((3, 1)), "returned float64(3, 1) for output 0"),
    (lambda x: 1.0, "returned float64() for output 0"),
])
def test_wrong_output_shape_or_dtype_names_the_output(reg, result, message):
    reg.register_callback("bad", result)
    out = np.full(3, 5.0)
    with pytest.raises(fjffi.BufferMismatchError) as info:
        fjffi.Call("bad", reg).invoke((np.zeros(2),), (out,))
    assert message in str(info.value)
    assert info.value.buffer_index == 1  # output 0 comes after the 1 input
    assert not out.any()


def test_wrong_second_output_names_index_one(reg):
    reg.register_callback("bad", lambda: (np.zeros(2), np.zeros(2, np.int64)))
    with pytest.raises(fjffi.BufferMismatchError, match="for output 1, declared float64"):
        fjffi.call("bad", (), (np.empty(2), np.empty(2)), registry=reg)


@pytest.mark.parametrize("returned, n", [(None, 0), ((np.zeros(1),) * 3, 3), (np.zeros(1), 1)])
def test_wrong_output_count_is_a_clear_error(reg, returned, n):
    reg.register_callback("count", lambda: returned)
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.call("count", (), (np.empty(1),) * 2, registry=reg)
    assert info.value.code == 2
    assert f"returned {n} arrays for 2 outputs" in info.value.message


def test_unconvertible_result_becomes_call_failed(reg):
    reg.register_callback("ragged", lambda: ([[1.0], [2.0, 3.0]],))
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.call("ragged", (), (np.empty((2, 2)),), registry=reg)
    assert info.value.code == 1 and isinstance(info.value.__cause__, ValueError)


def test_result_of_unsupported_dtype_is_refused(reg):
    reg.register_callback("text", lambda: np.array("hello"))
    with pytest.raises(fjffi.BufferMismatchError, match="for output 0"):
        fjffi.call("text", (), (F64,), registry=reg)


# --- exceptions ---------------------------------------------------------------

def test_exception_becomes_call_failed_with_the_original_as_cause(reg):
    def broken_callback(x):
        return {}[x.item()]  # KeyError

    reg.register_callback("broken", broken_callback)
    out = np.full((), 3.0)
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("broken", reg).invoke((np.int64(7),), (out,))
    exc = info.value
    assert (exc.target, exc.code) == ("broken", 1)
    assert exc.message == "KeyError: 7"
    assert type(exc.__cause__) is KeyError and exc.__cause__.args == (7,)
    frames = traceback.extract_tb(exc.__cause__.__traceback__)
    assert frames[-1].name == "broken_callback"
    assert frames[-1].line == "return {}[x.item()]  # KeyError"
    assert out == 0.0


def test_io_callback_exception_is_chained_too(reg):
    def io_fails():
        raise OSError("disk full")

    reg.register_callback("io_fails", io_fails, flavor="io")
    with pytest.raises(fjffi.CallFailedError, match="OSError: disk full") as info:
        fjffi.call("io_fails", (), (), registry=reg)
    assert isinstance(info.value.__cause__, OSError)
    # The io lock was released on the way out: another thread can take it.
    lock, taken = reg.get("io_fails").owner.lock, []
    t = threading.Thread(target=lambda: taken.append(lock.acquire(blocking=False)))
    t.start()
    t.join()
    assert taken == [True]


def test_warn_on_pure_failure_warns_then_raises(reg):
    def flaky():
        raise ConnectionError("network")

    reg.register_callback("flaky", flaky, purity=PurityConfig(warn_on_pure_failure=True))
    with (pytest.warns(RuntimeWarning, match="'flaky' raised, which may mean it is not pure") as w,
          pytest.raises(fjffi.CallFailedError) as info):
        fjffi.call("flaky", (), (), registry=reg)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert w[0].filename == __file__  # points at the caller's line


def test_no_warning_without_warn_on_pure_failure(reg):
    reg.register_callback("quiet", lambda: 1 / 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(fjffi.CallFailedError, match="ZeroDivisionError"):
            fjffi.call("quiet", (), (), registry=reg)


def test_purity_check_sees_a_result_array_changed_in_place(reg):
    # An impure callback that returns the same array each time, changed.
    state = np.zeros(())

    def reuse():
        state[...] += 1
        return state

    reg.register_callback("reuse", reuse, purity=PurityConfig.strict())
    with pytest.raises(fjffi.PurityViolationError, match="output 0 differs"):
        fjffi.call("reuse", (), (F64,), registry=reg)


def test_purity_check_compares_bits_so_nan_is_stable(reg):
    reg.register_callback("nan", lambda x: x * np.nan, purity=PurityConfig.strict())
    (out,) = fjffi.call("nan", (np.ones(2),), (np.empty(2),), registry=reg)
    assert np.isnan(out).all()


def test_purity_check_reports_a_changing_shape(reg):
    sizes = itertools.count(1)
    reg.register_callback("grow", lambda: np.zeros(next(sizes)),
                          purity=PurityConfig(verify_idempotency=True))
    with pytest.raises(fjffi.PurityViolationError, match=r"float64\(1,\), then float64\(2,\)"):
        fjffi.call("grow", (), (np.empty(1),), registry=reg)


@pytest.mark.parametrize("kwargs, error", [
    ({"flavor": "async"}, ValueError),
    ({"purity": {"verify_idempotency": True}}, TypeError),
])
def test_bad_registration_arguments(reg, kwargs, error):
    with pytest.raises(error):
        reg.register_callback("bad", lambda: None, **kwargs)
    assert "bad" not in reg


def test_non_callable_is_refused(reg):
    with pytest.raises(TypeError, match="not callable"):
        reg.register_callback("bad", 42)


# --- threads -------------------------------------------------------------------

def run_threads(fn, threads=8):
    start = threading.Barrier(threads)
    errors = []

    def worker(i):
        start.wait()
        try:
            fn(i)
        except Exception as exc:  # noqa: BLE001 -- a thread's error, asserted on below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []


def overlap_probe():
    """A callback body that sleeps (releasing the GIL) and records the most
    calls it ever saw inside at once."""
    lock = threading.Lock()
    inside = [0]
    peak = [0]

    def body(x):
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        time.sleep(0.01)  # long enough for 8 threads to meet inside, even loaded
        with lock:
            inside[0] -= 1
        return x

    return body, peak


def test_io_callbacks_never_run_two_at_once(reg):
    body, peak = overlap_probe()
    reg.register_callback("io", body, flavor="io")
    run_threads(lambda i: [fjffi.call("io", (np.int64(i),), (I64,), registry=reg)
                           for _ in range(5)])
    assert peak[0] == 1

    # The same body as a pure callback does overlap: the probe can see it.
    body, peak = overlap_probe()
    reg.register_callback("pure", body)
    run_threads(lambda i: [fjffi.call("pure", (np.int64(i),), (I64,), registry=reg)
                           for _ in range(5)])
    assert peak[0] > 1


def test_io_callbacks_from_one_thread_run_in_call_order(reg):
    log = []
    reg.register_callback("log", lambda x: log.append(int(x)), flavor="io")
    for i in range(50):
        fjffi.call("log", (np.int64(i),), (), registry=reg)
    assert log == list(range(50))


def test_io_callbacks_from_many_threads_each_keep_their_order(reg):
    log = []
    reg.register_callback("log", lambda t, i: log.append((int(t), int(i))), flavor="io")
    run_threads(lambda t: [fjffi.call("log", (np.int64(t), np.int64(i)), (), registry=reg)
                           for i in range(20)])
    assert len(log) == 160
    for t in range(8):
        assert [i for (u, i) in log if u == t] == list(range(20))


def test_io_callback_may_call_fjffi_itself(reg):
    # The io lock is reentrant: a callback may call another target, or itself.
    def nested(n):
        if n == 0:
            return np.int64(0)
        (inner,) = fjffi.call("nested", (n - 1,), (I64,), registry=reg)
        return inner + 1

    reg.register_callback("nested", nested, flavor="io")
    assert fjffi.call("nested", (np.int64(3),), (I64,), registry=reg)[0] == 3


def test_pure_callbacks_run_from_many_threads(reg):
    reg.register_callback("square", lambda x: x * x, purity=PurityConfig.strict())
    results = {}

    def work(i):
        results[i] = float(fjffi.call("square", (float(i),), (F64,), registry=reg)[0])

    run_threads(work)
    assert results == {i: float(i * i) for i in range(8)}


# --- introspection -------------------------------------------------------------

@pytest.mark.parametrize("flavor, thread_safe", [("pure", True), ("io", False)])
def test_callback_record(reg, flavor, thread_safe):
    def fn():
        return None

    record = reg.register_callback("cb", fn, flavor=flavor)
    assert reg.get("cb") is record
    assert (record.name, record.kind, record.api_version, record.gil) == (
        "cb", "callback", None, "hold")
    assert (record.thread_safe, record.flavor, record.owner.fn) == (thread_safe, flavor, fn)


def test_register_callback_in_the_default_registry():
    name = "test_callbacks.default_registry_triple"
    record = fjffi.register_callback(name, lambda x: 3 * x)
    assert fjffi.default_registry.get(name) is record and name in fjffi.targets()
    assert fjffi.call(name, (2.0,), (F64,))[0] == 6.0
