"""The cost of an isolated target, as ratios measured in one run:

    python bench/bench_isolate.py [--calls N] [--rounds R]

- isolated noop per call, against a bare pipe ping-pong between two
  processes (one byte each way, os.read/os.write from Python on both
  sides): the floor of any process round trip driven from Python;
- isolated 8 MiB float64 negate, against the same C kernel called in
  process.

The kernels are tests/kernels/isolate_kernels.c, compiled here with cc.
Each figure is the best of R rounds (the machine is shared).
"""

import argparse
import ctypes
import multiprocessing
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import fjffi

KERNELS_C = pathlib.Path(__file__).resolve().parent.parent / "tests" / "kernels" / (
    "isolate_kernels.c")


def compile_kernels(folder: str) -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    out = os.path.join(folder, "libbench_isolate.so")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-std=gnu11", "-I", fjffi.get_include(),
                    str(KERNELS_C), "-o", out], check=True)
    return out


def echo(reader, writer) -> None:
    read_fd, write_fd = reader.fileno(), writer.fileno()
    while True:
        data = os.read(read_fd, 1)
        if not data:
            return
        os.write(write_fd, data)


def pipe_round_trip(calls: int) -> float:
    """Seconds per one-byte round trip through two pipes to another process."""
    ctx = multiprocessing.get_context("forkserver")
    child_reader, parent_writer = ctx.Pipe(duplex=False)
    parent_reader, child_writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=echo, args=(child_reader, child_writer), daemon=True)
    child.start()
    child_reader.close()
    child_writer.close()
    read_fd, write_fd = parent_reader.fileno(), parent_writer.fileno()
    try:
        for _ in range(100):
            os.write(write_fd, b"x")
            os.read(read_fd, 1)
        start = time.perf_counter()
        for _ in range(calls):
            os.write(write_fd, b"x")
            os.read(read_fd, 1)
        return (time.perf_counter() - start) / calls
    finally:
        parent_writer.close()
        parent_reader.close()
        child.join(10)


def per_call(call, inputs, outputs, calls: int) -> float:
    invoke = call.invoke
    for _ in range(min(calls, 100)):
        invoke(inputs, outputs)
    start = time.perf_counter()
    for _ in range(calls):
        invoke(inputs, outputs)
    return (time.perf_counter() - start) / calls


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=20000, help="calls per noop round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = compile_kernels(folder)
        lib = ctypes.CDLL(path)
        reg = fjffi.Registry()
        reg.register("negate_inproc", lib.iso_negate, api_version=1, gil="release")
        for symbol in ("iso_noop", "iso_negate"):
            fjffi.KernelSpec.for_library(symbol, path, symbol, api_version=1).register(
                reg, isolate=True, timeout=60)
        noop, negate = fjffi.Call("iso_noop", reg), fjffi.Call("iso_negate", reg)
        inproc = fjffi.Call("negate_inproc", reg)

        pipe = min(pipe_round_trip(args.calls) for _ in range(args.rounds))
        isolated_noop = min(per_call(noop, (), (), args.calls) for _ in range(args.rounds))
        x = np.random.default_rng(0).standard_normal(1 << 20)  # 8 MiB
        out = np.empty_like(x)
        big_calls = 50
        isolated_8m = min(per_call(negate, (x,), (out,), big_calls) for _ in range(args.rounds))
        assert np.array_equal(out, -x)
        inproc_8m = min(per_call(inproc, (x,), (out,), big_calls) for _ in range(args.rounds))

    print(f"{'case':<34}{'time':>12}{'ratio':>10}{'goal':>12}")
    print(f"{'pipe ping-pong (floor), per trip':<34}{pipe * 1e6:>10.1f}us")
    print(f"{'isolated noop, per call':<34}{isolated_noop * 1e6:>10.1f}us"
          f"{isolated_noop / pipe:>9.2f}x{'<= 20 us':>12}")
    print(f"{'in-process negate 8 MiB':<34}{inproc_8m * 1e3:>10.2f}ms")
    print(f"{'isolated negate 8 MiB':<34}{isolated_8m * 1e3:>10.2f}ms"
          f"{isolated_8m / inproc_8m:>9.2f}x{'<= 1.5x':>12}")
    mib_moved = 16  # 8 MiB in, 8 MiB out
    print(f"{'isolated overhead per MiB moved':<34}"
          f"{(isolated_8m - inproc_8m) / mib_moved * 1e6:>10.1f}us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
