"""The registry: names, registration rules, lookups, the default registry.

Ported from fj-ffi's registry.rs tests, plus the Python-side rules (name
validation, `in`, Target records) and lookups among 100,000 targets.
"""

import ctypes
import subprocess
import sys

import numpy as np
import pytest

import fjffi
from fjffi import _testing

KERNELS = _testing.kernels()
BUILTINS = ["add", "copy", "double_f64", "fail", "multiply", "negate", "noop", "sum"]


def capsule(name):
    return KERNELS[name][0]


def register_test_kernel(reg, name, kernel, **kw):
    cap, api_version = KERNELS[kernel]
    return reg.register(name, cap, api_version=api_version, **kw)


def null_function_pointer():
    # A ctypes function pointer of the raw ABI's signature with no address:
    # the only way to hand fjffi a null pointer, since a PyCapsule cannot
    # hold one.
    p, n = ctypes.c_void_p, ctypes.c_size_t
    return ctypes.CFUNCTYPE(ctypes.c_int32, p, n, p, n)()


def test_registry_new_is_empty():
    reg = fjffi.Registry()
    assert len(reg) == 0
    assert reg.names() == []
    assert list(reg) == []


def test_registry_register_and_get():
    reg = fjffi.Registry()
    register_test_kernel(reg, "add_vectors", "add_f64")
    assert reg.get("add_vectors").name == "add_vectors"
    assert len(reg) == 1


def test_register_returns_the_record_get_returns():
    reg = fjffi.Registry()
    cap = capsule("describe")
    record = reg.register("d", cap, api_version=1, gil="release", thread_safe=False)
    got = reg.get("d")
    assert got is record
    assert isinstance(got, fjffi.Target)
    assert (got.name, got.kind, got.api_version, got.gil, got.thread_safe) == (
        "d", "foreign", 1, "release", False)
    assert got.flavor is None
    # The registry holds what owns the code for as long as the name exists.
    assert got.owner is cap


def test_register_defaults_are_raw_abi_auto_gil_thread_safe():
    reg = fjffi.Registry()
    got = reg.register("n", capsule("raw_noop"))
    assert (got.api_version, got.gil, got.thread_safe) == (0, "auto", True)


def test_registry_duplicate_rejected_and_first_stays():
    reg = fjffi.Registry()
    register_test_kernel(reg, "my_fn", "inc_i64")
    with pytest.raises(fjffi.DuplicateTargetError) as info:
        register_test_kernel(reg, "my_fn", "fail_7")
    assert info.value.name == "my_fn"
    assert len(reg) == 1
    assert reg.get("my_fn").api_version == 0
    # Calls still reach the first kernel, not the failing one.
    out = np.zeros((), np.int64)
    fjffi.Call("my_fn", reg).invoke([np.int64(5)], [out])
    assert out == 6


def test_duplicate_with_different_abi_keeps_first_record():
    reg = fjffi.Registry()
    first = register_test_kernel(reg, "x", "raw_noop")
    with pytest.raises(fjffi.DuplicateTargetError):
        register_test_kernel(reg, "x", "describe")
    assert reg.get("x") is first


def test_registry_target_not_found():
    reg = fjffi.Registry()
    register_test_kernel(reg, "exists", "raw_noop")
    with pytest.raises(fjffi.TargetNotFoundError) as info:
        reg.get("nonexistent")
    assert info.value.name == "nonexistent"
    assert info.value.available == ["exists"]


def test_registry_target_not_found_reports_sorted_available_names():
    reg = fjffi.Registry()
    for name in ["zeta", "alpha", "middle"]:
        register_test_kernel(reg, name, "raw_noop")
    with pytest.raises(fjffi.TargetNotFoundError) as info:
        reg.get("missing")
    assert info.value.available == ["alpha", "middle", "zeta"]


def test_registry_registered_names():
    reg = fjffi.Registry()
    register_test_kernel(reg, "beta", "raw_noop")
    register_test_kernel(reg, "alpha", "raw_noop")
    assert reg.names() == ["alpha", "beta"]
    assert list(reg) == ["alpha", "beta"]


def test_registry_multiple_registrations():
    reg = fjffi.Registry()
    for i in range(10):
        register_test_kernel(reg, f"fn_{i}", "raw_noop")
    assert len(reg) == 10
    assert reg.names() == sorted(f"fn_{i}" for i in range(10))


def test_contains():
    reg = fjffi.Registry()
    register_test_kernel(reg, "here", "raw_noop")
    assert "here" in reg
    assert "there" not in reg
    # `in` answers questions, it does not validate: odd keys are simply absent.
    assert "" not in reg
    assert 3 not in reg
    assert b"here" not in reg
    assert "he\0re" not in reg


@pytest.mark.parametrize("bad", ["", "a\0b", "\0"])
def test_invalid_name_value_error(bad):
    reg = fjffi.Registry()
    with pytest.raises(ValueError) as info:
        reg.register(bad, capsule("raw_noop"))
    assert "empty" in str(info.value) or "NUL" in str(info.value)
    with pytest.raises(ValueError):
        reg.get(bad)
    with pytest.raises(ValueError):
        fjffi.Call(bad, reg)
    assert len(reg) == 0


