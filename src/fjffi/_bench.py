"""Benchmarks behind ``python -m fjffi`` and ``python -m fjffi bench``.

Two things are timed here:

- the seed's eight benchmarks (FJ-P2C-007), each doing the work of its
  criterion counterpart in ``benches/ffi_baseline.rs``: ``seed_benchmarks``;
- fjffi against its peers, in one process: the same three calls (noop,
  scalar float64 double, 1000-element float64 negate into a preallocated
  output) through fjffi, the floor (fjffi._floor: the same kernels called
  straight from Cython, no checks), cffi in API and ABI mode, ctypes and
  numpy; then thread scaling, registry scale, allocation, to_buffer's cost
  and the GIL policy's threshold: ``main``.

Every peer calls the very machine code fjffi calls: the kernels linked into
fjffi._floor, reached by address (ctypes and cffi ABI mode, through libffi)
or through a small cffi API-mode module compiled at run time from the C
source below.  The table then shows what reaching a kernel costs on each
route, not differences between kernels.

Figures are per call in ns, net of the timing loop's own cost: the median
over rounds, each round the mean of many back-to-back calls.  Routes are
timed round-robin, so drift on a busy machine hits them all alike.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import itertools
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import timeit
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

import fjffi
from fjffi import _floor

# --- timing -------------------------------------------------------------------


@dataclass
class Case:
    """One timed call: fn(*args, **kwargs).

    verify() raises unless the call did its work: check() when given, else
    the call must return 0 or None (success for a kernel and for invoke)."""

    fn: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    check: Callable[[], None] | None = None
    keep: Any = None  # memory the arguments point into, held for as long as the Case

    def verify(self) -> None:
        if self.check is not None:
            self.check()
        else:
            result = self.fn(*self.args, **self.kwargs)
            expect(result is None or result == 0, f"{self.fn!r} returned {result!r}")

    def timer(self) -> timeit.Timer:
        # A statement, not a lambda: timeit's loop then calls fn directly.
        names = {f"a{i}": a for i, a in enumerate(self.args)}
        names.update({f"k_{k}": v for k, v in self.kwargs.items()})
        params = list(names)[: len(self.args)] + [f"{k}=k_{k}" for k in self.kwargs]
        return timeit.Timer(f"fn({', '.join(params)})", globals={"fn": self.fn, **names})


class Timing(NamedTuple):
    median_ns: float
    min_ns: float


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(f"benchmark sanity check failed: {message}")


_LOOP_NS: float | None = None


def loop_ns() -> float:
    """The cost of one iteration of timeit's empty loop, subtracted from every figure."""
    global _LOOP_NS
    if _LOOP_NS is None:
        _LOOP_NS = min(timeit.Timer("pass").repeat(7, 200_000)) / 200_000 * 1e9
    return _LOOP_NS


def calibrate(timer: timeit.Timer, min_time: float) -> int:
    """The loop count for which one round takes at least min_time seconds."""
    number = 1
    while True:
        t = timer.timeit(number)
        if t >= min_time:
            return number
        number = max(number + 1, int(number * min(10.0, 1.2 * min_time / max(t, 1e-9))))


def measure(cases: dict, rounds: int, min_time: float, progress=None) -> dict:
    """{key: Timing} for {key: Case}, rounds taken round-robin over the cases."""
    base = loop_ns()
    timers = {k: c.timer() for k, c in cases.items()}
    numbers = {k: calibrate(t, min_time) for k, t in timers.items()}
    samples: dict = {k: [] for k in cases}
    total = rounds * len(cases)
    for r in range(rounds):
        for i, (k, timer) in enumerate(timers.items()):
            samples[k].append(timer.timeit(numbers[k]) / numbers[k] * 1e9 - base)
            if progress:
                progress(r * len(cases) + i + 1, total, _label(k))
    for c in cases.values():
        c.verify()
    return {k: Timing(statistics.median(s), min(s)) for k, s in samples.items()}


