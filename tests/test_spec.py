"""KernelSpec: a registration described, pickled and replayed elsewhere.

The kernels are real C (tests/kernels/user_kernels.c) compiled here into a
shared library; replay is checked in a fresh ``python -c`` process.
"""

import ctypes
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
from test_targets import CFFI_CDEF, KERNELS_C, RAW_ARGS, TYPED_ARGS, compile_shared

import fjffi
from fjffi import KernelSpec

pytestmark = pytest.mark.thread_unsafe(reason="subprocesses and shared module state")

F64 = np.empty((), np.float64)


@pytest.fixture(scope="module")
def lib_path(tmp_path_factory):
    return compile_shared(KERNELS_C, tmp_path_factory.mktemp("spec") / "libspec_kernels.so")


@pytest.fixture(scope="module")
def cdll(lib_path):
    return ctypes.CDLL(str(lib_path))


@pytest.fixture
def reg():
    return fjffi.Registry()


def ctypes_fn(cdll, symbol, argtypes=RAW_ARGS):
    fn = cdll[symbol]
    fn.restype, fn.argtypes = ctypes.c_int32, argtypes
    return fn


def replay_in_fresh_process(spec, code, tmp_path):
    """Run code in a new interpreter with `spec` unpickled; its stdout."""
    prelude = ("import pickle, sys; import numpy as np; import fjffi; "
               "spec = pickle.loads(bytes.fromhex(sys.argv[1])); ")
    result = subprocess.run(
        [sys.executable, "-c", prelude + code, pickle.dumps(spec).hex()],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# --- specs of registered targets --------------------------------------------

def test_spec_of_a_ctypes_function_names_its_library_and_symbol(cdll, lib_path, reg):
    reg.register("uadd", ctypes_fn(cdll, "user_add_f64"), gil="release", thread_safe=False)
    spec = fjffi.spec("uadd", reg)
    assert spec == KernelSpec("library", "uadd", path=str(lib_path.resolve()),
                              symbol="user_add_f64", api_version=0, gil="release",
                              thread_safe=False)
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_spec_of_a_cffi_dlopen_function(lib_path, reg):
    cffi = pytest.importorskip(
        "cffi", reason="cffi is not installed (it does not build on free-threaded CPython 3.13)")

    ffi = cffi.FFI()
    ffi.cdef(CFFI_CDEF)
    lib = ffi.dlopen(str(lib_path))
    reg.register("uscale", lib.user_scale_typed, api_version=1, keep_alive=lib)
    spec = fjffi.spec("uscale", reg)
    assert (spec.kind, spec.path, spec.symbol, spec.api_version) == (
        "library", str(lib_path.resolve()), "user_scale_typed", 1)


def test_spec_replays_in_a_fresh_process_and_calls(cdll, reg, tmp_path):
    reg.register("uadd", ctypes_fn(cdll, "user_add_f64"))
    reg.register("uscale", ctypes_fn(cdll, "user_scale_typed", TYPED_ARGS), api_version=1)
    add, scale = fjffi.spec("uadd", reg), fjffi.spec("uscale", reg)
    out = replay_in_fresh_process(
        add, "t = spec.register(); assert spec.register() is t; "
        "print(t.kind, float(fjffi.call('uadd', (3.0, 4.5), (np.empty(()),))[0]))", tmp_path)
    assert out == "foreign 7.5"
    out = replay_in_fresh_process(
        scale, "spec.register(); "
        "print(fjffi.call('uscale', (np.arange(3.0), -2.0), (np.empty(3),))[0].tolist())",
        tmp_path)
    assert out == "[-0.0, -2.0, -4.0]"


def test_callback_spec_replays_in_a_fresh_process(reg, tmp_path):
    reg.register_callback("uneg", np.negative, flavor="io")
    spec = fjffi.spec("uneg", reg)
    assert (spec.kind, spec.flavor) == ("callback", "io")
    out = replay_in_fresh_process(
        spec, "t = spec.register(); "
        "print(t.flavor, fjffi.call('uneg', (np.arange(2.0),), (np.empty(2),))[0].tolist())",
        tmp_path)
    assert out == "io [-0.0, -1.0]"


def test_builtin_spec_registers_the_builtins_in_an_empty_registry(reg):
    spec = fjffi.spec("negate")
    assert spec == KernelSpec.for_builtin("negate") and spec.kind == "builtin"
    assert spec.register(fjffi.default_registry) is fjffi.default_registry.get("negate")
    target = spec.register(reg)
    assert target.kind == "builtin" and "negate" in reg
    assert fjffi.call("negate", (np.arange(3.0),), (np.empty(3),), registry=reg)[0].tolist() == [
        -0.0, -1.0, -2.0]


def test_capsule_in_a_module_is_described_by_its_module(cdll, reg, monkeypatch):
    address = ctypes.cast(cdll.user_add_f64, ctypes.c_void_p).value
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    capsule = new_capsule(address, b"fjffi.kernel", None)
    module = types.ModuleType("spec_capsule_module")
    module.add_kernel = capsule
    monkeypatch.setitem(sys.modules, "spec_capsule_module", module)
    reg.register("uadd", capsule)
    spec = fjffi.spec("uadd", reg)
    assert (spec.kind, spec.module, spec.attribute) == ("module", "spec_capsule_module",
                                                        "add_kernel")
    other = fjffi.Registry()
    spec.register(other)
    assert fjffi.call("uadd", (1.0, 2.0), (F64,), registry=other)[0] == 3.0
    # No module holds it any more: found again through dladdr as a library symbol.
    monkeypatch.delitem(sys.modules, "spec_capsule_module")
    again = fjffi.spec("uadd", reg)
    assert (again.kind, again.symbol) == ("library", "user_add_f64")


# --- idempotence and conflicts ----------------------------------------------

def test_register_is_idempotent_where_the_name_holds_the_same_kernel(cdll, lib_path, reg):
    first = reg.register("uadd", ctypes_fn(cdll, "user_add_f64"))
    spec = KernelSpec.for_library("uadd", lib_path, "user_add_f64")
    assert spec.register(reg) is first
    assert spec.register(reg) is first
    assert len(reg) == 1


def test_register_twice_in_an_empty_registry_registers_once(lib_path, reg):
    spec = KernelSpec.for_library("uadd", lib_path, "user_add_f64")
    first = spec.register(reg)
    assert spec.register(reg) is first and reg.names() == ["uadd"]
    assert fjffi.call("uadd", (1.0, 1.0), (F64,), registry=reg)[0] == 2.0


def test_a_different_kernel_under_the_name_is_refused_loudly(cdll, lib_path, reg):
    reg.register("k", ctypes_fn(cdll, "user_add_f64"))
    spec = KernelSpec.for_library("k", lib_path, "user_negate3_f64")
    with pytest.raises(fjffi.DuplicateTargetError) as info:
        spec.register(reg)
    message = str(info.value)
    assert "'user_add_f64'" in message and "'user_negate3_f64'" in message
    assert info.value.name == "k" and "spec wants" in info.value.detail
    assert pickle.loads(pickle.dumps(info.value)).detail == info.value.detail
    assert fjffi.spec("k", reg).symbol == "user_add_f64"  # unchanged
    with pytest.raises(fjffi.DuplicateTargetError, match="built-in kernel 'negate'"):
        KernelSpec.for_library("negate", lib_path, "user_add_f64").register()
    with pytest.raises(fjffi.DuplicateTargetError, match="api_version 1"):
        KernelSpec.for_library("k", lib_path, "user_add_f64", api_version=1).register(reg)


# --- specs that cannot be made or replayed ----------------------------------

def test_a_ctypes_function_not_from_a_library_has_no_spec(reg):
    proto = ctypes.CFUNCTYPE(ctypes.c_int32, *RAW_ARGS)
    fn = proto(lambda *args: 0)
    reg.register("py", fn)
    with pytest.raises(ValueError, match="not in any loaded shared library"):
        fjffi.spec("py", reg)


def test_a_lambda_callback_has_no_spec(reg):
    reg.register_callback("lam", lambda x: -x)
    with pytest.raises(ValueError, match="does not pickle"):
        fjffi.spec("lam", reg)
    with pytest.raises(ValueError, match="module level"):
        KernelSpec.for_callback("lam", lambda x: -x)


def test_a_capsule_of_a_static_function_has_no_spec(test_registry):
    # fjffi._testing hands out capsules of static C functions, held by no module.
    assert type(test_registry.get("add_f64").owner).__name__ == "PyCapsule"
    with pytest.raises(ValueError, match="unknown origin.*not an exported symbol"):
        fjffi.spec("add_f64", test_registry)


def test_a_capsule_of_unknown_origin_has_no_spec(reg):
    proto = ctypes.CFUNCTYPE(ctypes.c_int32, *RAW_ARGS)
    fn = proto(lambda *args: 0)
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    capsule = new_capsule(ctypes.cast(fn, ctypes.c_void_p).value, b"k", None)
    reg.register("cap", capsule, keep_alive=fn)
    with pytest.raises(ValueError, match="capsule is of unknown origin"):
        fjffi.spec("cap", reg)


def test_a_missing_library_says_so_and_registers_nothing(tmp_path, reg):
    spec = KernelSpec.for_library("gone", tmp_path / "libnothere.so", "k")
    with pytest.raises(OSError, match="must exist at this path"):
        spec.register(reg)
    assert len(reg) == 0
    with pytest.raises(ValueError, match="absolute"):
        KernelSpec("library", "x", path="relative.so", symbol="k")
    with pytest.raises(ValueError, match="no built-in kernel"):
        KernelSpec.for_builtin("no_such_builtin")
