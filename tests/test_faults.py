"""Fault injection: kernels that write part of an output and then fail, or
succeed after a partial write, or write a non-canonical bool.

Outputs start out full of a random pattern.  The contract leaves exactly one
of two outcomes: on failure every output is zero; on success every output
holds exactly the kernel's bytes and zero elsewhere, since outputs are
zeroed before the kernel runs.  Guard mode must not change either outcome.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fjffi
from fjffi import Call, CallFailedError, InvalidBoolByteError, _testing

# One registry for every example: a registry only grows, and these tests add nothing.
REG = _testing.registry()
REG.register_builtins()

DTYPES = ["uint8", "bool", "int32", "float64", "complex128"]


@st.composite
def patterned_outputs(draw, min_size=0):
    """1 to 3 outputs of random dtypes and shapes, each full of random bytes
    (random 0/1 bytes for bool, which fjffi would otherwise reject)."""
    outputs = []
    for i in range(draw(st.integers(1, 3))):
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        shape = tuple(draw(st.lists(st.integers(min_size if i == 0 else 0, 5), max_size=3)))
        out = np.empty(shape, dtype=dtype)
        raw = out.reshape(-1).view(np.uint8)
        pattern = draw(st.binary(min_size=raw.size, max_size=raw.size))
        raw[:] = np.frombuffer(pattern, dtype=np.uint8) & (1 if dtype.kind == "b" else 0xFF)
        outputs.append(out)
    return outputs


def raw_bytes(out):
    return out.reshape(-1).view(np.uint8).tobytes()


def assert_all_zero(outputs):
    for out in outputs:
        assert raw_bytes(out) == bytes(out.nbytes)


def assert_rest_zero(outputs):
    """Every output but the first is all zero."""
    assert_all_zero(outputs[1:])


@given(outputs=patterned_outputs(), prefix=st.one_of(st.integers(-3, 70),
       st.sampled_from([-(2**63), 2**63 - 1])), fill=st.integers(0, 255), fail=st.booleans(),
       guard=st.booleans())
def test_write_prefix(outputs, prefix, fill, fail, guard):
    inputs = [np.int64(prefix), np.uint8(fill), fail]
    nbytes = outputs[0].nbytes
    written = min(max(prefix, 0), nbytes)
    expected = bytes([fill]) * written + bytes(nbytes - written)
    call = Call("write_prefix", REG, guard=guard)
    if fail:
        with pytest.raises(CallFailedError) as info:
            call.invoke(inputs, outputs)
        assert info.value.code == 9 and info.value.target == "write_prefix"
        assert info.value.message == f"write_prefix: wrote {written} bytes, then failed as asked"
        assert_all_zero(outputs)
    elif outputs[0].dtype == bool and fill > 1 and written > 0:
        # The kernel's own bytes are not canonical bools: rejected, zeroed.
        with pytest.raises(InvalidBoolByteError) as info:
            call.invoke(inputs, outputs)
        assert (info.value.buffer_index, info.value.byte_index, info.value.value) == (3, 0, fill)
        assert_all_zero(outputs)
    else:
        call.invoke(inputs, outputs)
        assert raw_bytes(outputs[0]) == expected
        assert_rest_zero(outputs)


@given(outputs=patterned_outputs(), guard=st.booleans())
def test_write_then_fail(outputs, guard):
    with pytest.raises(CallFailedError) as info:
        Call("write_then_fail", REG, guard=guard).invoke([], outputs)
    assert (info.value.code, info.value.message) == (7, "write_then_fail: wrote then failed")
    assert_all_zero(outputs)


@given(outputs=patterned_outputs(min_size=1), guard=st.booleans())
def test_bool_two(outputs, guard):
    call = Call("bool_two", REG, guard=guard)
    if outputs[0].dtype == bool:
        with pytest.raises(InvalidBoolByteError) as info:
            call.invoke([np.zeros(2)], outputs)
        # Buffer indices count inputs first: output 0 is buffer 1 here.
        assert (info.value.buffer_index, info.value.byte_index, info.value.value) == (1, 0, 2)
        assert_all_zero(outputs)
    else:
        # 2 is an ordinary byte of any other dtype.
        call.invoke([np.zeros(2)], outputs)
        assert raw_bytes(outputs[0]) == b"\x02" + bytes(outputs[0].nbytes - 1)
        assert_rest_zero(outputs)


@given(outputs=patterned_outputs(), guard=st.booleans())
def test_write_one_byte_ok(outputs, guard):
    call = Call("write_one_byte_ok", REG, guard=guard)
    nbytes = outputs[0].nbytes
    if outputs[0].dtype == bool and nbytes > 0:
        with pytest.raises(InvalidBoolByteError) as info:
            call.invoke([], outputs)
        assert (info.value.buffer_index, info.value.byte_index, info.value.value) == (0, 0, 0xAB)
        assert_all_zero(outputs)
    else:
        call.invoke([], outputs)
        assert raw_bytes(outputs[0]) == (b"\xab" + bytes(nbytes - 1) if nbytes else b"")
        assert_rest_zero(outputs)


@given(outputs=patterned_outputs(), guard=st.booleans(),
       name=st.sampled_from(["fail_with_message", "fail"]))
def test_kernels_that_only_fail(outputs, guard, name):
    with pytest.raises(CallFailedError) as info:
        Call(name, REG, guard=guard).invoke([1.0], outputs)
    assert info.value.code == {"fail_with_message": 3, "fail": -42}[name]
    assert_all_zero(outputs)


@given(outputs=patterned_outputs(), fault=st.sampled_from(["raise", "count", "shape", "dtype"]),
       guard=st.booleans())
def test_callback_fault_leaves_outputs_zeroed(outputs, fault, guard):
    """A Python callback goes through the same contract as a C kernel: one
    that raises or returns the wrong results, even after its earlier results
    were copied into earlier outputs, leaves every output zero."""
    exact = [np.ones(out.shape, dtype=out.dtype) for out in outputs]

    def faulty(*views):
        if fault == "raise":
            raise RuntimeError("gave up")
        if fault == "count":
            return exact + exact[:1]
        last = exact[-1]
        # int16 is none of DTYPES, so it never matches the declared output.
        return exact[:-1] + [np.ones(last.shape + (2,), dtype=last.dtype) if fault == "shape"
                             else np.ones(last.shape, dtype="int16")]

    reg = fjffi.Registry()
    reg.register_callback("faulty", faulty)
    with pytest.raises((CallFailedError, fjffi.BufferMismatchError)) as info:
        Call("faulty", reg, guard=guard).invoke([], outputs)
    assert type(info.value) is (CallFailedError if fault in ("raise", "count")
                                else fjffi.BufferMismatchError)
    assert_all_zero(outputs)
