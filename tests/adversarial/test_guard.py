"""Guard mode: an underrun never corrupts the heap, an overrun names the
buffer counting inputs first, FJFFI_GUARD is read the documented way, and
guard mode changes nothing for kernels that keep to their outputs."""

import ctypes

import numpy as np
import pytest

import fjffi
from fjffi import errors as E

from .helpers import assert_clean, run_snippets

UNDERRUN = """
lib = ctypes.CDLL({lib!r})
r = fjffi.Registry()
r.register("under", typed_fn(lib, "adv_underrun_typed"), api_version=1)
outs = tuple(np.zeros({size}, np.uint8) for _ in range({n_out}))
for _ in range({rounds}):
    try:
        fjffi.Call("under", r, guard=True).invoke(({inputs}), outs)
        print("underrun not reported")
    except E.BufferOverrunError as e:
        assert e.buffer_index == {n_in}, vars(e)
    except E.FfiError:
        pass
    assert all((o == 0).all() for o in outs)
    junk = [bytearray(64) for _ in range(100)]
gc.collect()
print("ok")
"""


def underrun_snippets(lib):
    out = {}
    for size in (0, 1, 8, 4096):
        for n_out, n_in in ((1, 0), (2, 1), (12, 9)):
            inputs = "".join("np.zeros(2), " for _ in range(n_in))
            out[f"size{size}-out{n_out}-in{n_in}"] = UNDERRUN.format(
                lib=lib, size=size, n_out=n_out, n_in=n_in, inputs=inputs, rounds=50)
    return out


UNDERRUN_CASES = list(underrun_snippets("LIB"))


@pytest.fixture(scope="module")
def underrun_results(kernels_lib):
    return run_snippets(underrun_snippets(kernels_lib))


@pytest.mark.parametrize("case", UNDERRUN_CASES)
def test_underrun_under_guard_does_not_corrupt_the_heap(underrun_results, case):
    rc, out, err = underrun_results[case]
    # Reporting the underrun is welcome but not required; surviving it is.
    assert_clean((rc, out, err), "ok")


@pytest.fixture(scope="module")
def write8(kernels_lib):
    lib = ctypes.CDLL(kernels_lib)
    fn = lib["adv_write8_raw"]
    fn.restype = ctypes.c_int32
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
    return fn


@pytest.mark.parametrize("n_in", [0, 1, 3, 9])
@pytest.mark.parametrize("out_bytes", [0, 1, 4, 7])
def test_overrun_buffer_index_counts_inputs_first(write8, n_in, out_bytes):
    r = fjffi.Registry()
    r.register("w8", write8)
    ins = tuple(np.ones(2) for _ in range(n_in))
    out = np.full(out_bytes, 9, np.uint8)
    with pytest.raises(E.BufferOverrunError) as info:
        fjffi.Call("w8", r, guard=True).invoke(ins, (out,))
    assert info.value.buffer_index == n_in
    assert (out == 0).all()


@pytest.mark.parametrize("n_in", [0, 2])
def test_guard_exact_size_write_passes(write8, n_in):
    r = fjffi.Registry()
    r.register("w8", write8)
    out = np.zeros(8, np.uint8)
    fjffi.Call("w8", r, guard=True).invoke(tuple(np.ones(1) for _ in range(n_in)), (out,))
    assert (out == 0x42).all()


@pytest.mark.parametrize("guard", [False, True])
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 3)])
@pytest.mark.parametrize("dtype", ["bool", "float64", "complex128", "uint8"])
def test_guard_changes_nothing_for_good_kernels(guard, shape, dtype):
    r = fjffi.Registry()
    r.register_builtins()
    r.register_callback("ident", lambda x: x)
    x = np.ones(shape, dtype)
    out = np.zeros(shape, dtype)
    fjffi.Call("ident", r, guard=guard).invoke((x,), (out,))
    assert np.array_equal(out, x)
    fjffi.Call("noop", r, guard=guard).invoke((x,), (out,))
    assert not out.any()


GUARD_ENV = {
    "": False, "0": False, "false": False, "FALSE": False, "False": False, "no": False,
    "No": False, "off": False, "OFF": False,
    "1": True, "true": True, "TRUE": True, "yes": True, "on": True, "On": True,
}
GUARD_ENV_WARN = ["2", "maybe", "enabled", " 1", "0 ", "-1"]

ENV_SNIPPET = """
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import importlib
    c = fjffi.Call("noop")
    on = c.guard
print(on, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)])
"""


ENV_CASES = list(GUARD_ENV) + GUARD_ENV_WARN


@pytest.fixture(scope="module")
def env_results():
    return run_snippets({v: (ENV_SNIPPET, {"FJFFI_GUARD": v}) for v in ENV_CASES})


@pytest.mark.parametrize("value", ENV_CASES, ids=[repr(v) for v in ENV_CASES])
def test_guard_environment_value(env_results, value):
    """Read at import, so each value is tried in a fresh child."""
    rc, out, err = env_results[value]
    assert rc == 0, err
    on, warned = out.split(" ", 1)
    if value in GUARD_ENV:
        assert (on == "True") == GUARD_ENV[value], f"FJFFI_GUARD={value!r} gives guard {on}"
        assert warned.strip() == "[]", warned
    else:
        assert on == "True", f"FJFFI_GUARD={value!r} gives guard {on}"
        # The warning comes at import, before the snippet catches any: on stderr.
        assert "RuntimeWarning" in err and repr(value) in err, f"no warning naming {value!r}: {err}"


GUARD_SET_AFTER_IMPORT = """
os.environ["FJFFI_GUARD"] = "1"
c = fjffi.Call("noop")
(out,) = fjffi.call("noop", (), (np.zeros(2),))
print(c.guard)
"""


@pytest.fixture(scope="module")
def after_import_result():
    return run_snippets({0: GUARD_SET_AFTER_IMPORT})[0]


def test_guard_environment_is_read_at_import(after_import_result):
    """Setting FJFFI_GUARD after import changes nothing."""
    assert_clean(after_import_result, "False")
