"""Unregister and replace, with calls in flight; writes_all_outputs; the
outputs of fjffi.call.  The kernels are a real library built by gcc, loaded
with dlopen and closed with dlclose once fjffi releases it."""

import _ctypes
import ctypes
import gc
import os
import pathlib
import subprocess
import sysconfig
import threading
import time
import weakref

import numpy as np
import pytest

import fjffi
from fjffi import Call, DuplicateTargetError, Registry, TargetNotFoundError

KERNELS = pathlib.Path(__file__).resolve().parent / "kernels" / "versioned.c"
# Without a GIL a registry keeps what it removed until it goes itself: no
# GIL orders a call's taking its reference before the removal's release.
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
TYPED = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                         ctypes.c_size_t, ctypes.c_void_p)


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    """{version: path} of the kernel library built with VERSION 1 and 2."""
    folder = tmp_path_factory.mktemp("versioned")
    paths = {}
    for version in (1, 2):
        path = folder / f"libversioned{version}.so"
        subprocess.run(["gcc", "-O1", "-shared", "-fPIC", f"-DVERSION={version}",
                        f"-I{fjffi.get_include()}", str(KERNELS), "-o", str(path)], check=True)
        paths[version] = path
    return paths


class Library:
    """A library opened with dlopen and closed with dlclose when the last
    reference goes: what a registry holds as keep_alive."""

    def __init__(self, path):
        self.path = str(path)
        self.handle = _ctypes.dlopen(self.path, os.RTLD_LOCAL | os.RTLD_NOW)

    def function(self, symbol):
        # A CFUNCTYPE made from the bare address holds no reference to a CDLL.
        return TYPED(_ctypes.dlsym(self.handle, symbol))

    def __del__(self):
        _ctypes.dlclose(self.handle)


def loaded(path):
    with open("/proc/self/maps") as maps:
        return str(path) in maps.read()


def register(reg, name, library, symbol="versioned", **options):
    lib = Library(library)
    return reg.register(name, lib.function(symbol), api_version=1, keep_alive=lib,
                        gil="release", **options)


def version_of(call, sleep_us=0):
    out = np.zeros((), np.int64)
    call.invoke((np.int64(sleep_us),), (out,))
    return int(out)


@pytest.mark.thread_unsafe(reason="checks the process's loaded libraries")
def test_unregister_releases_the_library(libraries):
    reg = Registry()
    register(reg, "k", libraries[1])
    call = Call("k", reg)
    assert version_of(call) == 1 and loaded(libraries[1])
    reg.unregister("k")
    gc.collect()
    assert loaded(libraries[1]) is FREE_THREADED, "unregister released nothing"
    assert "k" not in reg and reg.names() == []
    with pytest.raises(TargetNotFoundError) as info:
        call.invoke((np.int64(0),), (np.zeros((), np.int64),))
    assert info.value.available == []
    with pytest.raises(TargetNotFoundError):
        reg.unregister("k")
    register(reg, "k", libraries[2])
    assert version_of(call) == 2  # the same Call finds the new target
    del reg, call
    gc.collect()
    assert not loaded(libraries[1]) and not loaded(libraries[2])


def test_replace_needs_replace_true(libraries):
    reg = Registry()
    register(reg, "k", libraries[1])
    call = Call("k", reg)
    assert version_of(call) == 1
    with pytest.raises(DuplicateTargetError):
        register(reg, "k", libraries[2])
    assert version_of(call) == 1 and reg.names() == ["k"]
    register(reg, "k", libraries[2], replace=True)
    assert version_of(call) == 2 and reg.names() == ["k"]
    assert reg.get("k").keep_alive.path == str(libraries[2])


