"""fjffi against its peers, with thread scaling, registry scale and allocation:

    python bench/compare.py [--rounds N] [--json PATH] [--quick] [--only SECTION ...]

Sections: peers (noop, scalar float64 double, 1000- and 1,000,000-element
float64 negate through fjffi, a direct Cython call of the same kernel (the
floor), cffi API and ABI mode, ctypes, nanobind, pybind11 and numpy: medians
of thread CPU time and ratios to the floor), resolve (two C threads looking
a name up at once vs one), stats (the cost of per-target statistics),
threads (2 threads vs 1), registry (lookup at 10 to 100,000 targets),
allocation (tracemalloc over 10^6 invokes), to_buffer (1k vs 10M elements),
gil (the cost of releasing the GIL by size).  `--only goals` runs peers,
resolve and stats; the speed goals' table closes every run that has them.

Run it with the Python whose fjffi was installed from this checkout
(pip install '.[bench]'): it needs fjffi._floor and fjffi._testing, which
the installed package's runtime does not.  Figures are per call in ns, net of
the timing loop's own cost, and depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import random
import statistics
import sys
import threading
import time
import timeit
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

# bench/ is on sys.path (the script's folder, or pytest's rootdir for bench/).
# peers imports fjffi's bench-only extensions, and says what to install if missing.
import peers as routes
from peers import _floor, _testing

import fjffi
from fjffi._seedbench import (
    Case,
    Timing,
    calibrate,
    describe_load,
    expect,
    fmt_ns,
    json_path_arg,
    load_average,
    measure,
    progress,
    rounds_arg,
    write_json,
)

# --- the peer comparison ----------------------------------------------------------

def goal(label: str, value: float | None, limit: float, at_least: bool = False,
         note: str = "") -> dict:
    met = None if value is None else (value >= limit if at_least else value <= limit)
    return {"goal": label, "value": value, "limit": limit,
            "at_least": at_least, "met": met, "note": note}


def measure_cpu(cases: dict, rounds: int, min_time: float, progress=None,
                samples: dict | None = None, order: Callable[[int], list] | None = None
                ) -> dict:
    """As fjffi._seedbench.measure, in this thread's CPU time (time.thread_time):
    time the machine's other load takes from the process is not counted.
    samples, when given, receives each case's per-round figures; order(r),
    when given, is the order of the keys in round r."""
    base = cpu_loop_ns()
    timers = {}
    for k, c in cases.items():
        timers[k] = c.timer()
        timers[k].timer = time.thread_time
    numbers = {k: calibrate(t, min_time) for k, t in timers.items()}
    if samples is None:
        samples = {}
    samples.update({k: [] for k in cases})
    total = rounds * len(cases)
    for r in range(rounds):
        for i, k in enumerate(order(r) if order else timers):
            samples[k].append(timers[k].timeit(numbers[k]) / numbers[k] * 1e9 - base)
            if progress:
                progress(r * len(cases) + i + 1, total, "/".join(map(str, k)))
    for c in cases.values():
        c.verify()
    return {k: Timing(statistics.median(s), min(s)) for k, s in samples.items()}


_CPU_LOOP_NS = None


def cpu_loop_ns() -> float:
    """timeit's empty loop per iteration in thread CPU time, subtracted from every figure."""
    global _CPU_LOOP_NS
    if _CPU_LOOP_NS is None:
        _CPU_LOOP_NS = min(timeit.Timer("pass", timer=time.thread_time).repeat(7, 200_000)
                           ) / 200_000 * 1e9
    return _CPU_LOOP_NS


def peer_settings(quick: bool, rounds: int | None) -> tuple[int, float]:
    """(rounds, seconds per round): many short rounds, so a burst of load moves few."""
    if quick:
        return rounds or 5, 0.01
    return rounds or 21, 0.02


def peers(rounds: int | None = None, quick: bool = False, progress=None) -> dict:
    """The peer table: {"rows": [...], "missing": {route: why}, "medians": {...}}."""
    rounds, min_time = peer_settings(quick, rounds)
    cases, missing = routes.peer_cases()
    # Each call's routes are timed one after the other within a round, so a
    # ratio taken round by round compares figures seconds apart at most; in an
    # order shuffled each round, since the first route timed after another
    # call's runs slower (cold caches and predictors).
    groups = [[k for k in cases if k[0] == call] for call in routes.CALLS]

    def order(r):
        shuffle = random.Random(r).shuffle
        keys = []
        for group in groups:
            group = group[:]
            shuffle(group)
            keys += group
        return keys

    samples: dict = {}
    timings = measure_cpu(cases, rounds, min_time, progress, samples, order)
    rows = []
    for call in routes.CALLS:
        floor = timings.get((call, "floor"))
        for route in routes.ROUTES:
            t = timings.get((call, route))
            if t is None:
                continue
            rows.append({"call": call, "route": route, "median_ns": t.median_ns,
                         "min_ns": t.min_ns,
                         "x_floor": t.median_ns / floor.median_ns if floor else None})
    goals = [goal("noop: fjffi / cffi API", ratio(timings, ("noop", "fjffi"),
                                                  ("noop", "cffi_api")), 0.35)]
    return {"rows": rows, "missing": missing, "goals": goals, "loop_ns": cpu_loop_ns(),
            "rounds": rounds, "c_parts": c_parts(quick),
            "medians": {f"{c}/{r}": t.median_ns for (c, r), t in timings.items()},
            "samples": {f"{c}/{r}": s for (c, r), s in samples.items()}}


