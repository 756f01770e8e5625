"""The nanobind and pybind11 routes of the peer comparison: a tiny extension
each, compiled from the C++ below with the packages installed from PyPI
(pip install nanobind pybind11, or '.[bench]').

Each extension reaches the kernels fjffi._floor links (the very machine code
fjffi calls) through pointers set once by set_kernels, as the cffi API-mode
module does, and takes numpy arrays the way its library expects them
(nb::ndarray, py::array_t).  The builds are cached in a folder under the
temporary directory, keyed by the source, the library's version, the
interpreter and the compiler, so only the first run pays for compiling.

build(name) returns the loaded module, or raises Unavailable with the reason
(the library is missing, no C++ compiler, a failed build).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import fjffi


class Unavailable(Exception):
    """A route that cannot be built here; the message says why."""


COMMON = r"""
#include <cstdint>
#include "fjffi.h"

static fjffi_raw_fn noop_fn, double_fn;
static fjffi_typed_fn negate_fn;

static void set_kernels(uintptr_t noop, uintptr_t double_f64, uintptr_t negate) {
    noop_fn = reinterpret_cast<fjffi_raw_fn>(noop);
    double_fn = reinterpret_cast<fjffi_raw_fn>(double_f64);
    negate_fn = reinterpret_cast<fjffi_typed_fn>(negate);
}

static int32_t call_double(const void *x, void *y) {
    const uint8_t *in[1] = {static_cast<const uint8_t *>(x)};
    uint8_t *out[1] = {static_cast<uint8_t *>(y)};
    return double_fn(in, 1, out, 1);
}

static void describe(fjffi_buffer *d, void *data, size_t nbytes, int32_t ndim,
                     const int64_t *shape) {
    d->data = data;
    d->nbytes = nbytes;
    d->dtype = FJFFI_FLOAT64;
    d->ndim = ndim;
    d->shape = shape;
}
"""

SOURCES = {
    "nanobind": COMMON + r"""
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

namespace nb = nanobind;
using f64 = nb::ndarray<double, nb::c_contig, nb::device::cpu>;

NB_MODULE(MODULE_NAME, m) {
    m.def("set_kernels", &set_kernels);
    m.def("noop", []() { return noop_fn(nullptr, 0, nullptr, 0); });
    m.def("double_f64", [](f64 x, f64 y) { return call_double(x.data(), y.data()); });
    m.def("negate", [](f64 x, f64 y) {
        fjffi_buffer d[2];
        fjffi_context ctx;
        describe(&d[0], x.data(), x.nbytes(), (int32_t)x.ndim(), x.shape_ptr());
        describe(&d[1], y.data(), y.nbytes(), (int32_t)y.ndim(), y.shape_ptr());
        return negate_fn(&d[0], 1, &d[1], 1, &ctx);
    });
}
""",
    "pybind11": COMMON + r"""
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>

namespace py = pybind11;
using f64 = py::array_t<double, py::array::c_style>;
static_assert(sizeof(py::ssize_t) == sizeof(int64_t), "shape entries are int64");

PYBIND11_MODULE(MODULE_NAME, m) {
    m.def("set_kernels", &set_kernels);
    m.def("noop", []() { return noop_fn(nullptr, 0, nullptr, 0); });
    // noconvert: a wrong array is refused, never copied (a copied output
    // would be written and thrown away).
    m.def("double_f64", [](const f64 &x, f64 &y) {
        return call_double(x.data(), y.mutable_data());
    }, py::arg("x").noconvert(), py::arg("y").noconvert());
    m.def("negate", [](const f64 &x, f64 &y) {
        fjffi_buffer d[2];
        fjffi_context ctx;
        describe(&d[0], const_cast<double *>(x.data()), (size_t)x.nbytes(), (int32_t)x.ndim(),
                 reinterpret_cast<const int64_t *>(x.shape()));
        describe(&d[1], y.mutable_data(), (size_t)y.nbytes(), (int32_t)y.ndim(),
                 reinterpret_cast<const int64_t *>(y.shape()));
        return negate_fn(&d[0], 1, &d[1], 1, &ctx);
    }, py::arg("x").noconvert(), py::arg("y").noconvert());
}
""",
}


def _library(name: str):
    """(version, include dirs, extra sources) of nanobind or pybind11."""
    try:
        if name == "nanobind":
            import nanobind as lib

            src = lib.source_dir()
            robin = os.path.join(os.path.dirname(src), "ext", "robin_map", "include")
            return lib.__version__, [lib.include_dir(), robin], [
                os.path.join(src, "nb_combined.cpp")]
        import pybind11 as lib

        return lib.__version__, [lib.get_include()], []
    except ImportError:
        raise Unavailable(f"{name} is not installed (pip install {name})") from None


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx or not shutil.which(cxx.split()[0]):
        raise Unavailable("no C++ compiler (c++ or g++, or $CXX) on PATH")
    return cxx


def cache_root() -> str:
    return os.path.join(tempfile.gettempdir(), f"fjffi-bench-ext-{os.getuid()}")


def build(name: str):
    """The loaded extension of route `name` ("nanobind" or "pybind11"), built on first use."""
    version, includes, extra = _library(name)
    cxx = _compiler()
    module = f"_fjffi_bench_{name}"
    source = SOURCES[name].replace("MODULE_NAME", module)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    with open(os.path.join(fjffi.get_include(), "fjffi.h"), "rb") as f:
        header = f.read().decode()
    key = hashlib.sha256("\0".join(
        [source, version, sys.version, suffix, cxx, fjffi.__version__, header]).encode()
    ).hexdigest()[:16]
    folder = os.path.join(cache_root(), f"{name}-{key}")
    path = os.path.join(folder, module + suffix)
    if not os.path.exists(path):
        os.makedirs(cache_root(), exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=cache_root()) as tmp:
            cpp = os.path.join(tmp, module + ".cpp")
            with open(cpp, "w") as f:
                f.write(source)
            out = os.path.join(tmp, module + suffix)
            cmd = [*cxx.split(), "-O3", "-DNDEBUG", "-std=c++17", "-shared", "-fPIC",
                   "-fvisibility=hidden", "-fno-strict-aliasing",
                   f"-I{sysconfig.get_paths()['include']}", f"-I{fjffi.get_include()}",
                   *(f"-I{d}" for d in includes), cpp, *extra, "-o", out]
            try:
                done = subprocess.run(cmd, check=False, capture_output=True, text=True,
                                      timeout=600)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise Unavailable(f"cannot build the {name} extension: {exc}") from None
            if done.returncode != 0:
                tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
                raise Unavailable(f"building the {name} extension failed: {tail}")
            # Renamed into place whole, so a concurrent run never loads half a file.
            os.makedirs(folder, exist_ok=True)
            os.replace(out, path)
    spec = importlib.util.spec_from_file_location(module, path)
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    return ext
