"""Per-target statistics: counted per thread without contention, summed on
read, off until switched on."""

import os
import threading

import numpy as np
import pytest

import fjffi
from fjffi import Call, _testing

pytestmark = pytest.mark.thread_unsafe(reason="switches the process-wide statistics on and off")


@pytest.fixture
def stats_on():
    before = fjffi.stats_enabled()
    fjffi.set_stats(True)
    yield
    fjffi.set_stats(*before[:1], timing=before[1])


def test_off_by_default_counts_nothing():
    reg = _testing.registry(noop="raw_noop")
    fjffi.set_stats(False)
    Call("noop", reg).invoke((), ())
    stats = reg.stats("noop")
    assert (stats["calls"], stats["failures"], stats["bytes"]) == (0, 0, 0)


def test_calls_failures_and_bytes_from_many_threads(stats_on):
    reg = fjffi.Registry()
    reg.register_builtins()
    x, n, threads = np.arange(100.0), 500, 4

    def work():
        out = np.empty(100)
        call = Call("negate", reg)
        for _ in range(n):
            call.invoke((x,), (out,))
        with pytest.raises(fjffi.CallFailedError):
            call.invoke((x,), (np.empty(3),))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()  # gone threads' counts are kept
    stats = reg.stats("negate")
    assert stats["calls"] == threads * (n + 1)
    assert stats["failures"] == threads
    assert stats["bytes"] == threads * (n * 1600 + 824)
    assert reg.stats("add")["calls"] == 0


def test_timing_and_callbacks(stats_on):
    fjffi.set_stats(True, timing=True)
    reg = _testing.registry(busy="busy_loop")
    reg.register_callback("cb", lambda x: x * 2)
    out = np.zeros((), np.uint64)
    Call("busy", reg).invoke((np.int64(200_000),), (out,))
    Call("cb", reg).invoke((np.ones(3),), (np.zeros(3),))
    with pytest.raises(fjffi.BufferMismatchError):
        Call("cb", reg).invoke((np.ones(3),), (np.zeros(4),))
    assert reg.stats("busy")["calls"] == 1 and reg.stats("busy")["kernel_ns"] > 0
    assert reg.stats("cb")["calls"] == 2 and reg.stats("cb")["failures"] == 1
    with pytest.raises(ValueError):
        fjffi.set_stats(False, timing=True)
    with pytest.raises(TypeError):
        fjffi.set_stats("yes")


def test_a_replaced_target_starts_again(stats_on):
    reg = fjffi.Registry()
    reg.register_callback("cb", lambda: ())
    Call("cb", reg).invoke((), ())
    assert reg.stats("cb")["calls"] == 1
    reg.register_callback("cb", lambda: (), replace=True)
    assert reg.stats("cb")["calls"] == 0
    with pytest.raises(fjffi.TargetNotFoundError):
        reg.stats("nope")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_readable_in_a_forked_child(stats_on):
    reg = _testing.registry(noop="raw_noop")
    Call("noop", reg).invoke((), ())
    pid = os.fork()
    if pid == 0:
        try:
            Call("noop", reg).invoke((), ())
            os._exit(0 if reg.stats("noop")["calls"] == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
