"""Foreign C functions as targets: ctypes, cffi (ABI and API mode),
PyCapsules and objects exposing ``.ctypes``; signature checks, refusals,
keep-alive, and thread_safe=False.

The kernels are real C (tests/kernels/user_kernels.c), compiled here with
the system C compiler into a shared library, as a user would.
"""

import ctypes
import gc
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import threading
import weakref

import numpy as np
import pytest

try:
    import cffi
except ImportError:
    cffi = None

import fjffi
from fjffi._targets import SIGNATURES

KERNELS_C = pathlib.Path(__file__).parent / "kernels" / "user_kernels.c"
F64 = np.empty((), np.float64)
I64 = np.empty((), np.int64)

# ctypes prototypes of the two ABIs.
RAW_ARGS = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
TYPED_ARGS = RAW_ARGS + (ctypes.c_void_p,)
RawProto = ctypes.CFUNCTYPE(ctypes.c_int32, *RAW_ARGS)

CFFI_CDEF = """
typedef struct fjffi_buffer fjffi_buffer;
typedef struct fjffi_context fjffi_context;
int32_t user_add_f64(const uint8_t *const *, size_t, uint8_t *const *, size_t);
int32_t user_negate3_f64(const uint8_t *const *, size_t, uint8_t *const *, size_t);
int32_t user_fail_raw(const uint8_t *const *, size_t, uint8_t *const *, size_t);
int32_t user_scale_typed(const fjffi_buffer *, size_t, const fjffi_buffer *, size_t,
                         fjffi_context *);
double user_not_a_kernel(double);
"""


def compile_shared(source: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11",
         "-I", fjffi.get_include(), str(source), "-o", str(out)],
        check=True, capture_output=True, text=True,
    )
    return out


@pytest.fixture(scope="module")
def lib_path(tmp_path_factory):
    return compile_shared(KERNELS_C, tmp_path_factory.mktemp("kernels") / "libuser_kernels.so")


@pytest.fixture(scope="module")
def cdll(lib_path):
    return ctypes.CDLL(str(lib_path))


@pytest.fixture
def reg():
    return fjffi.Registry()


def raw_fn(cdll, name):
    """A fresh ctypes function object of cdll with the raw ABI declared."""
    fn = cdll[name]  # indexing makes a new object each time, unlike getattr
    fn.restype, fn.argtypes = ctypes.c_int32, RAW_ARGS
    return fn


# --- ctypes -----------------------------------------------------------------

@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_ctypes_raw_kernel_runs_through_call(cdll, reg):
    record = reg.register("add", raw_fn(cdll, "user_add_f64"), gil="release")
    (out,) = fjffi.call("add", (3.0, 4.0), (F64,), registry=reg)
    assert out == 7.0
    assert (record.kind, record.api_version, record.gil, record.thread_safe) == (
        "foreign", 0, "release", True)


@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_ctypes_function_without_declared_argtypes_is_taken_on_trust(cdll, reg):
    fn = cdll["user_negate3_f64"]  # restype defaults to c_int, argtypes to None
    reg.register("negate3", fn)
    (out,) = fjffi.call("negate3", (np.array([1.0, -2.0, 3.5]),), (np.empty(3),), registry=reg)
    assert out.tolist() == [-1.0, 2.0, -3.5]


@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_ctypes_typed_kernel_runs_and_reports_its_message(cdll, reg):
    fn = cdll["user_scale_typed"]
    fn.restype, fn.argtypes = ctypes.c_int32, TYPED_ARGS
    reg.register("scale", fn, api_version=1)
    x = np.arange(6.0).reshape(2, 3)
    (out,) = fjffi.call("scale", (x, 2.5), (x,), registry=reg)
    assert np.array_equal(out, x * 2.5)
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.call("scale", (np.arange(3), 2.0), (np.empty(3, np.int64),), registry=reg)
    assert (info.value.target, info.value.code) == ("scale", 2)
    assert info.value.message == "user_scale_typed: every buffer must be float64"


