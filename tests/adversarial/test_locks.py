"""Locks and the GIL: every GIL policy x thread_safe x guard mode with a
kernel that takes the GIL (a ctypes callback of the raw signature), called
from several threads at once, must finish.  Each case runs in a child
interpreter; faulthandler kills a deadlocked child after a few seconds and
prints every thread's stack, so a hang fails fast and says where."""

import ctypes
import itertools
import sys
import threading

import numpy as np
import pytest

import fjffi

from .helpers import assert_clean, run_snippets

# Without a GIL (free-threaded CPython, PYTHON_GIL=0) gil="hold" serialises
# nothing: only thread_safe=False does (docs/reference.md, "Without a GIL").
GIL_ENABLED = getattr(sys, "_is_gil_enabled", lambda: True)()

HANG_AFTER = 12  # seconds; every case takes well under 2 s when it works

GILS = ["release", "hold", "auto"]
SIZES = {"small": 4, "large": 1 << 16}  # large: 512 KiB moved, so "auto" releases

CTYPES_KERNEL = """
import faulthandler
faulthandler.dump_traceback_later({hang}, exit=True)
r = fjffi.Registry()
inside = [0]
def k(ins, n_in, outs, n_out):
    inside[0] += 1
    time.sleep(0.0005)  # lets the GIL go to another thread mid-kernel
    inside[0] -= 1
    return 0
kernel = RawProto(k)
r.register("k", kernel, gil="{gil}", thread_safe={ts})
c = fjffi.Call("k", r, guard={guard})
def worker():
    a, out = np.ones({n}), np.zeros({n})
    for _ in range(25):
        c.invoke((a,), (out,))
ts = [threading.Thread(target=worker) for _ in range({threads})]
for t in ts: t.start()
for t in ts: t.join()
print("ok")
"""

MATRIX = {
    f"{gil}-thread_safe={ts}-guard={guard}-{size}-{threads}threads": CTYPES_KERNEL.format(
        hang=HANG_AFTER, gil=gil, ts=ts, guard=guard, n=SIZES[size], threads=threads)
    for gil, ts, guard, size in itertools.product(GILS, [True, False], [False, True], SIZES)
    for threads in ([2, 4] if size == "small" else [3])
}

# A real C kernel that sleeps without the GIL, thread_safe=False, contended
# by threads that also run Python and a GIL-taking kernel in between.
C_CONTENTION = """
import faulthandler
faulthandler.dump_traceback_later({hang}, exit=True)
lib = ctypes.CDLL({lib!r})
r = fjffi.Registry()
r.register("sleep", raw_fn(lib, "adv_sleep_raw"), gil="{gil}", thread_safe=False)
r.register("py", RawProto(lambda *a: 0), gil="{gil}", thread_safe=False)
r.register_callback("io", lambda x: x, flavor="io")
calls = [fjffi.Call(n, r, guard={guard}) for n in ("sleep", "py")]
def worker(i):
    for j in range(8):
        calls[j % 2].invoke((np.int64(2000),), ())
        fjffi.call("io", (np.ones(3),), (np.zeros(3),), registry=r)
        sum(range(1000))
ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("ok")
"""

# A thread_safe=False kernel that calls itself again through fjffi, from the
# same thread: it must fail with an error, not wait for itself forever.
REENTRANT = """
import faulthandler
faulthandler.dump_traceback_later({hang}, exit=True)
r = fjffi.Registry()
depth = [0]
errors = []
def k(ins, n_in, outs, n_out):
    depth[0] += 1
    if depth[0] == 1:
        try:
            fjffi.Call("k", r, guard={guard}).invoke((), ())
        except Exception as e:
            errors.append(e)
    return 0
kernel = RawProto(k)
r.register("k", kernel, gil="{gil}", thread_safe=False)
fjffi.Call("k", r, guard={guard}).invoke((), ())
assert errors and isinstance(errors[0], fjffi.FfiError), errors
print("ok")
"""