def ratio(timings: dict, key, ref) -> float | None:
    return (timings[key].median_ns / timings[ref].median_ns
            if key in timings and ref in timings else None)


def c_parts(quick: bool = False) -> dict:
    """Parts of a call timed in C loops (median ns of a few runs): where the time goes."""
    n = 100_000 if quick else 1_000_000
    x, y = np.arange(1000, dtype=np.float64), np.empty(1000)

    def med(fn, *args):
        return statistics.median(fn(*args) for _ in range(3 if quick else 7))

    return {"noop_kernel_ns": med(_floor.kernel_noop_ns, 10 * n),
            "registry_get_ns": med(_floor.registry_lookup_ns, fjffi.default_registry,
                                   ["negate"], 10 * n),
            "rwlock_pair_ns": med(_floor.rwlock_pair_ns, 10 * n),
            "negate_1k_kernel_ns": med(_floor.kernel_negate_ns, x, y, n),
            "scrub_8000_bytes_ns": med(_floor.scrub_ns, y, n)}


def render_peers(result: dict) -> str:
    lines = [(f"Peer comparison: median thread CPU ns per call over {result['rounds']} rounds, "
              f"net of {result['loop_ns']:.1f} ns of loop; x floor = median / the floor's "
              "median"),
             f"  {'call':<15} {'route':<9} {'median':>10} {'min':>10} {'x floor':>8}"]
    for call in routes.CALLS:
        rows = [r for r in result["rows"] if r["call"] == call]
        for r in rows:
            ratio = "" if r["x_floor"] is None else f"{r['x_floor']:.2f}"
            lines.append(f"  {call:<15} {r['route']:<9} {fmt_ns(r['median_ns']):>10} "
                         f"{fmt_ns(r['min_ns']):>10} {ratio:>8}")
    c = result["c_parts"]
    lines.append(f"  in C, per call: noop kernel {fmt_ns(c['noop_kernel_ns'])}, registry_get "
                 f"{fmt_ns(c['registry_get_ns'])} (rwlock rdlock+unlock "
                 f"{fmt_ns(c['rwlock_pair_ns'])}), negate kernel on 1000 float64 "
                 f"{fmt_ns(c['negate_1k_kernel_ns'])}, zeroing its 8000-byte output "
                 f"{fmt_ns(c['scrub_8000_bytes_ns'])}")
    for route, why in result["missing"].items():
        lines.append(f"  {route}: missing ({why})")
    lines += [f"  {k:<9} {v}" for k, v in routes.ROUTE_DOCS.items()]
    return "\n".join(lines)


# --- two threads resolving at once, in C --------------------------------------------

RESOLVE_MODES = ("cached_shared", "cached_per_thread", "registry_get")
RESOLVE_DOCS = {
    "cached_shared": "registry_cached_get, one cache both threads read (one Call, two threads)",
    "cached_per_thread": "registry_cached_get, a cache per thread (a Call per thread)",
    "registry_get": "registry_get: the pthread rwlock's read lock around the probe",
}


def resolve(quick: bool = False, progress=None) -> dict:
    """Per-lookup thread CPU time of one name, on one thread and on two at once,
    in C threads (fjffi._floor.lookups_ns); ratio = two threads' mean / one's,
    per round, median over rounds.  The registry holds the built-ins and 1000
    other names, as an application's would.

    On a busy 2-core machine the two threads often take turns on one core,
    and then nothing contends: only rounds whose threads ran side by side
    (overlap >= OVERLAPPED: CPU time over the wall time spanned) count for
    the "side by side" ratio."""
    reg = fjffi.Registry()
    reg.register_builtins()
    capsule = _floor.capsule("noop")
    for i in range(1000):
        reg.register(f"target_{i:04d}", capsule)
    rounds = 7 if quick else 31
    n = 300_000 if quick else 2_000_000
    samples = {m: {"one": [], "two": [], "ratio": [], "overlap": []} for m in RESOLVE_MODES}
    for r in range(rounds):
        for k, mode in enumerate(RESOLVE_MODES):
            # registry_get costs several times more: fewer lookups, the same span.
            count = n // 4 if mode == "registry_get" else n
            (one,), _ = _floor.lookups_ns(reg, "negate", mode, 1, count)
            both, overlap = _floor.lookups_ns(reg, "negate", mode, 2, count)
            two = statistics.mean(both)
            samples[mode]["overlap"].append(overlap)
            samples[mode]["one"].append(one)
            samples[mode]["two"].append(two)
            samples[mode]["ratio"].append(two / one)
            if progress:
                progress(r * len(RESOLVE_MODES) + k + 1, rounds * len(RESOLVE_MODES),
                         f"resolve/{mode}")
    rows = {}
    for m, v in samples.items():
        side = [r for r, o in zip(v["ratio"], v["overlap"], strict=True) if o >= OVERLAPPED]
        rows[m] = {"one_ns": statistics.median(v["one"]), "two_ns": statistics.median(v["two"]),
                   "ratio": statistics.median(v["ratio"]), "rounds": v["ratio"],
                   "overlaps": v["overlap"], "side_by_side": len(side),
                   "side_by_side_ratio": statistics.median(side) if side else None}
    return {"rows": rows, "rounds": rounds, "lookups": n}


