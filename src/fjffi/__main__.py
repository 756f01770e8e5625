"""python -m fjffi: what is registered, a self-check of every built-in kernel
against numpy, and the seed's benchmarks as measured here, next to the
seed's v1 figures."""

from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

import fjffi
from fjffi import _seedbench

TYPED_DTYPES = ("float64", "float32", "int64", "int32")
SHAPES = ((), (0,), (7,), (3, 4), (2, 0, 5), (1000,))


def describe_targets(registry) -> list[str]:
    lines = [f"{'name':<12} {'kind':<9} {'abi':<9} {'gil':<8} thread_safe"]
    for name in registry.names():
        t = registry.get(name)
        abi = {0: "raw (0)", 1: "typed (1)"}.get(t.api_version, "python")
        lines.append(f"{name:<12} {t.kind:<9} {abi:<9} {t.gil:<8} {t.thread_safe}")
    return lines


def sample(shape, dtype, rng) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def self_check() -> list[tuple[str, str | None]]:
    """(kernel, None) for each built-in kernel that agrees with numpy, or
    (kernel, what went wrong)."""
    rng = np.random.default_rng(0)
    results = []

    def check(name, fn):
        try:
            fn()
        except Exception as exc:  # a self-check reports, it does not stop
            results.append((name, f"{type(exc).__name__}: {exc}"))
        else:
            results.append((name, None))

    def noop():
        fjffi.Call("noop").invoke((), ())

    def copy():
        x = np.array(-0.0 * np.pi)
        (y,) = fjffi.call("copy", (x,), (x,))
        assert y.tobytes() == x.tobytes(), "copy changed the bits"

    def double_f64():
        for v in (0.0, 1.5, -3.25, 1e308, np.nan):
            (y,) = fjffi.call("double_f64", (v,), (np.empty(()),))
            with np.errstate(over="ignore"):
                want = np.float64(v) * 2
            assert np.array_equal(y, want, equal_nan=True), f"double_f64({v}) = {y}"

    def fail():
        y = np.full(4, 7.0)
        try:
            fjffi.Call("fail").invoke((), (y,))
        except fjffi.CallFailedError as exc:
            assert exc.code == -42 and exc.target == "fail", repr(exc)
            assert not y.any(), "outputs not zeroed after a failed call"
        else:
            raise AssertionError("fail did not fail")

    def elementwise(name, ufunc, arity):
        def run():
            for dtype in TYPED_DTYPES:
                for shape in SHAPES:
                    xs = [sample(shape, dtype, rng) for _ in range(arity)]
                    (y,) = fjffi.call(name, xs, (xs[0],))
                    with np.errstate(over="ignore"):
                        want = ufunc(*xs)
                    assert y.dtype == want.dtype and np.array_equal(y, want), (
                        f"{name} {dtype}{shape}"
                    )
        return run

    def total():
        for dtype in TYPED_DTYPES:
            for shape in SHAPES:
                x = sample(shape, dtype, rng)
                (y,) = fjffi.call("sum", (x,), (np.empty((), dtype),))
                want = np.sum(x, dtype=dtype)
                if x.dtype.kind == "f":
                    tol = 1e-5 if dtype == "float32" else 1e-12
                    ok = np.allclose(y, want, rtol=tol, atol=tol * max(1, x.size))
                else:
                    ok = y == want
                assert ok, f"sum {dtype}{shape}: {y} != {want}"

    checks = {
        "noop": noop, "copy": copy, "double_f64": double_f64, "fail": fail,
        "negate": elementwise("negate", np.negative, 1),
        "add": elementwise("add", np.add, 2),
        "multiply": elementwise("multiply", np.multiply, 2),
        "sum": total,
    }
    for name in fjffi.targets():
        if fjffi.default_registry.get(name).kind != "builtin":
            continue
        if name in checks:
            check(name, checks[name])
        else:
            results.append((name, "no self-check for this kernel"))
    return results