# Registration, lookups and names() racing calls whose kernels take the GIL
# and register more names in the middle of the call.
REGISTRY_RACE = """
import faulthandler
faulthandler.dump_traceback_later({hang}, exit=True)
r = fjffi.Registry(); r.register_builtins()
counter = iter(range(10**9))
def k(ins, n_in, outs, n_out):
    r.register_callback(f"in_kernel_{{next(counter)}}", lambda: ())
    r.names(); "noop" in r; len(r)
    time.sleep(0.0005)  # hands the GIL to another thread mid-kernel
    return 0
kernel = RawProto(k)
r.register("k", kernel, gil="{gil}", thread_safe={ts})
def cb(x):
    r.register_callback(f"in_cb_{{next(counter)}}", lambda: ())
    fjffi.Call("negate", r).invoke((x,), (np.zeros(x.shape),))
    return x
r.register_callback("cb", cb, flavor="{flavor}")
stop = threading.Event()
def registrar():
    for _ in range(1500):  # bounded: names() must stay cheap
        if stop.is_set():
            break
        r.register_callback(f"reg_{{next(counter)}}", lambda: ())
def reader():
    while not stop.is_set():
        names = r.names()
        assert names == sorted(names) and len(set(names)) == len(names)
        assert len(r) >= len(names)
        time.sleep(0.001)
def caller():
    for _ in range(60):
        fjffi.Call("k", r).invoke((), ())
        fjffi.call("cb", (np.ones(4),), (np.zeros(4),), registry=r)
bg = [threading.Thread(target=f) for f in (registrar, reader)]
fg = [threading.Thread(target=caller) for _ in range(3)]
for t in bg + fg: t.start()
for t in fg: t.join()
stop.set()
for t in bg: t.join()
names = r.names()
assert len(names) == len(r) and all(n in r for n in names)
print("ok", len(names) > 300)
"""


def all_snippets(lib):
    snippets = {f"ctypes-{k}": v for k, v in MATRIX.items()}
    for gil, guard in itertools.product(GILS, [False, True]):
        snippets[f"c-contention-{gil}-guard={guard}"] = C_CONTENTION.format(
            hang=HANG_AFTER, lib=lib, gil=gil, guard=guard)
        snippets[f"reentrant-{gil}-guard={guard}"] = REENTRANT.format(
            hang=HANG_AFTER, gil=gil, guard=guard)
    for gil, ts, flavor in itertools.product(GILS, [True, False], ["pure", "io"]):
        snippets[f"registry-race-{gil}-thread_safe={ts}-{flavor}"] = REGISTRY_RACE.format(
            hang=HANG_AFTER, gil=gil, ts=ts, flavor=flavor)
    return snippets


CASES = list(all_snippets("LIB"))


@pytest.fixture(scope="module")
def lock_results(kernels_lib):
    # 60 children at once: the batch's deadline leaves room for their imports
    # on a loaded machine; each child's faulthandler timer catches a hang.
    return run_snippets(all_snippets(kernels_lib), timeout=HANG_AFTER + 120)


@pytest.mark.parametrize("case", CASES)
def test_no_deadlock(lock_results, case):
    rc, out, err = lock_results[case]
    expect = "ok True" if case.startswith("registry-race") else "ok"
    assert_clean((rc, out, err), expect)


@pytest.fixture(scope="module")
def probe_lib(kernels_lib):
    return ctypes.CDLL(kernels_lib)


@pytest.mark.thread_unsafe(reason="the probe kernel's counters are process-global")
@pytest.mark.skipif(not GIL_ENABLED, reason="without a GIL, gil='hold' serialises nothing: "
                    "test_probe_sees_overlap checks that calls under 'hold' overlap there")
@pytest.mark.parametrize("guard", [False, True])
def test_gil_hold_is_honoured(probe_lib, guard):
    """gil="hold" runs the kernel with the GIL held, guard mode or not: two
    threads' calls of a thread-safe kernel then never overlap."""
    fn = probe_lib["user_probe"]
    fn.restype = ctypes.c_int32
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
    r = fjffi.Registry()
    r.register("probe", fn, gil="hold", thread_safe=True)
    c = fjffi.Call("probe", r, guard=guard)
    peaks = []

    def worker():
        out = np.zeros((), np.int64)
        for _ in range(10):
            c.invoke((np.int64(5), np.int64(5000)), (out,))
            peaks.append(int(out))

    ts = [threading.Thread(target=worker) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(peaks) == 20 and max(peaks) == 1, peaks


@pytest.mark.thread_unsafe(reason="the probe kernel's counters are process-global")
@pytest.mark.parametrize("gil", ["release"] + ([] if GIL_ENABLED else ["hold"]))
def test_probe_sees_overlap(probe_lib, gil):
    """The control of the test above: with the GIL released, the same calls do
    overlap, so a peak of 1 under "hold" means something.  Without a GIL
    they overlap under "hold" too."""
    fn = probe_lib["user_probe"]
    fn.restype = ctypes.c_int32
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
    r = fjffi.Registry()
    r.register("probe", fn, gil=gil, thread_safe=True)
    c = fjffi.Call("probe", r)
    peaks = []
    barrier = threading.Barrier(2)

    def worker():
        out = np.zeros((), np.int64)
        barrier.wait()
        for _ in range(10):
            c.invoke((np.int64(6), np.int64(200000)), (out,))
            peaks.append(int(out))

    ts = [threading.Thread(target=worker) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert max(peaks) == 2, peaks