def _label(key) -> str:
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _settings(quick: bool, rounds: int | None) -> tuple[int, float]:
    """(rounds, seconds per round)."""
    if quick:
        return rounds or 3, 0.01
    return rounds or 7, 0.05


# --- the seed's eight benchmarks ------------------------------------------------


class SeedRow(NamedTuple):
    name: str
    median_ns: float
    seed_ns: float  # the seed's v1 result (its risk note)
    target_ns: float  # the seed's target


# Name, the seed's result and target in ns, in the seed's table order.
SEED = (
    ("ffi_roundtrip/scalar_f64", 92, 500),
    ("ffi_roundtrip/noop", 40, 100),
    ("ffi_roundtrip/1k_f64_vec", 880, 2_000),
    ("marshal/scalar_to_buffer", 16, 100),
    ("marshal/buffer_to_scalar", 8, 100),
    ("marshal/1k_tensor_to_buffer", 1_370, 5_000),
    ("marshal/1k_buffer_to_tensor", 1_590, 5_000),
    ("registry/lookup", 37, 100),
)


def seed_cases() -> dict[str, Case]:
    """The seed's benchmarks as fjffi calls, by the seed's names.

    As in the seed: scalar_f64 and 1k_f64_vec build their input and a zeroed
    output buffer on every iteration, with the Call made once; noop invokes
    with no buffers; a tensor is a float64 ndarray (fjffi's value for one),
    a scalar a Python float.
    """
    to_buffer, from_buffer, zeros = fjffi.to_buffer, fjffi.from_buffer, fjffi.Buffer.zeros
    double = fjffi.Call("double_f64").invoke
    negate = fjffi.Call("negate").invoke
    noop = fjffi.Call("noop").invoke
    arange = np.arange
    f64 = np.float64

    def scalar_f64():
        out = zeros((), "float64")
        double((to_buffer(42.0),), (out,))
        return out

    def vec_1k():
        out = zeros((1000,), "float64")
        negate((arange(1000, dtype=f64),), (out,))
        return out

    scalar = to_buffer(42.0)
    tensor = np.arange(1000, dtype=np.float64)
    tensor_buf = to_buffer(tensor.copy())
    return {
        "ffi_roundtrip/scalar_f64": Case(
            scalar_f64, check=lambda: expect(np.asarray(scalar_f64()) == 84.0, "42 * 2")),
        "ffi_roundtrip/noop": Case(noop, ((), ())),
        "ffi_roundtrip/1k_f64_vec": Case(
            vec_1k, check=lambda: expect((np.asarray(vec_1k()) == -tensor).all(), "negate")),
        "marshal/scalar_to_buffer": Case(
            to_buffer, (42.0,), check=lambda: expect(to_buffer(42.0).tobytes() ==
                                                     np.float64(42.0).tobytes(), "42.0")),
        "marshal/buffer_to_scalar": Case(
            from_buffer, (scalar,), check=lambda: expect(from_buffer(scalar) == 42.0, "42.0")),
        "marshal/1k_tensor_to_buffer": Case(
            to_buffer, (tensor,), check=lambda: expect(to_buffer(tensor).shape == (1000,), "1k")),
        "marshal/1k_buffer_to_tensor": Case(
            from_buffer, (tensor_buf,),
            check=lambda: expect((from_buffer(tensor_buf) == tensor).all(), "1k")),
        "registry/lookup": Case(
            fjffi.default_registry.get, ("double_f64",),
            check=lambda: expect(fjffi.default_registry.get("double_f64").name == "double_f64",
                                 "lookup")),
    }


def seed_benchmarks(quick: bool = False, progress=None, rounds: int | None = None) -> list:
    """[SeedRow] for the seed's eight benchmarks, in the seed's order."""
    rounds, min_time = _settings(quick, rounds)
    timings = measure(seed_cases(), rounds, min_time, progress)
    return [SeedRow(name, timings[name].median_ns, seed, target) for name, seed, target in SEED]


