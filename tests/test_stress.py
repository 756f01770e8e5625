"""Thread stress: 32 threads released together by a barrier, with the GIL
switching as often as CPython allows, each doing a mix of registry lookups,
registrations of new names and kernel calls (succeeding and failing), and
checking every result.

FJFFI_STRESS_OPS sets the operations per thread (default 10,000; about 6 s
on two cores, which is the point of the test).
"""

import os
import random
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import fjffi
from fjffi import _testing

# Minutes at full size: run by tools/check.sh (pytest -m slow), not by default.
pytestmark = pytest.mark.slow

THREADS = 32
OPS = int(os.environ.get("FJFFI_STRESS_OPS", "10000"))
# Far beyond the run's real length: a thread still alive after it is hung.
DEADLINE_SECONDS = 600

GIL_POLICIES = ("release", "hold", "auto")
BUILTINS = ("noop", "copy", "double_f64", "fail", "negate", "add", "multiply", "sum")
DTYPES = (np.float64, np.float32, np.int64, np.int32)
# name -> (expected failure code or None, what a success writes to output 0).
NEW_TARGETS = {
    "raw_noop": (None, "zeros"),
    "write_one_byte_ok": (None, "ab"),
    "fail_with_message": (3, None),
}


class Worker:
    """One thread's operations; each returns True when every result is right."""

    def __init__(self, index, registry, registered, barrier):
        self.index = index
        self.registry = registry
        self.registered = registered  # (name, test kernel) pairs, shared by all threads
        self.barrier = barrier
        self.rng = random.Random(index)
        self.capsules = _testing.kernels()
        self.errors = []
        self.wrong = []
        self.done = False
        ops = [
            (30, self.lookup),
            (5, self.register),
            (20, self.negate),
            (15, self.add),
            (10, self.double_f64),
            (10, self.builtin_failure),
            (8, self.call_registered),
            (2, self.layout_failure),
        ]
        self.ops = [op for weight, op in ops for _ in range(weight)]

    def run(self):
        self.barrier.wait(timeout=60)
        for i in range(OPS):
            op = self.rng.choice(self.ops)
            try:
                ok = op(i)
            except Exception as exc:  # noqa: BLE001 - every exception here is unexpected
                self.errors.append(f"thread {self.index} op {i} {op.__name__}: {exc!r}")
            else:
                if not ok:
                    self.wrong.append(f"thread {self.index} op {i} {op.__name__}")
        self.done = True

    def array(self, dtype, n):
        return np.array([self.rng.randrange(-1000, 1000) for _ in range(n)], dtype=dtype)

    def lookup(self, i):
        name = self.rng.choice(BUILTINS)
        ok = name in self.registry and self.registry.get(name).name == name
        if self.registered:
            other, _ = self.rng.choice(self.registered)
            ok = ok and other in self.registry and self.registry.get(other).name == other
        missing = f"missing/{self.index}/{i}"
        ok = ok and missing not in self.registry
        if i % 1000 == 0:
            # Rarely: the error carries every name, so its cost grows with the registry.
            try:
                self.registry.get(missing)
            except fjffi.TargetNotFoundError as exc:
                ok = ok and exc.name == missing
            else:
                ok = False
        return ok

    def register(self, i):
        kernel = self.rng.choice(tuple(NEW_TARGETS))
        capsule, api_version = self.capsules[kernel]
        name = f"stress/{self.index}/{i}"
        # "release" lets calls to it run while other threads register and look up.
        gil = self.rng.choice(GIL_POLICIES)
        record = self.registry.register(name, capsule, api_version=api_version, gil=gil)
        self.registered.append((name, kernel))
        ok = record.name == name and name in self.registry
        if i % 4 == 0:
            try:
                self.registry.register(name, capsule, api_version=api_version)
            except fjffi.DuplicateTargetError as exc:
                ok = ok and exc.name == name and self.registry.get(name) is record
            else:
                ok = False
        return ok

    def negate(self, i):
        dtype = self.rng.choice(DTYPES)
        # One call in eight moves enough bytes for the "auto" policy to release the GIL.
        n = 8192 if self.rng.randrange(8) == 0 else self.rng.randrange(0, 65)
        x = np.arange(n, dtype=dtype) - n // 2 if n > 64 else self.array(dtype, n)
        before = x.copy()
        out = np.full_like(x, 77)
        fjffi.Call("negate", self.registry).invoke((x,), (out,))
        return np.array_equal(out, -before) and np.array_equal(x, before)

    def add(self, i):
        dtype = self.rng.choice(DTYPES)
        n = self.rng.randrange(0, 65)
        a, b = self.array(dtype, n), self.array(dtype, n)
        out = np.full_like(a, 77)
        fjffi.Call("add", self.registry).invoke((a, b), (out,))
        return np.array_equal(out, a + b)

    def double_f64(self, i):
        x = np.array(self.rng.uniform(-1e6, 1e6))
        out = np.array(77.0)
        fjffi.Call("double_f64", self.registry).invoke((x,), (out,))
        return out == 2 * x

    def expect_failure(self, name, code, out):
        try:
            fjffi.Call(name, self.registry).invoke((), (out,))
        except fjffi.CallFailedError as exc:
            return exc.target == name and exc.code == code and not out.any()
        return False

    def builtin_failure(self, i):
        out = np.full(self.rng.randrange(1, 33), 0xFF, dtype=np.uint8)
        return self.expect_failure("fail", -42, out)

    def call_registered(self, i):
        if not self.registered:
            return True
        name, kernel = self.rng.choice(self.registered)
        code, writes = NEW_TARGETS[kernel]
        out = np.full(self.rng.randrange(1, 33), 0xFF, dtype=np.uint8)
        if code is not None:
            return self.expect_failure(name, code, out)
        fjffi.Call(name, self.registry).invoke((), (out,))
        expected = np.zeros_like(out)
        if writes == "ab":
            expected[0] = 0xAB
        return np.array_equal(out, expected)

    def layout_failure(self, i):
        # A read-only output is refused before anything is written.
        out = np.full(8, 5.0)
        out.flags.writeable = False
        try:
            fjffi.Call("negate", self.registry).invoke((np.ones(8),), (out,))
        except fjffi.LayoutError:
            return bool((out == 5.0).all())
        return False


