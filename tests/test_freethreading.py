"""Running without a GIL: every fjffi extension declares it, and objects
stay whole when threads race to initialise them.

The races here are real on free-threaded CPython (3.13t with the GIL off)
and harmless but still checked on a GIL build, where the threads merely
interleave.  tools/check.sh runs this file under 3.13t with PYTHON_GIL=0.
"""

import os
import subprocess
import sys
import sysconfig
import threading

import numpy as np
import pytest

import fjffi

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
THREADS = 8
ROUNDS = 200

# Each test starts its own threads; copies of it on every thread of
# pytest-run-parallel would only multiply its time.
pytestmark = pytest.mark.thread_unsafe(reason="starts its own threads")


def env_without_gil_setting() -> dict:
    env = dict(os.environ)
    env.pop("PYTHON_GIL", None)  # so an undeclared module would turn the GIL on
    return env


def run_child(code, *flags, env=None, timeout=300) -> str:
    """Run code in a fresh interpreter (a crash there fails the test, not
    the run); return what it printed."""
    done = subprocess.run([sys.executable, *flags, "-c", code], env=env, cwd="/",
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded CPython (3.13t)")
def test_importing_every_extension_keeps_the_gil_off():
    code = ("import sys, fjffi, fjffi._core, fjffi._testing, fjffi._floor, fjffi._jax_handler\n"
            "print(sys._is_gil_enabled())\n")
    out = run_child(code, "-W", "error::RuntimeWarning", env=env_without_gil_setting(),
                    timeout=120)
    assert out == "False"


def race(n, work):
    """Run work(i) on n threads released at once; returns what each returned
    or raised."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the outcome is what is checked
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_first_init_of_one_call_gives_one_whole_call():
    """Of several first __init__s at once, one wins and the rest are refused:
    the Call's name, C name and hash come from one of them, never a mix."""
    reg = fjffi.Registry()
    for i in range(THREADS):
        reg.register_callback(f"k{i}", lambda x, i=i: np.full((), float(i)))
    out = np.empty(())
    for _ in range(ROUNDS):
        call = fjffi.Call.__new__(fjffi.Call)
        results = race(THREADS, lambda i, call=call: call.__init__(f"k{i}", reg))
        refused = [r for r in results if isinstance(r, TypeError)]
        assert len(refused) == THREADS - 1, results
        assert all("only once" in str(r) for r in refused)
        call.invoke((0.0,), (out,))  # TargetNotFoundError if name and hash disagreed
        assert out == float(call.name[1:])


def test_concurrent_first_init_of_one_buffer_takes_one_view():
    """One __init__ fills the Buffer; the others are refused before taking
    a view of their data, so their bytearrays can still be resized."""
    for _ in range(ROUNDS):
        datas = [bytearray(np.full(i + 1, float(i)).tobytes()) for i in range(THREADS)]
        buf = fjffi.Buffer.__new__(fjffi.Buffer)
        results = race(THREADS, lambda i, buf=buf, datas=datas:
                       buf.__init__(datas[i], (i + 1,), "float64"))
        winners = [i for i, r in enumerate(results) if r is None]
        assert len(winners) == 1, results
        (w,) = winners
        assert buf.shape == (w + 1,) and buf.tobytes() == bytes(datas[w])
        for i, data in enumerate(datas):
            if i != w:
                data.append(0)  # BufferError if a refused __init__ left a view behind
        with pytest.raises(BufferError):
            datas[w].append(0)


def test_calls_while_another_thread_writes_the_environment():
    """fjffi.call does not read the environment (getenv racing with a
    putenv from os.environ crashed); in a child, as a crash would be fatal."""
    code = """
import os, threading
import numpy as np
import fjffi

stop = threading.Event()

def writer():
    i = 0
    while not stop.is_set():
        os.environ["FJFFI_TEST_CHURN_%d" % (i % 64)] = "x" * (i % 97)
        i += 1

def caller():
    x = np.arange(8.0)
    for _ in range(20000):
        (y,) = fjffi.call("negate", (x,), (x,))
        assert (y == -x).all()

w = threading.Thread(target=writer)
w.start()
callers = [threading.Thread(target=caller) for _ in range(2)]
for t in callers:
    t.start()
for t in callers:
    t.join()
stop.set()
w.join()
print("ok")
"""
    assert run_child(code) == "ok"


def test_registries_named_at_once_by_compiled_programs_get_a_slot_each():
    """fjffi.jax names a registry in a compiled program by a slot index.
    Threads asking at once for new registries' indices each get a slot of
    their own (two sharing one would run each other's registry), and the
    table's end is a clear error.  In children: the slots last a process,
    and without a GIL one child's threads may not happen to collide."""
    code = """
import threading
import fjffi, fjffi._jax_handler as h

THREADS, ROUNDS = 4, 255
regs = [[fjffi.Registry() for _ in range(ROUNDS)] for _ in range(THREADS)]
got = [[None] * ROUNDS for _ in range(THREADS)]
arrived = [0]
lock = threading.Lock()

def run(i):
    with lock:
        arrived[0] += 1
    while arrived[0] < THREADS:  # a spinning start lines the threads up closer than a Barrier
        pass
    for r in range(ROUNDS):
        got[i][r] = h.registry_index(regs[i][r])

threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
index = {id(regs[i][r]): got[i][r] for i in range(THREADS) for r in range(ROUNDS)}
assert sorted(index.values()) == list(range(1, THREADS * ROUNDS + 1)), "slots shared"
for row in regs:
    for reg in row:
        assert h.registry_index(reg) == index[id(reg)]
assert h.registry_index(fjffi.default_registry) == 0
more = [fjffi.Registry() for _ in range(1023 - THREADS * ROUNDS)]
assert [h.registry_index(reg) for reg in more] == list(range(THREADS * ROUNDS + 1, 1024))
try:
    h.registry_index(fjffi.Registry())
except RuntimeError as exc:
    assert "more than 1023 registries" in str(exc), exc
else:
    raise AssertionError("a 1024th registry got a slot")
assert h.registry_index(more[-1]) == 1023
print("ok")
"""
    for _ in range(8 if FREE_THREADED else 1):
        assert run_child(code) == "ok"