def main_job(args) -> int:
    print(f"fjffi {fjffi.__version__} (numpy {np.__version__}, Python "
          f"{platform.python_version()}; {_seedbench.describe_load()})")
    print(f"\nRegistered targets ({len(fjffi.default_registry)}):")
    for line in describe_targets(fjffi.default_registry):
        print("  " + line)

    print("\nSelf-check of the built-in kernels against numpy:")
    checked = self_check()
    failures = 0
    for name, problem in checked:
        print(f"  {name:<12} {'ok' if problem is None else 'FAILED: ' + problem}")
        failures += problem is not None
    report = {"fjffi": fjffi.__version__, "numpy": np.__version__,
              "python": platform.python_version(), "cpus": os.cpu_count(),
              "load_average": _seedbench.load_average(),
              "self_check": {name: problem or "ok" for name, problem in checked}}

    if not args.no_bench:
        rounds, _ = _seedbench.settings(args.quick, args.rounds)
        print("\nThe seed's eight benchmarks, timed here next to the seed's v1 figures\n"
              f"(median per call over {rounds} rounds; {_seedbench.describe_load()}):")
        rows = _seedbench.seed_benchmarks(quick=args.quick, progress=_seedbench.progress,
                                          rounds=args.rounds)
        print(_seedbench.render_seed(rows))
        print("  fjffi/v1 below 1 means faster than v1.  The figures depend on this machine and "
              "on\n  its load; v1's were measured on another machine.  fjffi against cffi, "
              "ctypes and\n  numpy: bench/compare.py in the source checkout.")
        report["seed"] = [{"name": r.name, "median_ns": r.median_ns, "seed_v1_ns": r.seed_ns}
                          for r in rows]
    if args.json:
        _seedbench.write_json(report, args.json)
        print(f"\nwrote {args.json}")
    if failures:
        print(f"\n{failures} built-in kernel(s) FAILED the self-check", file=sys.stderr)
        return 1
    return 0


BENCH_MOVED = """\
The comparison of fjffi with a direct Cython call, cffi, ctypes and numpy
(thread scaling, registry scale, allocation and the GIL policy too) is not
part of the installed package.  It lives in fjffi's source checkout; from
its root, with fjffi installed from that checkout:

    pip install '.[bench]'
    python bench/compare.py{args}
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fjffi",
        description=(
            "fjffi: call C kernels on numpy buffers through a validated, thread-safe registry. "
            "With no command: print the version, the load average and the registered targets, "
            "self-check every built-in kernel against numpy, and time the seed's eight "
            "benchmarks next to the seed's v1 figures. The figures depend on the machine and "
            "its load; the exit status is 1 only when the self-check fails."
        ),
        epilog=("The comparison with cffi, ctypes and numpy is not installed: it is "
                "bench/compare.py in the source checkout (`python -m fjffi bench` says so)."),
    )
    p.add_argument("--no-bench", action="store_true", help="skip the seed's benchmarks")
    p.add_argument("--quick", action="store_true", help="fewer rounds: faster, noisier figures")
    p.add_argument("--rounds", type=_seedbench.rounds_arg, metavar="N",
                   help="rounds per benchmark, an integer >= 1 (default 7, 3 with --quick)")
    p.add_argument("--json", type=_seedbench.json_path_arg, metavar="PATH",
                   help="also write the self-check and the figures as JSON to PATH")
    sub = p.add_subparsers(dest="command", metavar="command")
    sub.add_parser(
        "bench",
        help="say where the comparison with cffi, ctypes and numpy is (bench/compare.py)",
        description=BENCH_MOVED.format(args=" [--rounds N] [--json PATH] [--quick]"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return p


def main(argv=None) -> int:
    p = parser()
    # Known options only, so that `bench` with the options it used to take
    # still points to where the comparison is.
    args, extra = p.parse_known_args(argv)
    if args.command == "bench":
        print(BENCH_MOVED.format(args="".join(" " + a for a in extra)), end="")
        return 0
    if extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    return main_job(args)


if __name__ == "__main__":
    sys.exit(main())
