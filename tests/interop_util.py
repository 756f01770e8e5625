"""Shared by the interop tests: the C kernels of kernels/interop_kernels.c,
compiled with the installed fjffi.h and registered by name."""

import ctypes
import os
import pathlib
import shutil
import subprocess

import fjffi

SOURCE = pathlib.Path(__file__).parent / "kernels" / "interop_kernels.c"
KERNELS = ("ik_copy", "ik_describe", "ik_sum_1d", "ik_serial", "ik_fail_after_write",
           "ik_negate_f64")


def build(out_dir) -> ctypes.CDLL:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    out = pathlib.Path(out_dir) / "libinterop_kernels.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11",
                    "-I", fjffi.get_include(), str(SOURCE), "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(out))


def built_path(lib) -> str:
    return lib._name


def register_all(lib, registry=None, prefix=""):
    """Register every kernel of lib under prefix + its name (once per name)."""
    registry = fjffi.default_registry if registry is None else registry
    for name in KERNELS:
        if prefix + name not in registry:
            registry.register(prefix + name, getattr(lib, name), api_version=1,
                              gil="release", thread_safe=(name != "ik_serial"))