def render_seed(rows) -> str:
    lines = [f"  {'benchmark':<29} {'fjffi':>10} {'seed v1':>10} {'target':>10}  status"]
    for row in rows:
        status = "PASS" if row.median_ns < row.target_ns else "FAIL"
        lines.append(f"  {row.name:<29} {fmt_ns(row.median_ns):>10} {fmt_ns(row.seed_ns):>10} "
                     f"{'< ' + fmt_ns(row.target_ns):>10}  {status}")
    return "\n".join(lines)


def fmt_ns(ns: float) -> str:
    if ns >= 10_000:
        return f"{ns / 1000:.1f} us"
    if ns >= 100:
        return f"{ns:.0f} ns"
    return f"{ns:.1f} ns"


# --- the peer comparison ----------------------------------------------------------

CALLS = ("noop", "scalar_f64", "negate_1k", "scalar_f64_e2e")
CALL_DOCS = {
    "noop": "noop kernel, no buffers",
    "scalar_f64": "double_f64 on preallocated 0-d float64 arrays",
    "negate_1k": "negate of 1000 float64 into a preallocated array",
    "scalar_f64_e2e": "Python float in, double_f64, Python float out",
}
ROUTES = ("floor", "fjffi", "cffi_api", "cffi_abi", "ctypes", "numpy")
ROUTE_DOCS = {
    "floor": "fjffi._floor: the kernel called straight from Cython, no checks",
    "fjffi": "Call.invoke on arrays; end to end: fjffi.call",
    "cffi_api": "cffi API mode: a module compiled at run time",
    "cffi_abi": "cffi ABI mode: a function pointer called through libffi",
    "ctypes": "ctypes, argument types declared",
    "numpy": "np.negative(x, out=y)",
}

RAW_SIG = "int32_t(const uint8_t *const *, size_t, uint8_t *const *, size_t)"
TYPED_SIG = ("int32_t(const fjffi_buffer *, size_t, const fjffi_buffer *, size_t, "
             "fjffi_context *)")
CFFI_TYPES = """
typedef struct fjffi_buffer { void *data; size_t nbytes; int32_t dtype; int32_t ndim;
                              const int64_t *shape; } fjffi_buffer;
typedef struct fjffi_context { char message[256]; } fjffi_context;
"""
# The API-mode module: each function jumps to the fjffi kernel whose address
# bench_set_kernels stored, as fjffi itself calls through a stored pointer.
CFFI_API_CDEF = CFFI_TYPES + f"""
void bench_set_kernels(uintptr_t noop, uintptr_t double_f64, uintptr_t negate);
{RAW_SIG.replace("(", " bench_noop(", 1)};
{RAW_SIG.replace("(", " bench_double_f64(", 1)};
{TYPED_SIG.replace("(", " bench_negate(", 1)};
"""
CFFI_API_SOURCE = """
#include "fjffi.h"

static fjffi_raw_fn noop_fn, double_fn;
static fjffi_typed_fn negate_fn;

static void bench_set_kernels(uintptr_t noop, uintptr_t double_f64, uintptr_t negate) {
    noop_fn = (fjffi_raw_fn)noop;
    double_fn = (fjffi_raw_fn)double_f64;
    negate_fn = (fjffi_typed_fn)negate;
}

static int32_t bench_noop(const uint8_t *const *in, size_t n_in, uint8_t *const *out,
                          size_t n_out) {
    return noop_fn(in, n_in, out, n_out);
}

static int32_t bench_double_f64(const uint8_t *const *in, size_t n_in, uint8_t *const *out,
                                size_t n_out) {
    return double_fn(in, n_in, out, n_out);
}

static int32_t bench_negate(const fjffi_buffer *in, size_t n_in, const fjffi_buffer *out,
                            size_t n_out, fjffi_context *ctx) {
    return negate_fn(in, n_in, out, n_out, ctx);
}
"""