# A two-thread round counts as side by side from this overlap (2.0: both ran throughout).
OVERLAPPED = 1.8
SIDE_BY_SIDE_MIN = 3  # rounds needed for a side-by-side figure


def render_resolve(result: dict) -> str:
    lines = [("Two threads resolving at once, in C: thread CPU ns per lookup of one name, "
              f"median of {result['rounds']} rounds; ratio = two threads / one, per round")]
    lines.append(f"  {'path':<18} {'1 thread':>9} {'2 threads':>10} {'ratio':>6}  "
                 f"side by side (overlap >= {OVERLAPPED}): rounds, ratio; rounds as ratio@overlap")
    for mode in RESOLVE_MODES:
        r = result["rows"][mode]
        spread = ", ".join(f"{x:.2f}@{o:.1f}" for x, o in zip(r["rounds"], r["overlaps"],
                                                              strict=True))
        side = r["side_by_side_ratio"]
        lines.append(f"  {mode:<18} {fmt_ns(r['one_ns']):>9} {fmt_ns(r['two_ns']):>10} "
                     f"{r['ratio']:>5.2f}x  {r['side_by_side']:>2}, "
                     f"{'n/a' if side is None else f'{side:.2f}x'}  ({spread})")
    lines += [f"  {m:<18} {RESOLVE_DOCS[m]}" for m in RESOLVE_MODES]
    return "\n".join(lines)


# --- per-target statistics: their cost on the noop --------------------------------

def stats_cost(quick: bool = False, progress=None) -> dict:
    """noop Call.invoke with statistics off, on (counting) and on with timing
    (fjffi.set_stats), rounds alternating; the ns each adds to the call."""
    if not (hasattr(fjffi.Registry, "stats") and hasattr(fjffi, "set_stats")):
        return {"available": False,
                "why": "this fjffi has no Registry.stats and set_stats to switch statistics"}
    reg = fjffi.Registry()
    reg.register_builtins()
    timer = Case(fjffi.Call("noop", reg).invoke, ((), ())).timer()
    timer.timer = time.thread_time
    number = calibrate(timer, 0.01 if quick else 0.02)
    rounds = 5 if quick else 21
    states = {"off": (False, False), "on": (True, False), "timing": (True, True)}
    samples: dict = {state: [] for state in states}
    before = fjffi.stats_enabled()
    try:
        for r in range(rounds):
            for state, (enabled, timing) in states.items():
                fjffi.set_stats(enabled, timing=timing)
                samples[state].append(timer.timeit(number) / number * 1e9)
            if progress:
                progress(r + 1, rounds, "stats")
    finally:
        fjffi.set_stats(before[0], timing=before[1])
    calls = reg.stats("noop")["calls"]
    expect(calls >= 2 * rounds * number, f"statistics counted {calls} calls")
    med = {state: statistics.median(v) for state, v in samples.items()}
    # Added ns as the median of the differences round by round.
    added = {state: statistics.median(a - b for a, b in zip(samples[state], samples["off"],
                                                             strict=True))
             for state in ("on", "timing")}
    return {"available": True, "off_ns": med["off"], "on_ns": med["on"],
            "timing_ns": med["timing"], "added_ns": added["on"],
            "timing_added_ns": added["timing"], "rounds": rounds}


def render_stats(result: dict) -> str:
    if not result["available"]:
        return f"Statistics on the noop: not measured ({result['why']})"
    return (f"Statistics on the noop: Call.invoke {fmt_ns(result['off_ns'])} off, "
            f"{fmt_ns(result['on_ns'])} on ({result['added_ns']:+.1f} ns), "
            f"{fmt_ns(result['timing_ns'])} on with timing ({result['timing_added_ns']:+.1f} ns); "
            f"thread CPU time, medians of {result['rounds']} alternating rounds (added: "
            "the median of the differences round by round)")


# --- the speed goals -------------------------------------------------------------------