@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_ctypes_failure_code_propagates_and_outputs_are_zeroed(cdll, reg):
    reg.register("fail", raw_fn(cdll, "user_fail_raw"))
    out = np.full(4, 7.0)
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("fail", reg).invoke((), (out,))
    assert (info.value.target, info.value.code) == ("fail", -42)
    assert not out.any()


def test_cfunctype_over_a_python_function_runs_with_the_gil_released():
    reg = fjffi.Registry()  # its own: pytest-run-parallel shares fixtures between threads
    # ctypes takes the GIL itself when C calls back into Python.
    def add(inputs, n_inputs, outputs, n_outputs):
        a = ctypes.cast(inputs[0], ctypes.POINTER(ctypes.c_double))[0]
        b = ctypes.cast(inputs[1], ctypes.POINTER(ctypes.c_double))[0]
        ctypes.cast(outputs[0], ctypes.POINTER(ctypes.c_double))[0] = a + b
        return 0

    proto = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                             ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t)
    reg.register("py_add", proto(add), gil="release")
    (out,) = fjffi.call("py_add", (1.25, 2.5), (F64,), registry=reg)
    assert out == 3.75


def test_an_address_wrapped_in_cfunctype_is_accepted(cdll):
    reg = fjffi.Registry()  # its own: pytest-run-parallel shares fixtures between threads
    # The way the bare-int refusal tells a user to wrap an address.
    address = ctypes.cast(cdll.user_add_f64, ctypes.c_void_p).value
    reg.register("wrapped", RawProto(address))
    assert fjffi.call("wrapped", (0.5, 0.25), (F64,), registry=reg)[0] == 0.75


@pytest.mark.parametrize("argtypes", [
    (ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8)), ctypes.c_size_t,
     ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8)), ctypes.c_size_t),
    (ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_ulonglong),
    (ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t),
])
@pytest.mark.parametrize("restype", [ctypes.c_int32, ctypes.c_int])
def test_ctypes_signatures_that_fit_the_raw_abi(cdll, argtypes, restype):
    reg = fjffi.Registry()  # its own: pytest-run-parallel shares fixtures between threads
    fn = cdll["user_add_f64"]
    fn.restype, fn.argtypes = restype, argtypes
    reg.register("add", fn)
    assert fjffi.call("add", (1.0, 2.0), (F64,), registry=reg)[0] == 3.0


@pytest.mark.parametrize("restype, argtypes, api_version, declared", [
    (ctypes.c_double, (ctypes.c_double,), 0, "c_double (c_double)"),
    (ctypes.c_int32, RAW_ARGS[:3], 0, "c_int (c_void_p, c_ulong, c_void_p)"),
    (ctypes.c_int32, (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_size_t), 0,
     "c_int (c_void_p, c_long, c_void_p, c_ulong)"),
    (ctypes.c_int32, (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t), 0,
     "c_int (c_void_p, c_uint, c_void_p, c_ulong)"),
    (ctypes.c_int64, RAW_ARGS, 0, "c_long (c_void_p, c_ulong, c_void_p, c_ulong)"),
    (None, RAW_ARGS, 0, "void (c_void_p, c_ulong, c_void_p, c_ulong)"),
    (ctypes.c_int32, RAW_ARGS, 1, "c_int (c_void_p, c_ulong, c_void_p, c_ulong)"),
    (ctypes.c_int32, TYPED_ARGS, 0, "c_int (c_void_p, c_ulong, c_void_p, c_ulong, c_void_p)"),
    (ctypes.c_double, None, 0, "c_double (...)"),
])
def test_ctypes_signature_mismatch_names_both_signatures(cdll, reg, restype, argtypes,
                                                        api_version, declared):
    fn = cdll["user_not_a_kernel"]
    fn.restype, fn.argtypes = restype, argtypes
    with pytest.raises(TypeError) as info:
        reg.register("bad", fn, api_version=api_version)
    message = str(info.value)
    assert declared in message and SIGNATURES[api_version] in message and "'bad'" in message
    assert "bad" not in reg


