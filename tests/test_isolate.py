"""Isolated targets: a kernel that crashes, aborts, exits or hangs in its
worker process raises an exception in the caller, which lives on.

The kernels are real C (tests/kernels/isolate_kernels.c) compiled here.
Every isolated target that could hang is registered with a timeout, so a
broken worker fails the test instead of blocking it.
"""

import os
import pathlib
import pickle
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from test_targets import compile_shared

import fjffi
from fjffi import KernelSpec

pytestmark = pytest.mark.thread_unsafe(reason="worker processes per test")

KERNELS_C = pathlib.Path(__file__).parent / "kernels" / "isolate_kernels.c"
# Longer than any healthy call here, shorter than a test runner's patience.
SAFETY = 60.0
CRASH, ABORT, EXIT, LOOP = 1, 2, 3, 4


@pytest.fixture(scope="module")
def lib_path(tmp_path_factory):
    return compile_shared(KERNELS_C, tmp_path_factory.mktemp("isolate") / "libisolate.so")


@pytest.fixture
def reg():
    return fjffi.Registry()


def isolated(reg, lib_path, name, symbol, timeout=SAFETY, **options):
    spec = KernelSpec.for_library(name, lib_path, symbol, api_version=1)
    return spec.register(reg, isolate=True, timeout=timeout, **options)


def run_mode(reg, name, mode):
    out = np.full((), 5.0)
    try:
        fjffi.Call(name, reg).invoke([np.int64(mode)], [out])
    finally:
        # Whatever happened, the output holds 1.0 (success) or 0.0 (zeroed).
        assert float(out) in (0.0, 1.0)
    return float(out)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


def open_fds():
    return len(os.listdir("/proc/self/fd"))


# --- results ----------------------------------------------------------------

def test_an_isolated_kernel_computes_in_another_process(reg, lib_path):
    target = isolated(reg, lib_path, "negate_iso", "iso_negate")
    assert target.kind == "callback" and fjffi._isolate.is_isolated(target)
    x = np.arange(10.0).reshape(2, 5)
    (out,) = fjffi.call("negate_iso", (x,), (x,), registry=reg)
    assert np.array_equal(out, -x)
    isolated(reg, lib_path, "pid_iso", "iso_pid")
    (pid,) = fjffi.call("pid_iso", (), (np.empty((), np.int64),), registry=reg)
    assert int(pid) != os.getpid()


def test_the_shared_segment_grows_for_larger_calls(reg, lib_path):
    isolated(reg, lib_path, "negate_iso", "iso_negate")
    for n in (3, 1 << 20, 7, 3 << 20):  # 8 MiB, then 24 MiB of float64
        x = np.random.default_rng(n).standard_normal(n)
        (out,) = fjffi.call("negate_iso", (x,), (x,), registry=reg)
        assert np.array_equal(out, -x)


def test_a_kernel_error_crosses_with_its_fields_and_zeroes_outputs(reg, lib_path):
    isolated(reg, lib_path, "fail_iso", "iso_fail")
    out = np.full(4, 3.0)
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("fail_iso", reg).invoke([np.ones(4)], [out])
    assert (info.value.code, info.value.message) == (7, "iso_fail: refused on purpose")
    assert not out.any()


def test_bad_buffers_are_refused_in_the_caller(reg, lib_path):
    isolated(reg, lib_path, "negate_iso", "iso_negate")
    out = np.ones(4)
    with pytest.raises(fjffi.LayoutError):
        fjffi.Call("negate_iso", reg).invoke([out[:2]], [out])  # overlapping
    assert np.array_equal(out, np.ones(4))


# --- crashes and hangs ------------------------------------------------------

@pytest.mark.parametrize("mode, sig", [(CRASH, signal.SIGSEGV), (ABORT, signal.SIGABRT)])
def test_a_signal_in_the_kernel_raises_target_crashed(reg, lib_path, mode, sig):
    isolated(reg, lib_path, "mode_iso", "iso_mode")
    pid_before = fjffi.call("mode_iso", (np.int64(0),), (np.empty(()),), registry=reg)
    with pytest.raises(fjffi.TargetCrashedError) as info:
        run_mode(reg, "mode_iso", mode)
    err = info.value
    assert (err.target, err.signal, err.code) == ("mode_iso", sig, -sig)
    assert signal.Signals(sig).name in str(err)
    assert pickle.loads(pickle.dumps(err)).signal == sig
    # The worker restarts for the next call.
    assert run_mode(reg, "mode_iso", 0) == 1.0
    assert pid_before[0] == 1.0