def speed_goals(report: dict) -> list:
    """The goals of the peer, resolve and stats sections, from their figures."""
    goals = []
    if "peers" in report:
        m = report["peers"]["medians"]
        samples = report["peers"]["samples"]

        def over(key, ref):
            """The median of the ratios round by round (each round's figures taken
            moments apart): steadier, under a changing load, than a ratio of medians."""
            if key not in samples or ref not in samples:
                return None
            return statistics.median(a / b for a, b in zip(samples[key], samples[ref],
                                                            strict=True))

        goals += [
            goal("noop Call.invoke / floor", over("noop/fjffi", "noop/floor"), 1.5),
            goal("scalar f64 preallocated / floor",
                 over("scalar_f64/fjffi", "scalar_f64/floor"), 2.0),
            goal("1k f64 negate preallocated / floor",
                 over("negate_1k/fjffi", "negate_1k/floor"), 1.3),
            goal("1k f64 negate preallocated / np.negative(x, out=y)",
                 over("negate_1k/fjffi", "negate_1k/numpy"), 0.5),
        ]
        peers_1m = {r: m[f"negate_1m/{r}"] for r in routes.PEERS if f"negate_1m/{r}" in m}
        # The fastest peer by median; the ratio to it round by round.
        fastest = min(peers_1m, key=peers_1m.get) if peers_1m else None
        for route, what in (("fjffi", "built-in"), ("fjffi_waw", "writes_all_outputs")):
            goals.append(goal(f"1M f64 negate, {what} / floor",
                              over(f"negate_1m/{route}", "negate_1m/floor"), 1.05))
            goals.append(goal(f"1M f64 negate, {what} / fastest peer ({fastest})",
                              over(f"negate_1m/{route}", f"negate_1m/{fastest}")
                              if fastest else None, 1.0))
        goals.append(goal("fjffi.call scalar end to end / cffi API end to end",
                          over("scalar_f64_e2e/fjffi", "scalar_f64_e2e/cffi_api"), 1.0,
                          note="" if "scalar_f64_e2e/cffi_api" in m else "cffi API missing"))
    if "resolve" in report:
        rows = report["resolve"]["rows"]
        for mode, what in (("cached_shared", "one shared Call cache"),
                           ("cached_per_thread", "a Call cache each")):
            r = rows[mode]
            enough = r["side_by_side"] >= SIDE_BY_SIDE_MIN
            goals.append(goal(
                f"two threads resolving / one, side by side, C, {what}",
                r["side_by_side_ratio"] if enough else None, 1.1,
                note="" if enough else (f"the threads ran side by side in {r['side_by_side']} "
                                        f"of {len(r['rounds'])} rounds only")))
    if "stats" in report:
        st = report["stats"]
        goals.append(goal("statistics on - off, noop Call.invoke (ns added)",
                          st["added_ns"] if st["available"] else None, 3.0,
                          note="" if st["available"] else st["why"]))
    return goals


# --- thread scaling -------------------------------------------------------------


def run_threads(work: Callable[[int], None], nthreads: int) -> float:
    """Wall seconds for nthreads threads, each running work(i), started together."""
    barrier = threading.Barrier(nthreads + 1)
    errors: list = []

    def body(i):
        barrier.wait()
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 -- raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall


def scaling(works: dict, rounds: int, progress=None) -> dict:
    """Throughput of two threads over one, for each {name: work(i)}, each thread doing
    the same work.  Rounds go round-robin over the works, so a change in the
    machine's load hits every row alike; "of_ceiling" is each round's ratio over
    the ceiling's ratio in the same round."""
    ratios: dict = {name: [] for name in works}
    for r in range(rounds):
        for k, (name, work) in enumerate(works.items()):
            one = run_threads(work, 1)
            two = run_threads(work, 2)
            ratios[name].append(2 * one / two)
            if progress:
                progress(r * len(works) + k + 1, rounds * len(works), f"threads/{name}")
    ceiling = ratios["c_only_ceiling"]
    return {name: {"ratio": statistics.median(rs), "rounds": rs,
                   "of_ceiling": statistics.median(
                       [a / c for a, c in zip(rs, ceiling, strict=True)])}
            for name, rs in ratios.items()}


def thread_scaling(quick: bool = False, progress=None) -> dict:
    """2-thread / 1-thread throughput for 8 MB negate (fjffi, numpy) and busy_loop."""
    rounds = 3 if quick else 7
    n = 8 * 2**20 // 8
    xs = [np.random.default_rng(i).standard_normal(n) for i in range(2)]
    ys = [np.zeros(n) for _ in range(2)]
    negate = fjffi.Call("negate").invoke
    calls = 8 if quick else 30

    def fjffi_negate(i):
        ins, outs = (xs[i],), (ys[i],)
        for _ in itertools.repeat(None, calls):
            negate(ins, outs)

    def numpy_negate(i):
        x, y = xs[i], ys[i]
        for _ in itertools.repeat(None, calls):
            np.negative(x, out=y)

    reg = fjffi.Registry()
    busy = _testing.kernels()["busy_loop"][0]
    reg.register("busy_release", busy, api_version=1, gil="release")
    reg.register("busy_hold", busy, api_version=1, gil="hold")
    outs = [np.zeros((), np.uint64) for _ in range(2)]
    steps = np.array(1_000_000, np.int64)
    # About 2 ms a call, whatever this machine's speed.
    t = min(timeit.Timer(lambda: fjffi.Call("busy_release", reg).invoke((steps,), (outs[0],)))
            .repeat(5, 1))
    steps = np.array(max(1000, int(1_000_000 * 0.002 / t)), np.int64)
    busy_calls = 10 if quick else 40

    def busy_loop(policy):
        invoke = fjffi.Call(f"busy_{policy}", reg).invoke

        def work(i):
            ins, out = (steps,), (outs[i],)
            for _ in itertools.repeat(None, busy_calls):
                invoke(ins, out)
        return work

    def c_only(i):
        # Pure C without the GIL (busy_loop's arithmetic): what this machine gives
        # two threads right now, the ceiling for every other row.
        _floor.spin(busy_calls * int(steps))

    works = {"negate_8mb_fjffi": fjffi_negate, "negate_8mb_numpy": numpy_negate,
             "busy_loop_release": busy_loop("release"), "busy_loop_hold": busy_loop("hold"),
             "c_only_ceiling": c_only}
    for work in works.values():
        work(0)  # first touch of every page, outside the timing
        work(1)
    result = scaling(works, rounds, progress)
    expect(np.array_equal(ys[0], -xs[0]) and np.array_equal(ys[1], -xs[1]), "negate 8 MB")
    expect(outs[0] == outs[1] and outs[0] != 0, "busy_loop checksums")
    result["busy_loop_ms"] = t * 1e3 * int(steps) / 1_000_000
    np_ratio = result["negate_8mb_numpy"]["ratio"]
    result["goals"] = [
        goal("2 threads / 1, busy_loop with gil='release'",
             result["busy_loop_release"]["ratio"], 1.8, at_least=True),
        goal("8 MB negate scaling: fjffi / np.negative",
             result["negate_8mb_fjffi"]["ratio"] / np_ratio, 0.95, at_least=True),
    ]
    return result