def build_cffi_api():
    """The API-mode module, compiled into a temporary folder; needs a C compiler."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(CFFI_API_CDEF)
    name = f"_fjffi_bench_cffi_{os.getpid()}"
    ffi.set_source(name, CFFI_API_SOURCE, include_dirs=[fjffi.get_include()])
    with tempfile.TemporaryDirectory(prefix="fjffi-bench-") as tmp:
        # The compiler's chatter goes to a file, not into the table.
        with open(os.path.join(tmp, "build.log"), "w") as log:
            saved = os.dup(1), os.dup(2)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                path = ffi.compile(tmpdir=tmp, verbose=False)
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # loaded: the file may go
    addresses = _floor.addresses()
    module.lib.bench_set_kernels(addresses["noop"][0], addresses["double_f64"][0],
                                 addresses["negate"][0])
    return module


class CBuffer(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("nbytes", ctypes.c_size_t),
                ("dtype", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64))]


class CContext(ctypes.Structure):
    _fields_ = [("message", ctypes.c_char * 256)]


def _writes(fn, args, out, want, kwargs=None) -> Callable[[], None]:
    """A check: clear out, call once, and out must then equal want."""
    def check():
        out.fill(0)
        fn(*args, **(kwargs or {}))
        expect(np.array_equal(out, want), f"{fn!r} did not write the expected output")
    return check


def peer_cases() -> tuple[dict, dict]:
    """({(call, route): Case}, {route: why it is missing}) for the comparison."""
    x0 = np.array(21.0)
    x1k = np.arange(1000, dtype=np.float64)
    want0, want1k = np.array(42.0), -x1k
    cases: dict = {}
    missing: dict = {}

    def preallocated(route, noop, double, negate):
        """Cases of the three calls; double and negate take (x, y) and fill y."""
        y0, y1k = np.empty(()), np.empty(1000)
        d_args, n_args = double(x0, y0), negate(x1k, y1k)
        cases["noop", route] = Case(*noop)
        cases["scalar_f64", route] = Case(d_args[0], d_args[1],
                                          check=_writes(*d_args, y0, want0))
        cases["negate_1k", route] = Case(n_args[0], n_args[1],
                                         check=_writes(*n_args, y1k, want1k))

    preallocated("floor", (_floor.noop,),
                 lambda x, y: (_floor.double_f64, (x, y)),
                 lambda x, y: (_floor.negate, (x, y)))

    invoke = {name: fjffi.Call(name).invoke for name in ("noop", "double_f64", "negate")}
    preallocated("fjffi", (invoke["noop"], ((), ())),
                 lambda x, y: (invoke["double_f64"], ((x,), (y,))),
                 lambda x, y: (invoke["negate"], ((x,), (y,))))

    spec = (np.empty(()),)

    def fjffi_e2e(v, call=fjffi.call):
        return float(call("double_f64", (v,), spec)[0])

    cases["scalar_f64_e2e", "fjffi"] = Case(
        fjffi_e2e, (21.0,), check=lambda: expect(fjffi_e2e(21.0) == 42.0, "fjffi.call"))

    addresses = _floor.addresses()
    try:
        import cffi
    except ImportError:
        missing["cffi_api"] = missing["cffi_abi"] = "cffi is not installed"
    else:
        abi = cffi.FFI()
        abi.cdef(CFFI_TYPES)
        raw = f"{RAW_SIG.replace('(', '(*)(', 1)}"
        typed = f"{TYPED_SIG.replace('(', '(*)(', 1)}"
        fns = {"noop": abi.cast(raw, addresses["noop"][0]),
               "double_f64": abi.cast(raw, addresses["double_f64"][0]),
               "negate": abi.cast(typed, addresses["negate"][0])}
        _cffi_route(cases, "cffi_abi", abi, fns, preallocated)
        try:
            api = build_cffi_api()
        except (ImportError, OSError, cffi.VerificationError) as exc:
            # No setuptools, no compiler, a failed build: the table says so.
            missing["cffi_api"] = (f"cannot build the API-mode module: "
                                   f"{type(exc).__name__}: {exc}")
        else:
            fns = {"noop": api.lib.bench_noop, "double_f64": api.lib.bench_double_f64,
                   "negate": api.lib.bench_negate}
            _cffi_route(cases, "cffi_api", api.ffi, fns, preallocated)

    RAW = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                           ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t)
    TYPED = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(CBuffer), ctypes.c_size_t,
                             ctypes.POINTER(CBuffer), ctypes.c_size_t, ctypes.POINTER(CContext))
    c_noop, c_double = RAW(addresses["noop"][0]), RAW(addresses["double_f64"][0])
    c_negate = TYPED(addresses["negate"][0])
    c_ctx = CContext()

    def c_ptrs(a):
        return (ctypes.c_void_p * 1)(a.ctypes.data)

    def c_desc(a):
        # ctypes keeps the shape array alive in the struct's _objects.
        return CBuffer(a.ctypes.data, a.nbytes, 0, a.ndim, (ctypes.c_int64 * a.ndim)(*a.shape))

    preallocated("ctypes", (c_noop, (None, 0, None, 0)),
                 lambda x, y: (c_double, (c_ptrs(x), 1, c_ptrs(y), 1)),
                 lambda x, y: (c_negate, (c_desc(x), 1, c_desc(y), 1, c_ctx)))

    y = np.empty(1000)
    cases["negate_1k", "numpy"] = Case(np.negative, (x1k,), {"out": y},
                                       check=_writes(np.negative, (x1k,), y, want1k, {"out": y}))
    return cases, missing


def _cffi_route(cases, route, ffi, fns, preallocated) -> None:
    keep = []  # the cdata that must outlive the calls

    def ptrs(a):
        keep.append(a)
        return ffi.new("uint8_t *[1]", [ffi.cast("uint8_t *", ffi.from_buffer(a))])

    def desc(a):
        d = ffi.new("fjffi_buffer *")
        shape = ffi.new("int64_t[]", list(a.shape) or [0])
        d.data, d.nbytes, d.dtype, d.ndim, d.shape = (
            ffi.cast("void *", ffi.from_buffer(a)), a.nbytes, 0, a.ndim, shape)
        keep.extend((a, shape))
        return d

    ctx = ffi.new("fjffi_context *")
    preallocated(route, (fns["noop"], (ffi.NULL, 0, ffi.NULL, 0)),
                 lambda x, y: (fns["double_f64"], (ptrs(x), 1, ptrs(y), 1)),
                 lambda x, y: (fns["negate"], (desc(x), 1, desc(y), 1, ctx)))
    for (_, r), case in cases.items():
        if r == route:
            case.keep = keep
    if route != "cffi_api":
        return
    # End to end, as a cffi user writes it: set the input, call, check, read the output.
    cin, cout = ffi.new("double[1]"), ffi.new("double[1]")
    ins = ffi.new("uint8_t *[1]", [ffi.cast("uint8_t *", cin)])
    outs = ffi.new("uint8_t *[1]", [ffi.cast("uint8_t *", cout)])
    keep.extend((cin, cout, ins, outs))
    double = fns["double_f64"]

    def cffi_e2e(v):
        cin[0] = v
        if double(ins, 1, outs, 1) != 0:
            raise RuntimeError("double_f64 failed")
        return cout[0]

    cases["scalar_f64_e2e", route] = Case(
        cffi_e2e, (21.0,), check=lambda: expect(cffi_e2e(21.0) == 42.0, "cffi end to end"),
        keep=keep)


# (label, (call, route) measured, (call, route) compared with, the goal's ratio).
PEER_GOALS = (
    ("noop: fjffi / floor", ("noop", "fjffi"), ("noop", "floor"), 2.0),
    ("noop: fjffi / cffi API", ("noop", "fjffi"), ("noop", "cffi_api"), 0.35),
    ("scalar f64 preallocated: fjffi / floor", ("scalar_f64", "fjffi"),
     ("scalar_f64", "floor"), 3.0),
    ("scalar f64 end to end: fjffi.call / cffi API", ("scalar_f64_e2e", "fjffi"),
     ("scalar_f64_e2e", "cffi_api"), 1.5),
    ("1k negate: fjffi / np.negative", ("negate_1k", "fjffi"), ("negate_1k", "numpy"), 1.0),
)


def goal(label: str, value: float | None, limit: float, at_least: bool = False) -> dict:
    met = None if value is None else (value >= limit if at_least else value <= limit)
    return {"goal": label, "value": value, "limit": limit,
            "at_least": at_least, "met": met}


def peers(rounds: int = 7, quick: bool = False, progress=None) -> dict:
    """The peer table: {"rows": [...], "missing": {route: why}, "goals": [...]}."""
    rounds, min_time = _settings(quick, rounds)
    cases, missing = peer_cases()
    timings = measure(cases, rounds, min_time, progress)
    rows = []
    for call in CALLS:
        floor = timings.get((call, "floor"))
        for route in ROUTES:
            t = timings.get((call, route))
            if t is None:
                continue
            rows.append({"call": call, "route": route, "median_ns": t.median_ns,
                         "min_ns": t.min_ns,
                         "x_floor": t.median_ns / floor.median_ns if floor else None})
    goals = []
    for label, key, ref, limit in PEER_GOALS:
        value = (timings[key].median_ns / timings[ref].median_ns
                 if key in timings and ref in timings else None)
        goals.append(goal(label, value, limit))
    return {"rows": rows, "missing": missing, "goals": goals, "loop_ns": loop_ns(),
            "rounds": rounds, "c_parts": c_parts(quick)}


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
    lines = [(f"Peer comparison: median ns per call over {result['rounds']} rounds, net of "
              f"{result['loop_ns']:.1f} ns of loop; x floor = median / the floor's median"),
             f"  {'call':<15} {'route':<9} {'median':>10} {'min':>10} {'x floor':>8}"]
    for call in CALLS:
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
    lines += [f"  {k:<9} {v}" for k, v in ROUTE_DOCS.items()]
    return "\n".join(lines)


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
    from fjffi import _testing

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
            "load_average_1min": os.getloadavg()[0],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def render_goals(goals: list) -> str:
    lines = ["Goals (issue 5), from this run:"]
    for g in goals:
        if g["value"] is None:
            value, verdict = "n/a", "not measured"
        else:
            value = f"{g['value']:.3f}"
            verdict = "met" if g["met"] else "NOT met"
        op = ">=" if g["at_least"] else "<="
        lines.append(f"  {g['goal']:<62} {value:>8} (goal {op} {g['limit']:g})  {verdict}")
    return "\n".join(lines)


SECTIONS = ("peers", "threads", "registry", "allocation", "to_buffer", "gil")


def run(rounds: int = 7, quick: bool = False, progress=None, sections=SECTIONS) -> dict:
    """The measurements of `python -m fjffi bench` (all sections by default), as a
    JSON-ready dict."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    steps = {
        "peers": lambda: peers(rounds, quick, progress),
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
    return report


def render(report: dict) -> str:
    env = report["environment"]
    parts = [(f"fjffi {env['fjffi']} bench: Python {env['python']}, numpy {env['numpy']}, "
              f"cffi {env['cffi'] or 'missing'}, {env['cpus']} CPUs, {env['platform']}, "
              f"load average {env['load_average_1min']:.2f} at the start")]
    renderers = {"peers": render_peers, "threads": render_threads, "registry": render_registry,
                 "allocation": render_allocation, "to_buffer": render_to_buffer,
                 "gil": render_gil}
    parts += [renderers[name](report[name]) for name in SECTIONS if name in report]
    parts.append(render_goals(report["goals"]))
    return "\n\n".join(parts)


def write_json(report: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=_json_default)
        f.write("\n")


def _json_default(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def main(rounds: int = 7, json_path: str | None = None, quick: bool = False,
         progress=None, sections=SECTIONS) -> int:
    """`python -m fjffi bench`: measure, print, and write JSON when asked."""
    report = run(rounds, quick, progress, sections)
    print(render(report))
    if json_path:
        write_json(report, json_path)
        print(f"\nwrote {json_path}")
    return 0
