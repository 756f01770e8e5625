"""The timing behind ``python -m fjffi``: the seed's eight benchmarks, the
small harness that times them, and the checks of the command-line
arguments.  The peer comparison in the source checkout's bench/ reuses the
harness; nothing here needs more than the runtime package.

Figures are per call in ns, net of the timing loop's own cost: the median
over rounds, each round the mean of many back-to-back calls.  Cases are
timed round-robin, so drift on a busy machine hits them all alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

import fjffi

# --- the harness --------------------------------------------------------------


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
                progress(r * len(cases) + i + 1, total, label(k))
    for c in cases.values():
        c.verify()
    return {k: Timing(statistics.median(s), min(s)) for k, s in samples.items()}


def label(key) -> str:
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)


def settings(quick: bool, rounds: int | None) -> tuple[int, float]:
    """(rounds, seconds per round)."""
    if quick:
        return rounds or 3, 0.01
    return rounds or 7, 0.05


def fmt_ns(ns: float) -> str:
    if ns >= 10_000:
        return f"{ns / 1000:.1f} us"
    if ns >= 100:
        return f"{ns:.0f} ns"
    return f"{ns:.1f} ns"


def progress(done: int, total: int, what: str) -> None:
    """One progress line on stderr, redrawn in place on a terminal."""
    if not sys.stderr.isatty():
        return
    width = 24
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what:<40}"
                     + end)
    sys.stderr.flush()


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages, or None where the system has none."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def describe_load() -> str:
    load = load_average()
    if load is None:
        return f"load average not available, {os.cpu_count()} CPUs"
    return (f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min) on "
            f"{os.cpu_count()} CPUs")


# --- the seed's eight benchmarks --------------------------------------------------


class SeedRow(NamedTuple):
    name: str
    median_ns: float
    seed_ns: float  # the seed's v1 figure, measured on the seed's own machine


# Name and the seed's v1 figure in ns, in the seed's table order.
SEED = (
    ("ffi_roundtrip/scalar_f64", 92),
    ("ffi_roundtrip/noop", 40),
    ("ffi_roundtrip/1k_f64_vec", 880),
    ("marshal/scalar_to_buffer", 16),
    ("marshal/buffer_to_scalar", 8),
    ("marshal/1k_tensor_to_buffer", 1_370),
    ("marshal/1k_buffer_to_tensor", 1_590),
    ("registry/lookup", 37),
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
    rounds, min_time = settings(quick, rounds)
    timings = measure(seed_cases(), rounds, min_time, progress)
    return [SeedRow(name, timings[name].median_ns, seed) for name, seed in SEED]


def render_seed(rows) -> str:
    # Side by side with v1 and as a ratio, never as a verdict: a figure
    # measured on a busy machine is slower, not wrong.
    lines = [f"  {'benchmark':<29} {'fjffi':>10} {'seed v1':>10} {'fjffi/v1':>9}"]
    for row in rows:
        lines.append(f"  {row.name:<29} {fmt_ns(row.median_ns):>10} {fmt_ns(row.seed_ns):>10} "
                     f"{row.median_ns / row.seed_ns:>8.2f}x")
    return "\n".join(lines)


# --- command-line arguments -----------------------------------------------------------


def rounds_arg(text: str) -> int:
    """argparse type of --rounds: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def json_path_arg(text: str) -> str:
    """argparse type of --json: a file that can be written, checked before any
    benchmark runs so that a long run does not end in a failed write."""
    existed = os.path.lexists(text)
    try:
        with open(text, "a"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"cannot write {text!r}: {exc.strerror or exc}") from None
    if not existed:
        os.unlink(text)  # written at the end of the run, not left empty if it fails
    return text


def write_json(report: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=_json_default)
        f.write("\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
