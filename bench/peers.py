"""The routes of the peer comparison: the same calls (noop, scalar float64
double, 1000- and 1,000,000-element float64 negate into a preallocated
output) through fjffi, the floor (fjffi._floor: the same kernels called
straight from Cython, no checks), cffi in API and ABI mode, ctypes,
nanobind, pybind11 and numpy.

Every peer calls the very machine code fjffi calls: the kernels linked into
fjffi._floor, reached by address (ctypes and cffi ABI mode, through libffi)
or through small extensions compiled at run time: a cffi API-mode module from
the C source below, and nanobind and pybind11 modules (bench/native.py).  A
comparison then shows what reaching a kernel costs on each route, not
differences between kernels (numpy's own loop aside).

peer_cases() gives them as timing cases, for compare.py (medians and ratios)
and test_peers.py (pytest-benchmark).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable

import native
import numpy as np

import fjffi
from fjffi._seedbench import Case, expect

try:
    from fjffi import _floor, _testing  # noqa: F401 -- compare.py takes _testing from here
except ImportError as exc:  # a build without the tests' extensions
    raise SystemExit(
        f"the benchmarks need fjffi._floor and fjffi._testing ({exc}); they are built with "
        "the tests' extensions: install fjffi from this checkout without install tags "
        "(pip install '.[bench]')"
    ) from None

CALLS = ("noop", "scalar_f64", "negate_1k", "negate_1m", "scalar_f64_e2e")
CALL_DOCS = {
    "noop": "noop kernel, no buffers",
    "scalar_f64": "double_f64 on preallocated 0-d float64 arrays",
    "negate_1k": "negate of 1000 float64 into a preallocated array",
    "negate_1m": "negate of 1,000,000 float64 into a preallocated array",
    "scalar_f64_e2e": "Python float in, double_f64, Python float out",
}
ROUTES = ("floor", "fjffi", "fjffi_waw", "cffi_api", "cffi_abi", "ctypes", "nanobind",
          "pybind11", "numpy")
# Routes other than fjffi's own and the floor: what "every peer" means.
PEERS = ("cffi_api", "cffi_abi", "ctypes", "nanobind", "pybind11", "numpy")
ROUTE_DOCS = {
    "floor": "fjffi._floor: the kernel called straight from Cython, no checks",
    "fjffi": "Call.invoke on arrays; end to end: fjffi.call",
    "fjffi_waw": ("Call.invoke of the floor's negate registered by hand with "
                  "writes_all_outputs=True (1M negate only)"),
    "cffi_api": "cffi API mode: a module compiled at run time",
    "cffi_abi": "cffi ABI mode: a function pointer called through libffi",
    "ctypes": "ctypes, argument types declared",
    "nanobind": "nanobind extension built at run time (nb::ndarray arguments)",
    "pybind11": "pybind11 extension built at run time (py::array_t arguments, noconvert)",
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
    x1m = np.arange(1_000_000, dtype=np.float64)
    want0, want1k, want1m = np.array(42.0), -x1k, -x1m
    cases: dict = {}
    missing: dict = {}

    # One output per size, shared by every route: separate 8 MB outputs sit
    # on different pages (huge or not), which alone moved the 1M figures by
    # up to 2x between routes.  Each check clears the output before its call.
    y0, y1k, y1m = np.empty(()), np.empty(1000), np.empty(1_000_000)
    y1m.fill(0)  # every page touched before any timing

    def preallocated(route, noop, double, negate):
        """Cases of the calls; double and negate take (x, y) and fill y."""
        d_args, n_args, m_args = double(x0, y0), negate(x1k, y1k), negate(x1m, y1m)
        cases["noop", route] = Case(*noop)
        cases["scalar_f64", route] = Case(d_args[0], d_args[1],
                                          check=_writes(*d_args, y0, want0))
        cases["negate_1k", route] = Case(n_args[0], n_args[1],
                                         check=_writes(*n_args, y1k, want1k))
        cases["negate_1m", route] = Case(m_args[0], m_args[1],
                                         check=_writes(*m_args, y1m, want1m))

    preallocated("floor", (_floor.noop,),
                 lambda x, y: (_floor.double_f64, (x, y)),
                 lambda x, y: (_floor.negate, (x, y)))

    invoke = {name: fjffi.Call(name).invoke for name in ("noop", "double_f64", "negate")}
    preallocated("fjffi", (invoke["noop"], ((), ())),
                 lambda x, y: (invoke["double_f64"], ((x,), (y,))),
                 lambda x, y: (invoke["negate"], ((x,), (y,))))

    # A user's target declaring writes_all_outputs: the floor's negate, by hand.
    waw = fjffi.Registry()
    waw.register("negate", _floor.capsule("negate"), api_version=1, writes_all_outputs=True)
    waw_invoke = fjffi.Call("negate", waw).invoke
    cases["negate_1m", "fjffi_waw"] = Case(
        waw_invoke, ((x1m,), (y1m,)), check=_writes(waw_invoke, ((x1m,), (y1m,)), y1m, want1m),
        keep=waw)

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

    for route in ("nanobind", "pybind11"):
        try:
            ext = native.build(route)
        except native.Unavailable as exc:
            missing[route] = str(exc)
            continue
        ext.set_kernels(addresses["noop"][0], addresses["double_f64"][0],
                        addresses["negate"][0])
        preallocated(route, (ext.noop,), lambda x, y, e=ext: (e.double_f64, (x, y)),
                     lambda x, y, e=ext: (e.negate, (x, y)))

    for x, y, want in ((x1k, y1k, want1k), (x1m, y1m, want1m)):
        cases[f"negate_{'1k' if x.size == 1000 else '1m'}", "numpy"] = Case(
            np.negative, (x,), {"out": y},
            check=_writes(np.negative, (x,), y, want, {"out": y}))
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