def test_null_ctypes_function_pointer_is_refused(reg):
    with pytest.raises(fjffi.NullPointerError) as info:
        reg.register("null", RawProto())
    assert info.value.target_name == "null"
    assert "null" not in reg


@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_duplicate_name_keeps_the_first_registration(cdll, reg):
    reg.register("k", raw_fn(cdll, "user_add_f64"))
    with pytest.raises(fjffi.DuplicateTargetError) as info:
        reg.register("k", raw_fn(cdll, "user_fail_raw"))
    assert info.value.name == "k"
    assert fjffi.call("k", (1.0, 1.0), (F64,), registry=reg)[0] == 2.0


@pytest.mark.thread_unsafe(reason="gc.collect() is a no-op while another thread collects")
def test_ctypes_library_stays_loaded_while_registered(lib_path, reg):
    def register_and_forget():
        lib = ctypes.CDLL(str(lib_path))
        reg.register("add", raw_fn(lib, "user_add_f64"))
        return weakref.ref(lib)

    lib_ref = register_and_forget()
    gc.collect()
    assert lib_ref() is not None, "the registry must hold the CDLL its function came from"
    assert fjffi.call("add", (2.0, 3.0), (F64,), registry=reg)[0] == 5.0
    assert reg.get("add").owner._objects["0"] is lib_ref()


@pytest.mark.thread_unsafe(reason="gc.collect() is a no-op while another thread collects")
def test_a_dropped_registry_lets_go_of_the_library(lib_path):
    def register_in_a_temporary_registry():
        lib = ctypes.CDLL(str(lib_path))
        fn = raw_fn(lib, "user_add_f64")
        fjffi.Registry().register("add", fn)
        return weakref.ref(lib), weakref.ref(fn)

    lib_ref, fn_ref = register_in_a_temporary_registry()
    gc.collect()
    assert fn_ref() is None  # what the registry held, and the only holder of lib
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        # On free-threaded 3.13, once other threads have run, the closure of
        # the class ctypes.CDLL.__init__ makes for its functions can outlive
        # a collection and keep the CDLL: a CPython matter, not a reference
        # of fjffi's (the function above is gone).
        assert lib_ref() is None


class NumbaLike:
    """Stands for anything that exposes a ctypes function pointer as
    ``.ctypes``, as a numba cfunc does."""

    def __init__(self, fn):
        self.ctypes = fn


@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_object_exposing_ctypes_is_registered_and_kept(cdll, reg):
    source = NumbaLike(raw_fn(cdll, "user_add_f64"))
    record = reg.register("via_attr", source)
    assert record.owner is source and record.kind == "foreign"
    assert fjffi.call("via_attr", (1.5, 1.5), (F64,), registry=reg)[0] == 3.0


def test_object_exposing_a_mismatched_ctypes_signature_is_refused(cdll, reg):
    fn = cdll["user_not_a_kernel"]
    fn.restype, fn.argtypes = ctypes.c_double, (ctypes.c_double,)
    with pytest.raises(TypeError, match="c_double"):
        reg.register("bad", NumbaLike(fn))


# --- refusals of what is not a function pointer ------------------------------

@pytest.mark.parametrize("address", [0x7F00DEADBEEF, np.int64(4096), True])
def test_bare_integer_address_is_refused_with_how_to_wrap_it(reg, address):
    with pytest.raises(TypeError) as info:
        reg.register("bare", address)
    assert "bare integer address" in str(info.value)
    assert "ctypes.CFUNCTYPE" in str(info.value) and "PyCapsule" in str(info.value)
    assert "bare" not in reg


def test_none_is_refused(reg):
    with pytest.raises(TypeError, match="None"):
        reg.register("none", None)


def test_python_function_is_pointed_to_register_callback(reg):
    with pytest.raises(TypeError, match="register_callback"):
        reg.register("py", lambda x: x)


