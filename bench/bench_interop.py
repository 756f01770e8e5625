"""Interop benchmarks: prints ratios (lower is better; goals in brackets).

    python bench/bench_interop.py [jax] [dlpack] [numba]

jax:    one extra fjffi call inside one jax.jit, against XLA's own typed
        empty handler (C++ ffi.h, compiled here with g++ against
        jax.ffi.include_dir(), a few seconds) [<= 1.2x], and against a C
        handler that does nothing at all (the floor of any handler)
dlpack: a 1k float64 negate on a torch tensor and on a jax array, against
        the same on numpy arrays [<= 1.3x]
numba:  a numba @cfunc target (typed ABI) against the built-in noop
"""

import ctypes
import pathlib
import sys
import timeit

import numpy as np

import fjffi


ROUNDS = 7


def best(fn, number, repeat=7):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def bench_jax():
    import jax
    import fjffi.jax as fj
    from fjffi import _jax_handler

    fj.register_handler()
    jax.ffi.register_ffi_target(
        "fjffi_bench_empty",
        jax.ffi.pycapsule(ctypes.c_void_p(_jax_handler.empty_handler_address())),
        platform="cpu")
    spec = jax.ShapeDtypeStruct((), np.float32)
    steps = [("fjffi", lambda y: fj.call("noop", y, results=spec)),
             ("C floor", jax.ffi.ffi_call("fjffi_bench_empty", spec))]
    typed = xla_typed_empty_handler()
    if typed is not None:
        jax.ffi.register_ffi_target("fjffi_bench_xla_empty", jax.ffi.pycapsule(typed),
                                    platform="cpu")
        steps.append(("XLA typed", jax.ffi.ffi_call("fjffi_bench_xla_empty", spec)))
    k = 200

    def chain(step, n):
        @jax.jit
        def f(x):
            for _ in range(n):
                x = step(x)
            return x
        return f

    x = np.float32(1.0)
    chains = {}
    for label, step in steps:
        f0, fk = chain(step, 0), chain(step, k)
        f0(x).block_until_ready(), fk(x).block_until_ready()
        chains[label] = (f0, fk)
    # Rounds alternate between the handlers, so that load from elsewhere
    # falls on all of them; the median of each is printed.
    samples = {label: [] for label in chains}
    for _ in range(ROUNDS):
        for label, (f0, fk) in chains.items():
            t0 = best(lambda: f0(x).block_until_ready(), 1000, 3)
            tk = best(lambda: fk(x).block_until_ready(), 100, 3)
            samples[label].append((tk - t0) / k)
    per = {label: float(np.median(v)) for label, v in samples.items()}
    line = f"jax: per extra call in one jit: fjffi {per['fjffi'] * 1e6:.3f} us"
    for label in per:
        if label != "fjffi":
            line += (f", {label} {per[label] * 1e6:.3f} us "
                     f"({per['fjffi'] / per[label]:.2f}x)")
    print(line + " [<= 1.2x against XLA typed]")


XLA_EMPTY_CC = r"""
#include "xla/ffi/api/ffi.h"
namespace ffi = xla::ffi;
static ffi::Error Empty(ffi::AnyBuffer, ffi::Result<ffi::AnyBuffer>) {
  return ffi::Error::Success();
}
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    fjffi_bench_xla_empty, Empty,
    ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>());
"""


def xla_typed_empty_handler():
    """XLA's own typed empty handler, built once into a temporary folder;
    None without a C++ compiler."""
    import os
    import shutil
    import subprocess
    import tempfile

    import jax

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        return None
    folder = pathlib.Path(tempfile.gettempdir()) / f"fjffi-bench-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    lib = folder / "libxla_empty.so"
    if not lib.exists():
        (folder / "xla_empty.cc").write_text(XLA_EMPTY_CC)
        subprocess.run([cxx, "-std=c++17", "-O2", "-shared", "-fPIC", "-w",
                        "-I", jax.ffi.include_dir(), str(folder / "xla_empty.cc"),
                        "-o", str(lib)], check=True)
    return ctypes.CDLL(str(lib)).fjffi_bench_xla_empty


def bench_dlpack():
    x = np.random.default_rng(0).standard_normal(1000)
    out = np.empty_like(x)
    call = fjffi.Call("negate")
    cases = {"numpy": ((x,), (out,))}
    try:
        import torch
        cases["torch"] = ((torch.from_numpy(x.copy()),), (torch.empty(1000, dtype=torch.float64),))
    except ImportError:
        pass
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        cases["jax input"] = ((jax.numpy.asarray(x),), (out,))
    except ImportError:
        pass
    samples = {label: [] for label in cases}
    for _ in range(ROUNDS):  # alternating, as for jax
        for label, (ins, outs) in cases.items():
            samples[label].append(best(lambda: call.invoke(ins, outs), 5000, 3))
    t = {label: float(np.median(v)) for label, v in samples.items()}
    line = f"dlpack: 1k negate: numpy {t['numpy'] * 1e6:.2f} us"
    for label in t:
        if label != "numpy":
            line += f", {label} {t[label] * 1e6:.2f} us ({t[label] / t['numpy']:.2f}x)"
    print(line + " [<= 1.3x]")


def bench_numba():
    import numba
    import fjffi.numba as fn

    @numba.cfunc(fn.typed_signature)
    def nb_noop(inputs, n_inputs, outputs, n_outputs, ctx):
        return 0

    reg = fjffi.Registry()
    reg.register("nb_noop", nb_noop, api_version=1)
    x, out = np.zeros(8), np.zeros(8)
    c_nb, c_noop = fjffi.Call("nb_noop", reg), fjffi.Call("noop")
    t_nb, t_noop = [], []
    for _ in range(ROUNDS):
        t_nb.append(best(lambda: c_nb.invoke((x,), (out,)), 20000, 3))
        t_noop.append(best(lambda: c_noop.invoke((x,), (out,)), 20000, 3))
    t_nb, t_noop = float(np.median(t_nb)), float(np.median(t_noop))
    print(f"numba: cfunc target {t_nb * 1e6:.3f} us, built-in noop {t_noop * 1e6:.3f} us, "
          f"ratio {t_nb / t_noop:.2f}x")


if __name__ == "__main__":
    which = sys.argv[1:] or ["jax", "dlpack", "numba"]
    for name in which:
        globals()["bench_" + name]()
