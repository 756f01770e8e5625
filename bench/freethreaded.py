"""Two threads against one, by GIL policy and size: the measurement behind
docs/reference.md, "Without a GIL".

    PYTHON_GIL=0 chrt -f 1 python bench/freethreaded.py [--rounds N] [--json PATH]

The floor's negate is registered three times in a new Registry, with
gil="hold", "release" and "auto": the same kernel, only the policy differs.
For each size and policy, one thread and then two threads (each on its own
arrays) make the same number of calls each.  Reported per row, medians over
the rounds (round-robin over the rows, so a change in the machine's load hits
every row alike):

- ns: a lone thread's thread CPU time per call;
- cpu x2: two threads' throughput over one's, from thread CPU time (2 x one
  thread's CPU time per call over the two threads' mean);  this is what the
  two threads would reach with a core each, whatever else the machine runs;
- wall x2: the same from wall time (2 x one thread's wall time over two
  threads'), which the machine's other load lowers.

It runs on any CPython; on a GIL build "hold" cannot exceed 1.0x.  It
needs fjffi._floor (installed with the tests: pip install '.[test]').
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import sysconfig
import threading
import time

import numpy as np

import fjffi
from fjffi import _floor

POLICIES = ("hold", "release", "auto")
# Elements per array: 1k (the goal's size), up to 1 MiB per array.
SIZES = (1000, 8192, 32768, 131072)


def run(invoke, arrays, calls: int, nthreads: int) -> tuple[float, list[float]]:
    """(wall seconds, each thread's CPU seconds) for nthreads threads making
    calls each, started together."""
    barrier = threading.Barrier(nthreads)
    cpu = [0.0] * nthreads
    spans: list = []  # each thread's (start, end) in wall time
    errors: list = []

    def body(i):
        ins, outs = (arrays[i][0],), (arrays[i][1],)
        barrier.wait()
        w0, t0 = time.perf_counter(), time.thread_time()
        try:
            for _ in itertools.repeat(None, calls):
                invoke(ins, outs)
        except BaseException as exc:  # noqa: BLE001 - raised below
            errors.append(exc)
        cpu[i] = time.thread_time() - t0
        spans.append((w0, time.perf_counter()))

    join_all([threading.Thread(target=body, args=(i,)) for i in range(nthreads)])
    if errors:
        raise errors[0]
    return wall_of(spans), cpu


def join_all(threads: list) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def wall_of(spans: list) -> float:
    """From the first thread's start to the last one's end, timed by the
    threads themselves: under SCHED_FIFO the main thread may not run again
    until they are done, so its own clock would miss their run."""
    return max(end for _, end in spans) - min(start for start, _ in spans)


def measure(rounds: int) -> list[dict]:
    reg = fjffi.Registry()
    capsule = _floor.capsule("negate")
    for p in POLICIES:
        reg.register(f"negate_{p}", capsule, api_version=1, gil=p)
    invokes = {p: fjffi.Call(f"negate_{p}", reg).invoke for p in POLICIES}
    arrays = {n: [(np.arange(n, dtype=np.float64), np.empty(n)) for _ in range(2)]
              for n in SIZES}
    # About 40 ms per run: 0.5 us per 1k call, up to ~100 us per 1 MiB call.
    calls = {n: max(200, int(80_000 * 1000 / n)) for n in SIZES}
    samples: dict = {(n, p): {"ns": [], "cpu": [], "wall": []} for n in SIZES for p in POLICIES}
    for n in SIZES:  # warm up every row once
        for p in POLICIES:
            run(invokes[p], arrays[n], calls[n] // 10, 2)
    for _ in range(rounds):
        for n in SIZES:
            for p in POLICIES:
                wall1, (cpu1,) = run(invokes[p], arrays[n], calls[n], 1)
                wall2, cpu2 = run(invokes[p], arrays[n], calls[n], 2)
                s = samples[n, p]
                s["ns"].append(cpu1 / calls[n] * 1e9)
                s["cpu"].append(2 * cpu1 / statistics.mean(cpu2))
                s["wall"].append(2 * wall1 / wall2)
    for x, y in arrays[SIZES[-1]]:
        assert np.array_equal(y, -x)
    return [{"elements": n, "moved_bytes": 16 * n, "gil": p,
             "ns_per_call": statistics.median(samples[n, p]["ns"]),
             "cpu_two_over_one": statistics.median(samples[n, p]["cpu"]),
             "wall_two_over_one": statistics.median(samples[n, p]["wall"]),
             "wall_rounds": samples[n, p]["wall"]}
            for n in SIZES for p in POLICIES]


def sharing(rounds: int) -> list[dict]:
    """The goal's row (1k negate, gil="auto") with less shared between the
    two threads: one Call for both (as in measure), a Call per thread, and
    a Call and a Registry per thread; and the floor (the kernel called
    straight from Cython, no fjffi), one function object both threads call,
    as with one Call.  Without a GIL a shared object's reference count is
    written by both threads on every call: the interpreter's own call of a
    callable both threads hold writes it."""
    n, calls = 1000, 80_000
    capsule = _floor.capsule("negate")
    regs = [fjffi.Registry() for _ in range(2)]
    for r in regs:
        r.register("negate_auto", capsule, api_version=1, gil="auto")
    shared = fjffi.Call("negate_auto", regs[0]).invoke
    own = [fjffi.Call("negate_auto", regs[0]).invoke for _ in range(2)]
    own_reg = [fjffi.Call("negate_auto", regs[i]).invoke for i in range(2)]
    arrays = [(np.arange(n, dtype=np.float64), np.empty(n)) for _ in range(2)]
    # Each variant: thread i's callable and its two arguments.
    variants = {"one Call": lambda i: (shared, (arrays[i][0],), (arrays[i][1],)),
                "a Call per thread": lambda i: (own[i], (arrays[i][0],), (arrays[i][1],)),
                "a Call and a Registry per thread":
                    lambda i: (own_reg[i], (arrays[i][0],), (arrays[i][1],)),
                "the floor (no fjffi)": lambda i: (_floor.negate, *arrays[i])}
    samples: dict = {v: {"one_ns": [], "two_ns": [], "cpu": [], "wall": []} for v in variants}

    def run_each(pick, nthreads):
        # run() with a different invoke per thread.
        barrier = threading.Barrier(nthreads)
        cpu = [0.0] * nthreads
        spans: list = []

        def body(i):
            invoke, ins, outs = pick(i)
            barrier.wait()
            w0, t0 = time.perf_counter(), time.thread_time()
            for _ in itertools.repeat(None, calls):
                invoke(ins, outs)
            cpu[i] = time.thread_time() - t0
            spans.append((w0, time.perf_counter()))

        join_all([threading.Thread(target=body, args=(i,)) for i in range(nthreads)])
        return wall_of(spans), cpu

    for _ in range(rounds):
        for v, pick in variants.items():
            wall1, (cpu1,) = run_each(pick, 1)
            wall2, cpu2 = run_each(pick, 2)
            s = samples[v]
            s["one_ns"].append(cpu1 / calls * 1e9)
            s["two_ns"].append(statistics.mean(cpu2) / calls * 1e9)
            s["cpu"].append(2 * cpu1 / statistics.mean(cpu2))
            s["wall"].append(2 * wall1 / wall2)
    return [{"variant": v, **{k: statistics.median(x) for k, x in samples[v].items()}}
            for v in variants]


def environment() -> dict:
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    try:
        policy = os.sched_getscheduler(0)
    except (AttributeError, OSError):
        policy = None
    return {"python": sys.version.split()[0],
            "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
            "gil_enabled": gil, "fifo": policy == getattr(os, "SCHED_FIFO", -1),
            "cpus": os.cpu_count(), "load": os.getloadavg()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    env = environment()
    rows = measure(args.rounds)
    print(f"python {env['python']}, free-threaded {env['free_threaded']}, GIL enabled "
          f"{env['gil_enabled']}, SCHED_FIFO {env['fifo']}, {env['cpus']} CPUs, load "
          f"{' '.join(f'{x:.2f}' for x in env['load'])}; medians of {args.rounds} rounds")
    print(f"{'elements':>9} {'moved':>9} {'gil':>8} {'ns/call':>9} {'cpu x2':>7} {'wall x2':>8}")
    for r in rows:
        print(f"{r['elements']:>9} {r['moved_bytes']:>9} {r['gil']:>8} {r['ns_per_call']:>9.0f} "
              f"{r['cpu_two_over_one']:>6.2f}x {r['wall_two_over_one']:>7.2f}x")
    (goal,) = [r for r in rows if r["elements"] == 1000 and r["gil"] == "auto"]
    print(f"goal: two threads, 1k negate, gil='auto' >= 1.8x one thread: "
          f"{goal['cpu_two_over_one']:.2f}x (CPU time), {goal['wall_two_over_one']:.2f}x (wall)")
    shares = sharing(args.rounds)
    print("1k negate, gil='auto', two threads over one, by what the threads share:")
    for r in shares:
        print(f"  {r['variant']:<34} ns/call alone {r['one_ns']:>5.0f}, "
              f"with two {r['two_ns']:>5.0f}; cpu x2 {r['cpu']:.2f}x, wall x2 {r['wall']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "rows": rows, "sharing": shares}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