@pytest.mark.parametrize("source", ["user_add_f64", b"\0" * 8, 3.5, np.zeros(2)])
def test_other_objects_are_refused(reg, source):
    with pytest.raises(TypeError, match="cannot register"):
        reg.register("other", source)


def test_unknown_api_version_is_refused(cdll, reg):
    with pytest.raises(ValueError, match="api_version"):
        reg.register("v2", raw_fn(cdll, "user_add_f64"), api_version=2)


# --- PyCapsule --------------------------------------------------------------

def make_capsule(address: int, name: bytes = b"fjffi.kernel"):
    new = ctypes.pythonapi["PyCapsule_New"]  # a private copy to declare
    new.restype = ctypes.py_object
    new.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
    return new(address, name, None)


@pytest.mark.parametrize("capsule_name", [b"fjffi.kernel", None])
def test_capsule_is_registered_and_held(cdll, capsule_name):
    reg = fjffi.Registry()  # its own: pytest-run-parallel shares fixtures between threads
    capsule = make_capsule(ctypes.cast(cdll.user_add_f64, ctypes.c_void_p).value, capsule_name)
    record = reg.register("cap", capsule, gil="hold")
    assert (record.kind, record.owner) == ("foreign", capsule)
    assert fjffi.call("cap", (4.0, 0.5), (F64,), registry=reg)[0] == 4.5


def test_typed_kernel_in_a_capsule(cdll):
    reg = fjffi.Registry()  # its own: pytest-run-parallel shares fixtures between threads
    capsule = make_capsule(ctypes.cast(cdll.user_scale_typed, ctypes.c_void_p).value)
    reg.register("cap_scale", capsule, api_version=1)
    (out,) = fjffi.call("cap_scale", (np.array([1.0, 2.0]), 3.0), (np.empty(2),), registry=reg)
    assert out.tolist() == [3.0, 6.0]


# --- cffi, ABI mode ---------------------------------------------------------

CFFI_MISSING = "cffi is not installed (it does not build on free-threaded CPython 3.13)"


def open_with_cffi(lib_path):
    if cffi is None:
        pytest.skip(CFFI_MISSING)
    ffi = cffi.FFI()
    ffi.cdef(CFFI_CDEF)
    return ffi, ffi.dlopen(str(lib_path))


@pytest.fixture(scope="module")
def cffi_abi(lib_path):
    return open_with_cffi(lib_path)


@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_cffi_abi_mode_raw_and_typed_kernels_run(cffi_abi, reg):
    _, lib = cffi_abi
    raw = reg.register("add", lib.user_add_f64, keep_alive=lib)
    typed = reg.register("scale", lib.user_scale_typed, api_version=1, gil="release")
    assert raw.kind == typed.kind == "foreign" and raw.keep_alive is lib
    assert fjffi.call("add", (3.0, 4.0), (F64,), registry=reg)[0] == 7.0
    (out,) = fjffi.call("scale", (np.array([[1.0], [-2.0]]), -1.0), (np.empty((2, 1)),),
                        registry=reg)
    assert out.tolist() == [[-1.0], [2.0]]


@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_cffi_cast_function_pointer_runs(cffi_abi, reg):
    ffi, lib = cffi_abi
    pointer = ffi.cast("int32_t(*)(void *, size_t, void *, size_t)", lib.user_negate3_f64)
    reg.register("neg", pointer)
    (out,) = fjffi.call("neg", (np.array([1.0, 2.0, 3.0]),), (np.empty(3),), registry=reg)
    assert out.tolist() == [-1.0, -2.0, -3.0]


@pytest.mark.parametrize("symbol, api_version", [
    ("user_not_a_kernel", 0), ("user_add_f64", 1), ("user_scale_typed", 0)])