@pytest.mark.thread_unsafe(reason="checks the process's loaded libraries")
def test_a_call_in_flight_finishes_on_the_old_target(libraries):
    reg = Registry()
    register(reg, "k", libraries[1])
    old = weakref.ref(reg.get("k").keep_alive)
    call = Call("k", reg)
    inside = np.zeros((), np.int64)  # the kernel writes its version first, then waits
    gate = np.array(-1, np.int64)  # until this is 0

    def work():
        call.invoke((gate,), (inside,))

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 30
    while int(inside) != 1:  # until the worker is inside the kernel, without the GIL
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.001)
    register(reg, "k", libraries[2], replace=True)
    gc.collect()
    assert worker.is_alive()
    assert old() is not None and loaded(libraries[1]), "released while a call was inside it"
    assert version_of(call) == 2
    gate[()] = 0
    worker.join()
    assert int(inside) == 1
    gc.collect()
    if not FREE_THREADED:
        assert old() is None, f"still held after the call by {gc.get_referrers(old())}"
        assert not loaded(libraries[1])
    # Dropped by rebinding, not del: the worker's function still names call.
    reg = call = None
    gc.collect()
    assert not loaded(libraries[1])


def test_callbacks_replace_and_unregister_too():
    reg = Registry()
    reg.register_callback("cb", lambda x: x + 1)
    call = Call("cb", reg)
    out = np.zeros(2)
    call.invoke((np.ones(2),), (out,))
    assert out.tolist() == [2, 2]
    reg.register_callback("cb", lambda x: x * 5, replace=True)
    call.invoke((np.ones(2),), (out,))
    assert out.tolist() == [5, 5]
    reg.unregister("cb")
    with pytest.raises(TargetNotFoundError):
        call.invoke((np.ones(2),), (out,))


@pytest.mark.parametrize("kind", ["names", "replace"])
def test_bad_arguments_change_nothing(libraries, kind):
    reg = Registry()
    register(reg, "k", libraries[1])
    with pytest.raises(TypeError):
        if kind == "names":
            reg.unregister(3)
        else:
            register(reg, "k", libraries[2], replace="yes")
    assert reg.names() == ["k"] and version_of(Call("k", reg)) == 1


@pytest.mark.thread_unsafe(reason="starts its own threads against one registry")
def test_calls_race_replace_and_unregister(libraries):
    """Threads call while another replaces and unregisters in a loop: every
    call runs version 1 or 2 or finds the name gone; nothing else."""
    reg = Registry()
    register(reg, "k", libraries[1])
    stop = threading.Event()
    seen, errors = set(), []

    def caller():
        call = Call("k", reg)
        while not stop.is_set():
            try:
                seen.add(version_of(call))
            except TargetNotFoundError:
                seen.add("gone")
            except Exception as exc:  # noqa: BLE001 -- reported below
                errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    # At least 300 swaps, and on until the callers have run both versions: on
    # a loaded machine the callers may not be scheduled during the first 300.
    deadline = time.monotonic() + 60
    try:
        i = 0
        while i < 300 or (not {1, 2} <= seen and time.monotonic() < deadline):
            if i % 3 == 2:
                reg.unregister("k")
                register(reg, "k", libraries[1 + i % 2])
            else:
                register(reg, "k", libraries[1 + i % 2], replace=True)
            i += 1
            if i >= 300:
                time.sleep(0.001)  # let the callers run between swaps
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[:3]
    assert seen <= {1, 2, "gone"} and {1, 2} <= seen


def test_writes_all_outputs_skips_only_the_scrub_before(libraries):
    reg = Registry()
    record = register(reg, "first", libraries[1], symbol="first_byte", writes_all_outputs=True)
    assert record.writes_all_outputs is True
    out = np.full(4, 0x77, np.uint8)
    Call("first", reg).invoke((), (out,))
    # Declared, not true: the bytes the kernel did not write keep what they held.
    assert out.tolist() == [0x11, 0x77, 0x77, 0x77]
    with pytest.raises(fjffi.CallFailedError):
        Call("first", reg).invoke((np.int64(0),), (out,))
    assert not out.any()  # after a failure the outputs are zeroed all the same
    register(reg, "scrubbed", libraries[1], symbol="first_byte")
    out[:] = 0x77
    Call("scrubbed", reg).invoke((), (out,))
    assert out.tolist() == [0x11, 0, 0, 0]