def test_exit_in_the_kernel_raises_target_crashed_with_the_status(reg, lib_path):
    isolated(reg, lib_path, "mode_iso", "iso_mode")
    with pytest.raises(fjffi.TargetCrashedError) as info:
        run_mode(reg, "mode_iso", EXIT)
    assert (info.value.signal, info.value.status, info.value.code) == (None, 3, 3)
    assert run_mode(reg, "mode_iso", 0) == 1.0


def test_an_endless_loop_raises_timeout_after_the_timeout(reg, lib_path):
    # 3 s: long enough that a loaded machine does not time out the quick call
    # after it; the upper bound only says the caller did not wait for good.
    isolated(reg, lib_path, "mode_iso", "iso_mode", timeout=3)
    start = time.monotonic()
    with pytest.raises(fjffi.TargetTimeoutError) as info:
        run_mode(reg, "mode_iso", LOOP)
    elapsed = time.monotonic() - start
    assert 3.0 <= elapsed < 60.0
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, fjffi.FfiError)
    assert (info.value.target, info.value.timeout) == ("mode_iso", 3)
    assert run_mode(reg, "mode_iso", 0) == 1.0


def test_a_crash_leaves_the_callers_registry_and_other_targets_alone(reg, lib_path):
    isolated(reg, lib_path, "mode_iso", "iso_mode")
    isolated(reg, lib_path, "negate_iso", "iso_negate")
    reg.register_builtins()
    names = reg.names()
    for mode in (CRASH, ABORT, EXIT):
        with pytest.raises(fjffi.TargetCrashedError):
            run_mode(reg, "mode_iso", mode)
        x = np.arange(3.0)
        assert fjffi.call("negate_iso", (x,), (x,), registry=reg)[0].tolist() == [-0.0, -1.0, -2.0]
        assert fjffi.call("negate", (x,), (x,), registry=reg)[0].tolist() == [-0.0, -1.0, -2.0]
    assert reg.names() == names


def crash_many(reg, lib_path, count):
    isolated(reg, lib_path, "mode_iso", "iso_mode")
    isolated(reg, lib_path, "negate_iso", "iso_negate")
    for _ in range(10):  # warm up: allocator pools, imports, the forkserver
        with pytest.raises(fjffi.TargetCrashedError):
            run_mode(reg, "mode_iso", CRASH)
    rss, fds = rss_bytes(), open_fds()
    start = time.monotonic()
    for i in range(count):
        with pytest.raises(fjffi.TargetCrashedError):
            run_mode(reg, "mode_iso", (CRASH, ABORT, EXIT)[i % 3])
    elapsed = time.monotonic() - start
    grown = rss_bytes() - rss
    # Under ASan freed memory waits in its quarantine, so RSS says nothing there.
    bound = (64 << 20) if os.environ.get("FJFFI_SANITIZER") else (4 << 20)
    assert grown < bound, f"RSS grew by {grown} bytes over {count} crashes"
    assert open_fds() <= fds + 2
    x = np.arange(4.0)
    assert fjffi.call("negate_iso", (x,), (x,), registry=reg)[0].tolist() == [-0.0, -1.0, -2.0,
                                                                                -3.0]
    assert run_mode(reg, "mode_iso", 0) == 1.0
    return elapsed


def test_a_hundred_crashes_leave_rss_and_fds_flat(reg, lib_path):
    crash_many(reg, lib_path, 100)


@pytest.mark.slow
def test_a_thousand_crashes_leave_rss_and_fds_flat(reg, lib_path):
    # 10 to 20 s on 2 busy cores: a restart is a fork of the preloaded forkserver.
    crash_many(reg, lib_path, 1000)


# --- registration -----------------------------------------------------------

def test_isolated_registration_is_idempotent_and_refuses_a_different_one(reg, lib_path):
    first = isolated(reg, lib_path, "negate_iso", "iso_negate")
    assert isolated(reg, lib_path, "negate_iso", "iso_negate") is first
    with pytest.raises(fjffi.DuplicateTargetError, match="isolated"):
        isolated(reg, lib_path, "negate_iso", "iso_negate", timeout=5)
    with pytest.raises(fjffi.DuplicateTargetError, match="isolated"):
        KernelSpec.for_library("negate_iso", lib_path, "iso_negate", api_version=1).register(reg)
    assert fjffi.spec("negate_iso", reg).symbol == "iso_negate"