def test_cffi_signature_mismatch_names_both_signatures(cffi_abi, reg, symbol, api_version):
    ffi, lib = cffi_abi
    fn = getattr(lib, symbol)
    with pytest.raises(TypeError) as info:
        reg.register("bad", fn, api_version=api_version)
    message = str(info.value)
    assert ffi.typeof(fn).cname in message and SIGNATURES[api_version] in message


@pytest.mark.parametrize("ctype", [
    "int64_t(*)(void *, size_t, void *, size_t)",
    "int32_t(*)(void *, int32_t, void *, size_t)",
    "int32_t(*)(void *, size_t, void *, size_t, ...)",
    "int32_t(*)(void *, size_t, double, size_t)",
])
def test_cffi_cast_to_a_wrong_signature_is_refused(cffi_abi, reg, ctype):
    ffi, lib = cffi_abi
    with pytest.raises(TypeError, match="does not match api_version=0"):
        reg.register("bad", ffi.cast(ctype, lib.user_add_f64))


def test_cffi_data_pointer_is_refused(cffi_abi, reg):
    ffi, _ = cffi_abi
    with pytest.raises(TypeError, match="not a function pointer"):
        reg.register("data", ffi.new("int32_t *"))


def test_null_cffi_function_pointer_is_refused(cffi_abi, reg):
    ffi, _ = cffi_abi
    with pytest.raises(fjffi.NullPointerError):
        reg.register("null", ffi.cast("int32_t(*)(void *, size_t, void *, size_t)", 0))


@pytest.mark.thread_unsafe(reason="gc.collect() is a no-op while another thread collects")
def test_cffi_library_stays_loaded_while_registered(lib_path, reg, tmp_path):
    # A cffi cdata does not hold its library: cffi closes it when the lib
    # and its ffi are collected.  keep_alive=lib makes the registry hold it.
    private = shutil.copy(lib_path, tmp_path / "libkeepalive.so")

    def register_and_forget():
        _, lib = open_with_cffi(private)
        reg.register("add", lib.user_add_f64, keep_alive=lib)
        return weakref.ref(lib)

    lib_ref = register_and_forget()
    gc.collect()
    assert lib_ref() is not None
    assert str(private) in pathlib.Path("/proc/self/maps").read_text()
    assert fjffi.call("add", (2.0, 3.0), (F64,), registry=reg)[0] == 5.0


# --- cffi, API mode ---------------------------------------------------------

@pytest.fixture(scope="module")
def cffi_api(tmp_path_factory):
    """An out-of-line cffi module compiled from the same C source."""
    if cffi is None:
        pytest.skip(CFFI_MISSING)
    build = tmp_path_factory.mktemp("cffi_api")
    ffi = cffi.FFI()
    ffi.cdef(CFFI_CDEF)
    # The preamble declares what the module calls; the code is in sources.
    ffi.set_source("_fjffi_user_api", '#include "fjffi.h"\n' + CFFI_CDEF, sources=[str(KERNELS_C)],
                   include_dirs=[fjffi.get_include()],
                   extra_compile_args=["-std=gnu11", "-Werror=implicit-function-declaration"])
    ffi.compile(tmpdir=str(build))
    sys.path.insert(0, str(build))
    try:
        import _fjffi_user_api
    finally:
        sys.path.remove(str(build))
    return _fjffi_user_api


@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_cffi_api_mode_addressof_runs(cffi_api, reg):
    ffi, lib = cffi_api.ffi, cffi_api.lib
    reg.register("add", ffi.addressof(lib, "user_add_f64"))
    reg.register("scale", ffi.addressof(lib, "user_scale_typed"), api_version=1)
    assert fjffi.call("add", (3.0, 4.0), (F64,), registry=reg)[0] == 7.0
    assert fjffi.call("scale", (2.0, 4.0), (F64,), registry=reg)[0] == 8.0