def test_builtin_kernels_declare_what_they_write():
    reg = Registry()
    reg.register_builtins()
    declared = {name: reg.get(name).writes_all_outputs for name in reg.names()}
    assert declared == {"add": True, "copy": False, "double_f64": True, "fail": False,
                        "multiply": True, "negate": True, "noop": False, "sum": True}


def test_fjffi_call_outputs_start_zeroed():
    """fjffi.call allocates its outputs zeroed, so a kernel that writes
    nothing leaves zeros, not whatever the allocator held."""
    for _ in range(50):
        junk = np.full(1000, 7.0)  # freed memory the allocator may hand out next
        del junk
        (out,) = fjffi.call("noop", (), (np.empty(1000),))
        assert not out.any()


def test_no_resize_of_a_buffer_under_a_call_without_the_gil(libraries):
    """numpy's resize(refcheck=True) moves an array's memory only when it
    counts no reference but its own: the call's tuple of outputs is one."""
    reg = Registry()
    register(reg, "k", libraries[1])
    box = {"out": np.zeros((), np.int64)}  # the array's one reference outside the call
    gate = np.array(-1, np.int64)
    worker = threading.Thread(target=lambda: Call("k", reg).invoke((gate,), (box["out"],)))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while int(box["out"]) != 1:
            assert time.monotonic() < deadline, "the call never started"
            time.sleep(0.001)
        with pytest.raises(ValueError):
            box["out"].resize(1000)  # refcheck=True: refused while the call holds it
    finally:
        gate[()] = 0
        worker.join()
    box["out"].resize(1000)  # once the call is over, it may


def _private_name(prefix):
    # Unique per thread: pytest-run-parallel runs each test on several
    # threads against the one default registry.
    return f"{prefix}_{threading.get_ident()}"


def test_fjffi_call_by_name_sees_replace_and_unregister():
    """fjffi.call keeps a Call per name of the default registry; each call
    still runs what the name holds at that moment."""
    reg, name = fjffi.default_registry, _private_name("call_cache")
    ones = (np.ones(2),)
    reg.register_callback(name, lambda x: x * 2)
    try:
        assert fjffi.call(name, ones, (np.zeros(2),))[0].tolist() == [2, 2]
        reg.register_callback(name, lambda x: x * 5, replace=True)
        assert fjffi.call(name, ones, (np.zeros(2),))[0].tolist() == [5, 5]
        reg.unregister(name)
        with pytest.raises(TargetNotFoundError):
            fjffi.call(name, ones, (np.zeros(2),))
        reg.register_callback(name, lambda x: x * 7)
        assert fjffi.call(name, ones, (np.zeros(2),))[0].tolist() == [7, 7]
    finally:
        if name in reg.names():
            reg.unregister(name)


def test_fjffi_call_by_name_takes_no_str_subclass():
    """A str subclass could claim to equal every name and find another
    name's Call: fjffi.call refuses it (names are exactly str)."""

    class Liar(str):
        def __eq__(self, other):
            return True

        def __hash__(self):
            return hash("negate")

    (out,) = fjffi.call("negate", (np.ones(2),), (np.zeros(2),))  # "negate" is known now
    assert out.tolist() == [-1, -1]
    with pytest.raises(TypeError, match="expected str, got Liar"):
        fjffi.call(Liar("no_such_target"), (np.ones(2),), (np.zeros(2),))


def test_fjffi_call_by_name_after_more_names_than_it_keeps():
    """Calling more distinct names than fjffi.call keeps Calls for (1024)
    drops the kept ones and goes on resolving every name right."""
    reg, prefix = fjffi.default_registry, _private_name("call_many")
    names = [f"{prefix}_{k}" for k in range(1100)]
    for k, name in enumerate(names):
        reg.register_callback(name, lambda x, k=k: x + k)
    try:
        for rounds in range(2):
            for k in (0, 1, 1023, 1024, 1099):
                (out,) = fjffi.call(names[k], (np.zeros(1),), (np.zeros(1),))
                assert out.tolist() == [k], (rounds, k)
            for name in names:
                fjffi.call(name, (np.zeros(1),), (np.zeros(1),))
    finally:
        for name in names:
            reg.unregister(name)
