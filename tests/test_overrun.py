"""Overrun detection: guard mode catches a kernel that writes past the end of
an output, every time, names the target and the output, and leaves the
outputs zeroed; kernels that keep to their outputs see no difference."""

import ctypes
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fjffi
from fjffi import BufferOverrunError, Call, CallFailedError, FfiError, _testing

# One byte past the end of output `index`, at `offset` bytes past it, after
# filling every output: the fill shows that a caught overrun zeroes outputs.
POKE_SOURCE = r"""
#include <string.h>
#include "fjffi.h"

int32_t poke_past_end(const fjffi_buffer *inputs, size_t n_inputs,
                      const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx) {
    int64_t index, offset;
    uint8_t value;
    if (n_inputs != 3)
        return fjffi_fail(ctx, 1, "poke_past_end: inputs are index, offset (int64), value (uint8)");
    memcpy(&index, inputs[0].data, sizeof index);
    memcpy(&offset, inputs[1].data, sizeof offset);
    memcpy(&value, inputs[2].data, sizeof value);
    if (index < 0 || (size_t)index >= n_outputs)
        return fjffi_fail(ctx, 2, "poke_past_end: no such output");
    for (size_t i = 0; i < n_outputs; ++i) memset(outputs[i].data, 0x11, outputs[i].nbytes);
    ((uint8_t *)outputs[index].data)[outputs[index].nbytes + offset] = value;
    return 0;
}
"""

GUARD_FILL = 0xFD  # what guard bytes hold; a stray write of exactly this goes unseen
GUARD_REACH = 64  # guard bytes after each output
LOADED = []


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    """The test-only kernels, the built-ins, and poke_past_end compiled here."""
    folder = tmp_path_factory.mktemp("poke")
    source, lib = folder / "poke.c", folder / "libpoke.so"
    source.write_text(POKE_SOURCE)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror",
                    f"-I{fjffi.get_include()}", str(source), "-o", str(lib)], check=True)
    dll = ctypes.CDLL(str(lib))
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    address = ctypes.cast(dll.poke_past_end, ctypes.c_void_p).value
    registry = _testing.registry()
    registry.register_builtins()
    registry.register("poke_past_end", new_capsule(address, b"fjffi.kernel", None),
                      api_version=1)
    LOADED.append(dll)  # a capsule does not keep the library loaded: this does
    return registry