@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_cffi_api_mode_lib_function_is_resolved(cffi_api, reg):
    lib = cffi_api.lib
    record = reg.register("add", lib.user_add_f64)
    assert record.owner.__self__ is lib
    assert fjffi.call("add", (1.0, 4.0), (F64,), registry=reg)[0] == 5.0
    with pytest.raises(TypeError, match=r"double\(\*\)\(double\)"):
        reg.register("bad", lib.user_not_a_kernel)


def test_cffi_api_mode_lib_function_without_its_ffi_is_refused(cffi_api, reg, monkeypatch):
    # A module whose ffi is out of reach: the user is told what to pass.
    monkeypatch.delattr(cffi_api, "ffi")
    with pytest.raises(TypeError, match=r"ffi\.addressof\(lib, 'user_add_f64'\)"):
        reg.register("add", cffi_api.lib.user_add_f64)


# --- thread_safe ------------------------------------------------------------

def hammer(reg, name, slot, wait_us, threads=8, calls=4):
    """Call name from several threads at once; returns (peaks, failures)."""
    start = threading.Barrier(threads)
    peaks, failures, errors = [], [], []

    def worker():
        start.wait()
        for _ in range(calls):
            try:
                (peak,) = fjffi.call(name, (slot, wait_us), (I64,), registry=reg)
                peaks.append(int(peak))
            except fjffi.CallFailedError as exc:
                failures.append(exc.code)
            except Exception as exc:  # noqa: BLE001 -- a thread's error, asserted on below
                errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    assert len(peaks) + len(failures) == threads * calls
    return peaks, failures


@pytest.mark.thread_unsafe(reason="the kernel's state is process-global")
def test_thread_unsafe_target_never_runs_twice_at_once(cdll, reg):
    # user_exclusive fails whenever another call is inside it at the same
    # time; it waits 1 ms for one to arrive.
    reg.register("serial", raw_fn(cdll, "user_exclusive"), gil="release", thread_safe=False)
    reg.register("parallel", raw_fn(cdll, "user_exclusive"), gil="release", thread_safe=True)
    assert reg.get("serial").thread_safe is False

    peaks, failures = hammer(reg, "serial", slot=0, wait_us=1000)
    assert failures == [] and set(peaks) == {1}

    # The same kernel without the lock does meet itself: the check above
    # can see an overlap when there is one.
    peaks, failures = hammer(reg, "parallel", slot=1, wait_us=200_000)
    assert failures and set(failures) == {1}


@pytest.mark.thread_unsafe(reason="the kernel's state is process-global")
def test_each_thread_unsafe_target_has_its_own_lock(cdll, reg):
    # Two thread-unsafe targets over one probe slot: a call to b must run
    # while a call to a is inside.  user_probe waits up to 5 s for company
    # and reports how many calls it saw inside at once.
    reg.register("a", raw_fn(cdll, "user_probe"), gil="release", thread_safe=False)
    reg.register("b", raw_fn(cdll, "user_probe"), gil="release", thread_safe=False)
    peak_a = []
    t = threading.Thread(
        target=lambda: peak_a.append(int(fjffi.call("a", (2, 5_000_000), (I64,), registry=reg)[0])))
    t.start()
    (peak_b,) = fjffi.call("b", (2, 5_000_000), (I64,), registry=reg)
    t.join()
    assert peak_a == [2] and int(peak_b) == 2


# --- introspection ----------------------------------------------------------

def test_builtin_record():
    record = fjffi.default_registry.get("add")
    assert (record.name, record.kind, record.api_version) == ("add", "builtin", 1)
    assert (record.gil, record.thread_safe, record.flavor) == ("auto", True, None)
    assert record.doc


@pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")
def test_foreign_record(cdll, reg):
    fn = raw_fn(cdll, "user_add_f64")
    reg.register("f", fn, gil="hold", thread_safe=False)
    record = reg.get("f")
    assert (record.name, record.kind, record.api_version, record.gil) == ("f", "foreign", 0, "hold")
    assert (record.thread_safe, record.flavor, record.owner) == (False, None, fn)
    assert reg.names() == ["f"] and "f" in reg and len(reg) == 1
