"""Regressions of defects found by trying fjffi as a new user would; each
failed before its fix."""

import subprocess
import sys
import threading

import numpy as np
import pytest

import fjffi
from fjffi import _testing


def test_bfloat16_result_on_first_use():
    """The first bfloat16 a process sees may be a result spec of fjffi.call
    (it used to be refused until some to_buffer had met bfloat16)."""
    code = """
import ml_dtypes, numpy as np, fjffi
reg = fjffi.Registry()
reg.register_callback("bf", lambda: np.ones(3, ml_dtypes.bfloat16))
(out,) = fjffi.call("bf", (), (np.empty(3, ml_dtypes.bfloat16),), registry=reg)
print(out.dtype, out.astype(np.float32).tolist())
"""
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120)
    assert run.stdout.split("\n")[0] == "bfloat16 [1.0, 1.0, 1.0]"


def test_from_buffer_refuses_bool_bytes_written_after_the_buffer_was_built():
    raw = bytearray([0, 1, 1])
    buf = fjffi.Buffer(raw, (3,), "bool")
    raw[1] = 7  # through the object the Buffer wraps
    with pytest.raises(fjffi.InvalidBoolByteError) as info:
        fjffi.from_buffer(buf)
    assert (info.value.byte_index, info.value.value) == (1, 7)


def test_raw_abi_failures_carry_a_message():
    reg = _testing.registry(f="fail_7")
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.Call("f", reg).invoke((), ())
    assert info.value.message == "extern function returned code 7"


@pytest.mark.thread_unsafe(reason="starts its own threads against one registry")
def test_names_never_come_back_short_under_concurrent_registration():
    reg = fjffi.Registry()
    start = threading.Barrier(48)

    def add(i):
        start.wait()
        for j in range(20):
            reg.register_callback(f"t{i}_{j}", lambda: ())

    threads = [threading.Thread(target=add, args=(i,)) for i in range(48)]
    for t in threads:
        t.start()
    seen = []
    while any(t.is_alive() for t in threads):
        seen.append(len(reg.names()))
    for t in threads:
        t.join()
    assert len(reg.names()) == len(reg) == 48 * 20
    assert seen == sorted(seen)  # never fewer than a moment before
    with pytest.raises(fjffi.TargetNotFoundError) as info:
        fjffi.Call("nope", reg).invoke((), ())
    assert len(info.value.available) == 48 * 20


def test_buffer_overrun_index_counts_inputs_first():
    reg = _testing.registry(o="off_by_one")
    out = np.zeros(4, np.uint8)
    with pytest.raises(fjffi.BufferOverrunError) as info:
        fjffi.Call("o", reg, guard=True).invoke((np.int64(1), np.int64(2)), (out,))
    assert info.value.buffer_index == 2