def patterned(rng, nbytes_max=40):
    dtype = rng.choice(["uint8", "int32", "float64", "complex128"])
    itemsize = np.dtype(dtype).itemsize
    out = np.empty(rng.randrange(0, nbytes_max // itemsize + 1), dtype=dtype)
    out.view(np.uint8)[:] = rng.randrange(256)
    return out


def test_off_by_one_and_pokes_are_caught_every_time(reg, capsys):
    """k random overruns, each of a random output of 1 to 4 of random sizes
    (zero-size included): every one is caught with its target, output
    index and guard byte, and leaves all outputs zeroed."""
    rng = random.Random(20261124)
    k, caught = 1000, 0
    for _ in range(k):
        outputs = [patterned(rng) for _ in range(rng.randrange(1, 5))]
        if rng.random() < 0.5:
            name, inputs, index, offset = "off_by_one", [], 0, 0
        else:
            index, offset = rng.randrange(len(outputs)), rng.randrange(GUARD_REACH)
            value = rng.choice([v for v in range(256) if v != GUARD_FILL])
            name, inputs = "poke_past_end", [index, offset, np.uint8(value)]
        before = [np.copy(x) for x in inputs]
        try:
            Call(name, reg, guard=True).invoke(inputs, outputs)
        except BufferOverrunError as exc:
            # buffer_index counts inputs first, as every buffer index does.
            assert (exc.target, exc.buffer_index, exc.byte_index) == (
                name, len(inputs) + index, offset)
            assert isinstance(exc, FfiError) and name in str(exc)
            assert all(not out.view(np.uint8).any() for out in outputs), "outputs not zeroed"
            assert all(np.array_equal(a, b) for a, b in zip(inputs, before, strict=True))
            caught += 1
    with capsys.disabled():
        print(f"\noverruns caught {caught}/{k}")
    assert caught == k


def test_overrun_unseen_without_guard_mode_lands_past_the_output(reg):
    """What guard mode is for: unguarded, the stray byte lands in whatever
    follows the output (here the rest of a larger array, so it harms nothing)."""
    backing = np.zeros(9, dtype=np.uint8)
    Call("off_by_one", reg, guard=False).invoke([], [backing[:8]])
    assert backing.tolist() == [0xEE] * 9

    backing[:] = 0
    with pytest.raises(BufferOverrunError):
        Call("off_by_one", reg, guard=True).invoke([], [backing[:8]])
    assert backing.tolist() == [0] * 9


@pytest.mark.parametrize("value, guard", [
    ("1", True), ("yes", True), ("TRUE", True), ("on", True), ("0", False), ("", False),
    ("false", False), ("No", False), ("off", False), (None, False)])
def test_environment_sets_the_guard_default_at_import(value, guard):
    env = {k: v for k, v in os.environ.items() if k != "FJFFI_GUARD"}
    if value is not None:
        env["FJFFI_GUARD"] = value
    code = ("import fjffi; print(fjffi.guard_enabled(), fjffi.Call('noop').guard, "
            "fjffi.Call('noop', guard=False).guard)")
    run = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env, check=True,
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == [str(guard), str(guard), "False"]


def test_unknown_environment_value_turns_guard_on_with_a_warning():
    env = dict(os.environ, FJFFI_GUARD="maybe")
    run = subprocess.run([sys.executable, "-c", "import fjffi; print(fjffi.guard_enabled())"],
                         env=env, check=True, capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["True"]
    assert "RuntimeWarning" in run.stderr and "'maybe'" in run.stderr


@pytest.mark.thread_unsafe(reason="changes the process-wide guard default")
def test_set_guard_changes_the_default(reg):
    before = fjffi.guard_enabled()
    try:
        fjffi.set_guard(True)
        assert Call("off_by_one", reg).guard is True
        # An explicit guard= wins over the default, either way.
        assert Call("off_by_one", reg, guard=False).guard is False
        out = np.full(3, 7, dtype=np.int32)
        with pytest.raises(BufferOverrunError) as info:
            Call("off_by_one", reg).invoke([], [out])
        assert (info.value.target, info.value.buffer_index) == ("off_by_one", 0)
        assert not out.any()
        # fjffi.call allocates its own outputs; the default reaches it too.
        with pytest.raises(BufferOverrunError):
            fjffi.call("off_by_one", [], [np.zeros(4)], registry=reg)
        fjffi.set_guard(False)
        assert Call("off_by_one", reg).guard is False
        with pytest.raises(TypeError):
            fjffi.set_guard("yes")
    finally:
        fjffi.set_guard(before)


def test_underrun_is_caught_and_never_reaches_the_caller():
    """A kernel writing the byte before its output: unguarded it would land
    in the caller's memory; guarded it lands in the front guard zone."""
    reg = _testing.registry(write_before="write_before")
    backing = np.zeros(9, dtype=np.uint8)
    with pytest.raises(BufferOverrunError) as info:
        Call("write_before", reg, guard=True).invoke([np.int64(1)], [backing[1:]])
    assert (info.value.buffer_index, info.value.byte_index) == (1, -1)
    assert "before the start" in str(info.value)
    assert backing.tolist() == [0] * 9
    Call("write_before", reg, guard=False).invoke([], [backing[1:]])
    assert backing[0] == 0xEE  # what guard mode kept from happening


def run_both(call_name, reg, inputs, outputs):
    """Run unguarded then guarded on copies; (outcome, outputs) of each."""
    results = []
    for guard in (False, True):
        outs = [np.full_like(o, 3) for o in outputs]
        try:
            Call(call_name, reg, guard=guard).invoke(inputs, outs)
            outcome = None
        except CallFailedError as exc:
            outcome = (exc.code, exc.message)
        results.append((outcome, [o.tobytes() for o in outs]))
    return results


@given(data=st.data(), name=st.sampled_from(["negate", "add", "multiply", "sum"]),
       dtype=st.sampled_from(["float64", "float32", "int64", "int32"]),
       shape=st.lists(st.integers(0, 6), max_size=3).map(tuple),
       wrong_shape=st.booleans())
def test_behaving_kernels_are_unaffected_by_guard_mode(reg, data, name, dtype, shape,
                                                       wrong_shape):
    n_inputs = 2 if name in ("add", "multiply") else 1
    elements = st.integers(-100, 100)
    inputs = [np.array(data.draw(st.lists(elements, min_size=int(np.prod(shape)),
                                          max_size=int(np.prod(shape)))), dtype=dtype)
              .reshape(shape) for _ in range(n_inputs)]
    before = [x.tobytes() for x in inputs]
    out_shape = () if name == "sum" else shape
    if wrong_shape:  # the kernel refuses: the failure path must match as well
        out_shape = out_shape + (2,)
    unguarded, guarded = run_both(name, reg, inputs, [np.empty(out_shape, dtype=dtype)])
    assert unguarded == guarded
    assert (unguarded[0] is None) is (not wrong_shape)
    assert [x.tobytes() for x in inputs] == before


@given(prefix=st.integers(-2, 40), fill=st.integers(0, 255), fail=st.booleans(),
       sizes=st.lists(st.integers(0, 24), min_size=1, max_size=4))
def test_partial_writes_are_unaffected_by_guard_mode(reg, prefix, fill, fail, sizes):
    inputs = [np.int64(prefix), np.uint8(fill), fail]
    outputs = [np.empty(n, dtype=np.uint8) for n in sizes]
    unguarded, guarded = run_both("write_prefix", reg, inputs, outputs)
    assert unguarded == guarded
    n = min(max(prefix, 0), sizes[0])
    expected = [bytes(s) for s in sizes]
    if not fail:
        expected[0] = bytes([fill]) * n + bytes(sizes[0] - n)
    assert guarded == ((9, f"write_prefix: wrote {n} bytes, then failed as asked")
                       if fail else None, expected)