def render_threads(result: dict) -> str:
    lines = [("Thread scaling: throughput of 2 threads / 1 thread, median of rounds; and "
              "over the ceiling's in the same round")]
    for name in ("negate_8mb_fjffi", "negate_8mb_numpy", "busy_loop_release", "busy_loop_hold",
                 "c_only_ceiling"):
        row = result[name]
        rounds = ", ".join(f"{r:.2f}" for r in row["rounds"])
        lines.append(f"  {name:<20} {row['ratio']:.2f}x  {row['of_ceiling']:.2f}   "
                     f"(rounds: {rounds})")
    lines.append(f"  busy_loop: {result['busy_loop_ms']:.1f} ms a call; negate: each thread has "
                 "its own 8 MB input and output; c_only_ceiling: busy_loop's arithmetic in C "
                 "with no GIL, what the machine gives two threads at the time")
    return "\n".join(lines)


# --- registry scale ----------------------------------------------------------------


def registry_scale(quick: bool = False, progress=None,
                   sizes: tuple = (10, 1_000, 100_000)) -> dict:
    """C-level lookup, Call.invoke of noop and `in`, at each registry size."""
    lookups = 200_000 if quick else 2_000_000
    reps = 3 if quick else 7
    rwlock = statistics.median(_floor.rwlock_pair_ns(lookups) for _ in range(reps))
    capsule = _floor.capsule("noop")
    rows = []
    for k, size in enumerate(sizes):
        reg = fjffi.Registry()
        names = [f"target_{i:06d}" for i in range(size)]
        for name in names:
            reg.register(name, capsule)
        probe = names[size // 2]
        shuffled = names[:]
        random.Random(0).shuffle(shuffled)
        same = statistics.median(_floor.registry_lookup_ns(reg, [probe], lookups)
                                 for _ in range(reps))
        spread = statistics.median(
            _floor.registry_lookup_ns(reg, shuffled, max(lookups, 4 * size))
            for _ in range(reps))
        both = []
        run_threads(lambda i, r=reg, p=probe, out=both: out.append(
            _floor.registry_lookup_ns(r, [p], lookups)), 2)
        call = fjffi.Call(probe, reg)
        timings = measure({"invoke": Case(call.invoke, ((), ())),
                           "contains": Case(reg.__contains__, (probe,),
                                            check=lambda p=probe, r=reg: expect(p in r, "in"))},
                          3 if quick else 7, 0.01 if quick else 0.03)
        rows.append({"targets": size, "lookup_ns": same, "lookup_all_names_ns": spread,
                     "lookup_two_threads_ns": statistics.mean(both),
                     "invoke_noop_ns": timings["invoke"].median_ns,
                     "contains_ns": timings["contains"].median_ns})
        if progress:
            progress(k + 1, len(sizes), f"registry/{size}")
    small, large = rows[0], rows[-1]
    return {
        "rwlock_pair_ns": rwlock, "rows": rows,
        "goals": [
            goal(f"C lookup at {small['targets']} targets / rwlock rdlock+unlock pair",
                 small["lookup_ns"] / rwlock, 3.0),
            goal(f"C lookup at {large['targets']} / at {small['targets']} targets (one name)",
                 large["lookup_ns"] / small["lookup_ns"], 1.5),
            goal(f"C lookup at {large['targets']} / at {small['targets']} targets "
                 "(every name, shuffled)",
                 large["lookup_all_names_ns"] / small["lookup_all_names_ns"], 1.5),
        ],
    }


def render_registry(result: dict) -> str:
    lines = [(f"Registry scale (uncontended rwlock rdlock+unlock pair: "
              f"{result['rwlock_pair_ns']:.1f} ns)")]
    lines.append(f"  {'targets':>8} {'C lookup':>10} {'all names':>10} {'2 threads':>10} "
                 f"{'invoke noop':>12} {'name in reg':>12}")
    for r in result["rows"]:
        lines.append(f"  {r['targets']:>8} {fmt_ns(r['lookup_ns']):>10} "
                     f"{fmt_ns(r['lookup_all_names_ns']):>10} "
                     f"{fmt_ns(r['lookup_two_threads_ns']):>10} "
                     f"{fmt_ns(r['invoke_noop_ns']):>12} {fmt_ns(r['contains_ns']):>12}")
    lines.append("  C lookup: registry_get with the hash precomputed (as Call does), one name "
                 "repeated; all names: every name in a shuffled cycle; 2 threads: one name, "
                 "two threads looking up at once (ns per lookup in each)")
    return "\n".join(lines)


# --- allocation and to_buffer ---------------------------------------------------------


def traced_growth(invoke, ins, outs, calls: int) -> tuple[int, int]:
    """(growth, peak above start) in bytes that tracemalloc sees over `calls` invokes."""
    # Made before tracing starts: itertools.repeat, not range, whose ints above 256
    # are allocated on the fly.
    loop = itertools.repeat(None, calls)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in loop:
            invoke(ins, outs)
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return end - start, peak - start


def allocation(calls: int = 1_000_000, progress=None) -> dict:
    """tracemalloc growth over `calls` invokes with preallocated buffers, per call kind.

    The same measurement with 0 calls gives the harness's own bytes (the
    readings themselves are objects); the net figure is the difference.
    """
    x0, y0 = np.array(21.0), np.empty(())
    x1k, y1k = np.arange(1000, dtype=np.float64), np.empty(1000)
    kinds = {
        "noop": (fjffi.Call("noop").invoke, (), ()),
        "scalar_f64": (fjffi.Call("double_f64").invoke, (x0,), (y0,)),
        "negate_1k": (fjffi.Call("negate").invoke, (x1k,), (y1k,)),
    }
    rows = []
    for k, (name, (invoke, ins, outs)) in enumerate(kinds.items()):
        for _ in itertools.repeat(None, 1000):  # warm every cache and free list first
            invoke(ins, outs)
        gc.collect()
        harness, harness_peak = traced_growth(invoke, ins, outs, 0)
        growth, peak = traced_growth(invoke, ins, outs, calls)
        rows.append({"call": name, "calls": calls, "growth_bytes": growth - harness,
                     "peak_bytes": peak - harness_peak, "harness_bytes": harness})
        if progress:
            progress(k + 1, len(kinds), f"allocation/{name}")
    expect(y0 == 42.0 and (y1k == -x1k).all(), "invoke results")
    worst = max(max(r["growth_bytes"], r["peak_bytes"]) for r in rows)
    return {"rows": rows, "goals": [goal(f"tracemalloc growth or peak over {calls} invokes, "
                                         "bytes", worst, 0)]}


def render_allocation(result: dict) -> str:
    lines = [("Allocation: tracemalloc over Call.invoke with preallocated buffers, net of the "
              "harness's own bytes (Python's allocators; C malloc is not traced)")]
    for r in result["rows"]:
        lines.append(f"  {r['call']:<11} {r['calls']} calls: growth {r['growth_bytes']} bytes, "
                     f"peak {r['peak_bytes']} bytes (harness: {r['harness_bytes']} bytes)")
    return "\n".join(lines)


def to_buffer_cost(quick: bool = False) -> dict:
    """to_buffer of contiguous float64 arrays of 1k and 10M elements: O(1) means equal."""
    small, large = np.zeros(1000), np.zeros(10_000_000)
    def shape_is(a):
        return lambda: expect(fjffi.to_buffer(a).shape == a.shape, "to_buffer shape")

    timings = measure({"1k": Case(fjffi.to_buffer, (small,), check=shape_is(small)),
                       "10M": Case(fjffi.to_buffer, (large,), check=shape_is(large))},
                      3 if quick else 7, 0.01 if quick else 0.05)
    large_buf = fjffi.to_buffer(large)
    expect(np.asarray(large_buf).ctypes.data == large.ctypes.data, "to_buffer copied")
    ratio = timings["10M"].median_ns / timings["1k"].median_ns
    return {"1k_ns": timings["1k"].median_ns, "10M_ns": timings["10M"].median_ns,
            "goals": [goal("to_buffer: 10M elements / 1k elements", ratio, 1.2)]}


def render_to_buffer(result: dict) -> str:
    return (f"to_buffer of a contiguous float64 array: 1k elements {fmt_ns(result['1k_ns'])}, "
            f"10M elements {fmt_ns(result['10M_ns'])} (zero copy: the same memory)")


# --- the GIL threshold ------------------------------------------------------------------


def spin_while(stop: threading.Event, counter: list) -> None:
    """Pure Python work that wants the GIL all the time; counts its iterations."""
    n = 0
    while not stop.is_set():
        for _ in range(100):
            n += 1
    counter.append(n)


def call_while(stop: threading.Event, counter: list, invoke, ins, outs) -> None:
    """Calls invoke(ins, outs) until stop is set; counts the calls."""
    n = 0
    while not stop.is_set():
        invoke(ins, outs)
        n += 1
    counter.append(n)


def rates(workers: list, window: float) -> list[float]:
    """Iterations per second of each (target, args) worker, all run together for window s."""
    stop = threading.Event()
    counters: list = [[] for _ in workers]
    threads = [threading.Thread(target=fn, args=(stop, counters[i], *args))
               for i, (fn, args) in enumerate(workers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(window)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return [c[0] / elapsed for c in counters]


def gil_threshold(quick: bool = False, progress=None) -> dict:
    """What releasing the GIL around negate costs and buys, by size.

    The floor's negate is registered twice in a new Registry, with
    gil="hold" and gil="release": the same kernel, only the policy differs.
    Measured per size: a lone caller's ns per call; two threads calling
    it at once (each on its own arrays), as throughput over one caller
    holding the GIL; and one caller next to a thread running pure Python,
    as the sum of each one's share of its rate alone (2.0 = two full cores).
    """
    reg = fjffi.Registry()
    capsule = _floor.capsule("negate")
    reg.register("negate_hold", capsule, api_version=1, gil="hold")
    reg.register("negate_release", capsule, api_version=1, gil="release")
    policies = ("hold", "release")
    invokes = {p: fjffi.Call(f"negate_{p}", reg).invoke for p in policies}
    sizes = [2**k for k in range(10, 21, 2 if quick else 1)]  # bytes per array
    arrays = {s: [(np.arange(s // 8, dtype=np.float64), np.empty(s // 8)) for _ in range(2)]
              for s in sizes}
    timings = measure({(s, p): Case(invokes[p], ((arrays[s][0][0],), (arrays[s][0][1],)))
                       for s in sizes for p in policies},
                      3 if quick else 7, 0.01 if quick else 0.03)
    window = 0.03 if quick else 0.1
    (spin_alone,) = rates([(spin_while, ())], window)
    rows = []
    for k, s in enumerate(sizes):
        (x, y), (x2, y2) = arrays[s]
        row = {"bytes_per_array": s, "moved_bytes": 2 * s,
               "kernel_ns": _floor.kernel_negate_ns(x, y, max(50, 2**24 // s))}
        (hold_alone,) = rates([(call_while, (invokes["hold"], (x,), (y,)))], window)
        for p in policies:
            row[f"{p}_ns"] = timings[s, p].median_ns
            two = rates([(call_while, (invokes[p], (x,), (y,))),
                         (call_while, (invokes[p], (x2,), (y2,)))], window)
            row[f"{p}_two_callers"] = sum(two) / hold_alone
            (alone,) = rates([(call_while, (invokes[p], (x,), (y,)))], window)
            calls, spins = rates([(call_while, (invokes[p], (x,), (y,))), (spin_while, ())],
                                 window)
            row[f"{p}_caller_share"] = calls / alone
            row[f"{p}_spinner_share"] = spins / spin_alone
            row[f"{p}_progress"] = calls / alone + spins / spin_alone
        row["release_cost_ns"] = row["release_ns"] - row["hold_ns"]
        rows.append(row)
        if progress:
            progress(k + 1, len(sizes), f"gil/{s}")
    expect(all(np.array_equal(y, -x) for x, y in arrays[sizes[-1]]), "negate")
    return {"rows": rows,
            "lone_caller_5pct_moved_bytes": first_from(
                rows, lambda r: r["release_cost_ns"] <= 0.05 * r["hold_ns"]),
            "two_callers_moved_bytes": first_from(
                rows, lambda r: r["release_two_callers"] > r["hold_two_callers"]),
            "switch_interval_ms": sys.getswitchinterval() * 1e3}


def first_from(rows: list, holds: Callable[[dict], bool]) -> int | None:
    """The smallest bytes moved from which on holds(row) is true for every larger size."""
    for i, row in enumerate(rows):
        if all(holds(r) for r in rows[i:]):
            return row["moved_bytes"]
    return None


def render_gil(result: dict) -> str:
    lines = [
        "GIL policy: negate registered with gil='hold' and gil='release' (same kernel).",
        "  alone: ns per call.  2 callers: two threads calling at once, throughput over one",
        "  caller holding the GIL.  next to busy Python: caller's + busy thread's share of",
        "  their rates alone (2.00 = two full cores).",
        (f"  {'per array':>10} {'moved':>8} {'kernel':>9} {'hold':>9} {'release':>9} "
         f"{'cost':>6} | 2 callers: hold release | next to busy Python: hold         release"),
    ]
    for r in result["rows"]:
        busy = " ".join(f"{r[p + '_caller_share']:.2f}+{r[p + '_spinner_share']:.2f}="
                        f"{r[p + '_progress']:.2f}" for p in ("hold", "release"))
        lines.append(
            f"  {fmt_bytes(r['bytes_per_array']):>10} {fmt_bytes(r['moved_bytes']):>8} "
            f"{fmt_ns(r['kernel_ns']):>9} {fmt_ns(r['hold_ns']):>9} {fmt_ns(r['release_ns']):>9} "
            f"{r['release_cost_ns']:>+6.0f} | {r['hold_two_callers']:>14.2f}x "
            f"{r['release_two_callers']:>6.2f}x | {busy:>35}")
    lone, two = result["lone_caller_5pct_moved_bytes"], result["two_callers_moved_bytes"]

    def at(n):
        return fmt_bytes(n) if n else "no size measured"

    lines.append(f"  a release costs a lone caller <= 5% from {at(lone)} moved (inputs + outputs); "
                 f"two callers gain from releasing from {at(two)} moved; switch interval "
                 f"{result['switch_interval_ms']:.0f} ms")
    return "\n".join(lines)


def fmt_bytes(n: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


# --- the whole run ------------------------------------------------------------------------


def environment() -> dict:
    try:
        import cffi

        cffi_version = cffi.__version__
    except ImportError:
        cffi_version = None
    return {"fjffi": fjffi.__version__, "python": sys.version.split()[0],
            "numpy": np.__version__, "cffi": cffi_version, "machine": platform.machine(),
            "cpus": os.cpu_count(), "platform": platform.platform(),
            # Other work on the machine skews every figure, thread scaling most.
            "load_average": load_average(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def render_goals(goals: list, title: str = ("The project's goals, as measured in this run "
                                             "(figures depend on the machine and its "
                                             "load):")) -> str:
    lines = [title]
    for g in goals:
        if g["value"] is None:
            value = "n/a"
            verdict = f"not measured: {g['note']}" if g.get("note") else "not measured"
        else:
            value = f"{g['value']:.3f}"
            verdict = "met" if g["met"] else "not met here"
        op = ">=" if g["at_least"] else "<="
        lines.append(f"  {g['goal']:<62} {value:>8} (goal {op} {g['limit']:g})  {verdict}")
    return "\n".join(lines)


SECTIONS = ("peers", "resolve", "stats", "threads", "registry", "allocation", "to_buffer",
            "gil")
# --only goals: what the speed goals are computed from.
GOAL_SECTIONS = ("peers", "resolve", "stats")


def run(rounds: int | None = None, quick: bool = False, progress=None,
        sections=SECTIONS) -> dict:
    """The measurements (all sections by default), as a JSON-ready dict."""
    if "goals" in sections:
        sections = (set(sections) - {"goals"}) | set(GOAL_SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    steps = {
        "peers": lambda: peers(rounds, quick, progress),
        "resolve": lambda: resolve(quick, progress),
        "stats": lambda: stats_cost(quick, progress),
        "threads": lambda: thread_scaling(quick, progress),
        "registry": lambda: registry_scale(quick, progress),
        "allocation": lambda: allocation(100_000 if quick else 1_000_000, progress),
        "to_buffer": lambda: to_buffer_cost(quick),
        "gil": lambda: gil_threshold(quick, progress),
    }
    report: dict[str, Any] = {"environment": environment()}
    for name in SECTIONS:
        if name in sections:
            report[name] = steps[name]()
    report["goals"] = [g for name in SECTIONS if name in report
                       for g in report[name].get("goals", ())]
    report["speed_goals"] = speed_goals(report)
    return report


def render(report: dict, load_at_start: str) -> str:
    env = report["environment"]
    parts = [(f"fjffi {env['fjffi']} compared: Python {env['python']}, numpy {env['numpy']}, "
              f"cffi {env['cffi'] or 'missing'}, {env['platform']}; {load_at_start} at the "
              "start.\nEvery figure depends on this machine and its load.")]
    renderers = {"peers": render_peers, "resolve": render_resolve, "stats": render_stats,
                 "threads": render_threads, "registry": render_registry,
                 "allocation": render_allocation, "to_buffer": render_to_buffer,
                 "gil": render_gil}
    parts += [renderers[name](report[name]) for name in SECTIONS if name in report]
    if report["goals"]:
        parts.append(render_goals(report["goals"], "Other goals, as measured in this run:"))
    if report["speed_goals"]:
        parts.append(render_goals(report["speed_goals"], (
            f"Speed goals (fjffi {report['environment']['fjffi']}; ratios in this one "
            "process, thread CPU time, the median of the ratios round by round; figures "
            "depend on the machine and its load):")))
    return "\n\n".join(parts)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python bench/compare.py",
        description=__doc__.split("\n\n")[0].rstrip(":") + ".",
        epilog=("Needs fjffi installed from this checkout with its tests' extensions "
                "(pip install '.[bench]'); cffi's API-mode route also needs a C compiler."),
    )
    p.add_argument("--rounds", type=rounds_arg, metavar="N",
                   help="rounds per timed case, an integer >= 1 (default 7, 3 with --quick)")
    p.add_argument("--json", type=json_path_arg, metavar="PATH",
                   help="also write the results as JSON to PATH (checked before the run)")
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds: noisier figures")
    p.add_argument("--only", nargs="+", choices=(*SECTIONS, "goals"), default=SECTIONS,
                   metavar="SECTION",
                   help=(f"sections to run, of: {', '.join(SECTIONS)}, or goals (the sections "
                         f"the speed goals need: {', '.join(GOAL_SECTIONS)}) (default: all)"))
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    load_at_start = describe_load()
    report = run(args.rounds, args.quick, progress, args.only)
    print(render(report, load_at_start))
    if args.json:
        write_json(report, args.json)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