def test_register_isolated_from_a_registered_name(reg, lib_path):
    import ctypes

    reg.register("negate_c", ctypes.CDLL(str(lib_path)).iso_negate, api_version=1)
    target = fjffi.register_isolated("negate_c", timeout=SAFETY, registry=reg)
    assert target.name == "negate_c.isolated"
    x = np.arange(3.0)
    assert np.array_equal(fjffi.call("negate_c.isolated", (x,), (x,), registry=reg)[0], -x)


def test_a_spec_that_cannot_be_replayed_fails_at_registration(reg, tmp_path):
    spec = KernelSpec.for_library("gone", tmp_path / "libgone.so", "k", api_version=1)
    with pytest.raises(OSError, match="must exist at this path"):
        fjffi.register_isolated(spec, timeout=SAFETY, registry=reg)
    assert "gone" not in reg


# --- threads ----------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_calls_from_several_threads(reg, lib_path, workers):
    isolated(reg, lib_path, "negate_iso", "iso_negate", workers=workers)
    isolated(reg, lib_path, "pid_iso", "iso_pid", workers=workers)
    errors, pids = [], set()

    def work(seed):
        try:
            rng = np.random.default_rng(seed)
            for _ in range(25):
                x = rng.standard_normal(int(rng.integers(1, 5000)))
                (out,) = fjffi.call("negate_iso", (x,), (x,), registry=reg)
                assert np.array_equal(out, -x)
                pids.add(int(fjffi.call("pid_iso", (), (np.empty((), np.int64),),
                                        registry=reg)[0]))
        except Exception as exc:  # noqa: BLE001 -- a thread's error, asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SAFETY)
    assert not errors and not any(t.is_alive() for t in threads)
    assert 1 <= len(pids) <= workers


# --- processes --------------------------------------------------------------

def run_script(tmp_path, text, lib_path):
    script = tmp_path / "script.py"
    script.write_text(text.replace("LIB", repr(str(lib_path))))
    result = subprocess.run([sys.executable, str(script)], check=False, cwd=tmp_path,
                            capture_output=True, text=True, timeout=SAFETY)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_a_script_without_a_main_guard_is_not_run_again_by_the_worker(tmp_path, lib_path):
    # Top-level code, no `if __name__ == "__main__"`: a worker importing the
    # script would register and print again.
    out = run_script(tmp_path, """
import numpy as np, fjffi
fjffi.KernelSpec.for_library("neg", LIB, "iso_negate", api_version=1).register(
    isolate=True, timeout=60)
print("ran", fjffi.call("neg", (np.arange(2.0),), (np.empty(2),))[0].tolist())
""", lib_path)
    assert out == ["ran", "[-0.0,", "-1.0]"]


def test_a_forked_child_gets_its_own_worker_and_leaves_the_parents(tmp_path, lib_path):
    out = run_script(tmp_path, """
import os, sys, numpy as np, fjffi
fjffi.KernelSpec.for_library("pid", LIB, "iso_pid", api_version=1).register(
    isolate=True, timeout=60)
def worker_pid():
    return int(fjffi.call("pid", (), (np.empty((), np.int64),))[0])
first = worker_pid()
child = os.fork()
if child == 0:
    print("child", worker_pid() not in (first, os.getpid()), flush=True)
    sys.exit(0)  # a normal exit: its exit handlers run
os.waitpid(child, 0)
print("parent", worker_pid() == first)
""", lib_path)
    assert out == ["child", "True", "parent", "True"]


def test_a_worker_killed_while_idle_fails_one_call_then_restarts(reg, lib_path):
    isolated(reg, lib_path, "pid_iso", "iso_pid")

    def worker_pid():
        return int(fjffi.call("pid_iso", (), (np.empty((), np.int64),), registry=reg)[0])

    first = worker_pid()
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + SAFETY
    while time.monotonic() < deadline:  # until it is gone, not a zombie only
        try:
            with open(f"/proc/{first}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    break
        except (FileNotFoundError, ProcessLookupError):  # reaped already
            break
        time.sleep(0.01)
    with pytest.raises(fjffi.TargetCrashedError) as info:
        worker_pid()
    assert info.value.signal == signal.SIGKILL
    assert worker_pid() not in (first, os.getpid())