@pytest.fixture
def tiny_switch_interval():
    # The smallest interval makes threads switch mid-operation as often as possible.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_threads_mixed_operations(tiny_switch_interval):
    registry = _testing.registry()
    registry.register_builtins()
    names_before = set(registry.names())
    registered = []
    barrier = threading.Barrier(THREADS)
    workers = [Worker(k, registry, registered, barrier) for k in range(THREADS)]
    # Daemon threads: a hung one must not keep the test process alive.
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_SECONDS)
    hangs = [w.index for w, t in zip(workers, threads, strict=True) if t.is_alive() or not w.done]
    errors = [e for w in workers for e in w.errors]
    wrong = [e for w in workers for e in w.wrong]
    print(f"\nstress: {THREADS} threads x {OPS} operations: {len(errors)} errors, "
          f"{len(wrong)} wrong outputs, {len(hangs)} hangs; {len(registered)} names registered")
    assert errors == [] and wrong == [] and hangs == [], (errors[:10], wrong[:10], hangs)
    # Nothing registered was lost, and nothing appeared that was not registered.
    assert set(registry.names()) == names_before | {name for name, _ in registered}
    assert len(registry) == len(names_before) + len(registered)


# Four threads forking at once.  logging's at-fork handlers run Python code
# inside os.fork, between the before and after handlers of any other.
FORKING_THREADS = """
import logging, os, sys, threading
import fjffi

sys.setswitchinterval(1e-6)
registry = fjffi.Registry()

def fork_many():
    for _ in range(100):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

threads = [threading.Thread(target=fork_many) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("forked", 4 * 100, "times")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.skipif(os.environ.get("FJFFI_SANITIZER") == "thread",
                    reason="TSan does not support fork() in a threaded process")
def test_threads_forking_at_once_do_not_deadlock():
    # The registry locks were once held from one Python at-fork handler to
    # another: a thread given the GIL in between waited for one of them
    # while holding the GIL, and the forking thread could never release it.
    proc = subprocess.Popen([sys.executable, "-c", FORKING_THREADS], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"threads forking at once deadlocked:\n{out}")
    assert proc.returncode == 0 and "forked 400 times" in out, out