@pytest.mark.parametrize("bad", [None, 3, b"name", ("n",)])
def test_non_str_name_type_error(bad):
    reg = fjffi.Registry()
    with pytest.raises(TypeError) as info:
        reg.register(bad, capsule("raw_noop"))
    assert "str" in str(info.value)
    with pytest.raises(TypeError):
        reg.get(bad)
    with pytest.raises(TypeError):
        fjffi.Call(bad, reg)
    assert len(reg) == 0


def test_name_is_copied_and_unicode_names_work():
    reg = fjffi.Registry()
    # Built at run time, so `del` frees it: the registry must hold a copy.
    name = "".join(["ker", "nél_", "∑"])  # noqa: FLY002
    register_test_kernel(reg, name, "inc_i64")
    del name
    assert reg.names() == ["kernél_∑"]
    out = np.zeros((), np.int64)
    fjffi.Call("kernél_∑", reg).invoke([np.int64(1)], [out])
    assert out == 2


def test_null_pointer_rejected_and_registry_unchanged():
    reg = fjffi.Registry()
    register_test_kernel(reg, "keep", "raw_noop")
    with pytest.raises(fjffi.NullPointerError) as info:
        reg.register("null_fn", null_function_pointer())
    assert info.value.target_name == "null_fn"
    assert "null_fn" not in reg
    assert reg.names() == ["keep"]
    # The failed name is still free to register properly.
    register_test_kernel(reg, "null_fn", "raw_noop")
    assert reg.names() == ["keep", "null_fn"]


@pytest.mark.parametrize("kw, word", [
    ({"api_version": 2}, "api_version"),
    ({"api_version": -1}, "api_version"),
    ({"gil": "sometimes"}, "gil"),
])
def test_bad_policy_value_error_and_registry_unchanged(kw, word):
    reg = fjffi.Registry()
    with pytest.raises(ValueError, match=word):
        reg.register("k", capsule("raw_noop"), **kw)
    assert len(reg) == 0


@pytest.mark.parametrize("source", [0x1234, True, "noop", 1.5])
def test_unsupported_target_source_type_error(source):
    reg = fjffi.Registry()
    with pytest.raises(TypeError, match="'k'"):
        reg.register("k", source)
    assert len(reg) == 0


def test_independent_registries():
    a, b = fjffi.Registry(), fjffi.Registry()
    register_test_kernel(a, "only_in_a", "raw_noop")
    assert "only_in_a" in a
    assert "only_in_a" not in b
    assert "only_in_a" not in fjffi.default_registry
    # The same name may live in several registries, bound to different kernels.
    register_test_kernel(b, "only_in_a", "fail_7")
    fjffi.Call("only_in_a", a).invoke([], [])
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("only_in_a", b).invoke([], [])
    assert info.value.code == 7
    # A new registry starts empty, without the built-ins.
    assert "noop" not in fjffi.Registry()


def test_default_registry_has_the_builtins():
    names = fjffi.default_registry.names()
    assert set(BUILTINS) <= set(names)
    assert fjffi.targets() == names
    for name in BUILTINS:
        record = fjffi.default_registry.get(name)
        assert record.kind == "builtin"
        assert record.name == name
        assert record.doc
    assert fjffi.default_registry.get("negate").api_version == 1
    assert fjffi.default_registry.get("double_f64").api_version == 0


def test_default_registry_has_no_test_kernels():
    assert not set(KERNELS) & set(fjffi.targets())


def test_register_builtins_into_a_new_registry():
    reg = fjffi.Registry()
    reg.register_builtins()
    assert reg.names() == BUILTINS
    with pytest.raises(fjffi.DuplicateTargetError):
        reg.register_builtins()


def test_module_level_register_and_targets():
    # In a child process: the default registry is process-wide and keeps
    # every name for good, so this must not leak into the other tests.
    code = (
        "import fjffi, numpy as np\n"
        "from fjffi import _testing\n"
        "cap, v = _testing.kernels()['inc_i64']\n"
        "rec = fjffi.register('my_inc', cap, api_version=v)\n"
        "assert rec is fjffi.default_registry.get('my_inc'), rec\n"
        "assert 'my_inc' in fjffi.targets() and fjffi.targets() == sorted(fjffi.targets())\n"
        "out = np.zeros((), np.int64)\n"
        "fjffi.Call('my_inc').invoke([np.int64(41)], [out])\n"
        "print(int(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False,
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "42"


def test_call_resolves_the_target_on_every_invoke():
    reg = fjffi.Registry()
    call = fjffi.Call("late", reg)
    with pytest.raises(fjffi.TargetNotFoundError):
        call.invoke([], [])
    register_test_kernel(reg, "late", "inc_i64")
    out = np.zeros((), np.int64)
    call.invoke([np.int64(1)], [out])
    assert out == 2


def test_lookup_among_100k_targets():
    reg = fjffi.Registry()
    cap = capsule("inc_i64")
    n = 100_000
    for i in range(n):
        reg.register(f"t{i}", cap)
    assert len(reg) == n
    for i in (0, 1, 4242, 65_536, n - 1):
        assert reg.get(f"t{i}").name == f"t{i}"
        assert f"t{i}" in reg
    assert f"t{n}" not in reg
    with pytest.raises(fjffi.TargetNotFoundError) as info:
        reg.get("absent")
    assert len(info.value.available) == n
    assert "100000 in all" in str(info.value)
    out = np.zeros((), np.int64)
    fjffi.Call(f"t{n - 1}", reg).invoke([np.int64(-8)], [out])
    assert out == -7
