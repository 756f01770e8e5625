"""Real threads: concurrent calls, lookups and registrations give what a
serial run gives (the pywt test_concurrent pattern).

Ported from fj-ffi's concurrent registry tests and the oracle's
adversarial_concurrent_ffi_calls.
"""

import sys
import threading

import numpy as np
import pytest

import fjffi
from fjffi import _testing

KERNELS = _testing.kernels()
N_THREADS = 8


@pytest.fixture(autouse=True)
def frequent_switches():
    # Switch threads far more often than the default 5 ms, so GIL-held
    # stretches interleave at many more points.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(n, work):
    """Run work(i) on n threads started together; their results, in order.

    An exception in any thread fails the test."""
    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def body(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    if errors:
        raise errors[0]
    return results


def register(reg, name, kernel, **kw):
    cap, api_version = KERNELS[kernel]
    return reg.register(name, cap, api_version=api_version, **kw)


def double(x, registry=None):
    out = np.zeros((), np.float64)
    fjffi.Call("double_f64", registry).invoke([np.float64(x)], [out])
    return float(out)


def test_adversarial_concurrent_ffi_calls():
    def work(i):
        return [double(i + k / 1024) for k in range(300)]

    serial = [work(i) for i in range(N_THREADS)]
    assert serial[3][0] == 6.0
    assert run_threads(N_THREADS, work) == serial


def test_concurrent_calls_and_registrations_match_a_serial_run():
    def fresh():
        reg = fjffi.Registry()
        register(reg, "inc", "inc_i64")
        register(reg, "add", "add_f64")
        return reg

    def work(reg, t):
        out_i, out_f = np.zeros((), np.int64), np.zeros((), np.float64)
        seen = []
        for k in range(40):
            name = f"t{t}_k{k}"
            register(reg, name, "inc_i64" if k % 2 else "add_f64")
            fjffi.Call("inc", reg).invoke([np.int64(t * 1000 + k)], [out_i])
            seen.append(int(out_i))
            if k % 2:
                fjffi.Call(name, reg).invoke([np.int64(-k)], [out_i])
                seen.append(int(out_i))
            else:
                fjffi.Call(name, reg).invoke([np.float64(t), np.float64(k / 8)], [out_f])
                seen.append(float(out_f))
        return seen

    serial_reg = fresh()
    serial = [work(serial_reg, t) for t in range(N_THREADS)]
    reg = fresh()
    assert run_threads(N_THREADS, lambda t: work(reg, t)) == serial
    assert reg.names() == serial_reg.names()
    assert len(reg) == 2 + N_THREADS * 40


def test_registry_concurrent_registration_no_deadlock():
    reg = fjffi.Registry()
    run_threads(4, lambda t: [register(reg, f"thread_{t}_fn_{i}", "raw_noop") for i in range(25)])
    assert len(reg) == 100
    assert reg.names() == sorted(f"thread_{t}_fn_{i}" for t in range(4) for i in range(25))


def test_concurrent_duplicate_registration_has_one_winner():
    reg = fjffi.Registry()

    def work(t):
        try:
            register(reg, "contested", "inc_i64" if t % 2 else "add_f64")
            return "won"
        except fjffi.DuplicateTargetError:
            return "lost"

    outcome = run_threads(N_THREADS, work)
    assert outcome.count("won") == 1
    assert len(reg) == 1
    winner = outcome.index("won")
    assert reg.get("contested").owner is KERNELS["inc_i64" if winner % 2 else "add_f64"][0]


def test_registry_concurrent_read_write_no_deadlock():
    reg = fjffi.Registry()
    for i in range(10):
        register(reg, f"initial_{i}", "raw_noop")

    def work(t):
        if t < 2:
            for i in range(25):
                register(reg, f"writer_{t}_fn_{i}", "raw_noop")
            return None
        sizes = []
        for _ in range(500):
            assert reg.get("initial_5").name == "initial_5"
            names = reg.names()
            assert names == sorted(names) and "initial_5" in names
            sizes.append(len(names))
        return sizes

    results = run_threads(6, work)
    assert len(reg) == 60
    for sizes in results[2:]:
        # The registry only grows, and a reader never sees a half-added name.
        assert sizes == sorted(sizes)
        assert 10 <= sizes[0] and sizes[-1] <= 60


def test_registry_concurrent_get_returns_consistent_data():
    reg = fjffi.Registry()
    record = register(reg, "target_fn", "raw_noop")

    def work(t):
        for _ in range(1000):
            got = reg.get("target_fn")
            assert got is record and got.name == "target_fn"
            assert "target_fn" in reg
        return True

    assert all(run_threads(N_THREADS, work))


def scratch_calls(reg):
    """8 threads through static_scratch: how many results came out wrong."""
    def work(t):
        out = np.zeros(256)
        bad = 0
        for k in range(60):
            x = np.full(256, t * 1000.0 + k)
            fjffi.Call("scratch", reg).invoke([x], [out])
            bad += not np.array_equal(out, x + 1)
        return bad

    _testing.reset_in_flight()
    return sum(run_threads(N_THREADS, work))


@pytest.mark.thread_unsafe(reason="the kernel's state is process-global")
def test_thread_unsafe_target_runs_one_call_at_a_time():
    reg = fjffi.Registry()
    # The GIL released, so only thread_safe=False stands between the calls.
    register(reg, "scratch", "static_scratch", gil="release", thread_safe=False)
    assert reg.get("scratch").thread_safe is False
    assert scratch_calls(reg) == 0
    assert _testing.max_in_flight() == 1


@pytest.mark.thread_unsafe(reason="the in-flight counter and its reset are process-global")
def test_released_gil_lets_calls_overlap():
    # The control for the test above: the same kernel registered thread-safe
    # does run several calls at once (it sleeps without the GIL), so the
    # serialisation above is what kept its results right.
    reg = fjffi.Registry()
    register(reg, "scratch", "static_scratch", gil="release", thread_safe=True)
    scratch_calls(reg)
    assert _testing.max_in_flight() > 1


def test_concurrent_large_calls_match_serial():
    rng = np.random.default_rng(3)
    data = [rng.standard_normal(50_000) for _ in range(N_THREADS)]

    def work(i):
        neg, prod, total = np.empty(50_000), np.empty(50_000), np.empty(())
        for _ in range(5):
            fjffi.Call("negate").invoke([data[i]], [neg])
            fjffi.Call("multiply").invoke([neg, data[i]], [prod])
            fjffi.Call("sum").invoke([prod], [total])
        return neg.tobytes(), prod.tobytes(), float(total)

    serial = [work(i) for i in range(N_THREADS)]
    assert run_threads(N_THREADS, work) == serial


def test_concurrent_failures_keep_their_own_messages():
    reg = fjffi.Registry()
    register(reg, "write_prefix", "write_prefix", gil="release")

    def work(t):
        out = np.zeros(64, np.uint8)
        for k in range(100):
            prefix, fail = (t * 7 + k) % 64, (t + k) % 2 == 0
            try:
                fjffi.Call("write_prefix", reg).invoke(
                    [np.int64(prefix), np.uint8(t + 1), np.bool_(fail)], [out])
            except fjffi.CallFailedError as exc:
                assert fail
                assert exc.message == f"write_prefix: wrote {prefix} bytes, then failed as asked"
                assert not out.any()
            else:
                assert not fail
                assert (out[:prefix] == t + 1).all() and not out[prefix:].any()
        return True

    assert all(run_threads(N_THREADS, work))
