"""fjffi.numba: numba @cfunc kernels of both ABIs registered and called by
name, results checked against numpy; @njit code calling registered
targets through the C API's nogil invoke."""

import subprocess
import sys
import textwrap
import threading

import numba
import numpy as np
import pytest

import fjffi
import fjffi.numba as fn
from fjffi.errors import CallFailedError

import interop_util

DTYPES = ["float64", "float32", "int64", "int32", "int16", "int8", "uint64", "uint32",
          "uint16", "uint8", "complex64", "complex128"]
SHAPES = [(), (0,), (3, 0), (5,), (2, 3, 4)]


@numba.cfunc(fn.typed_signature)
def nb_scale(inputs, n_inputs, outputs, n_outputs, ctx):
    if n_inputs != 1 or n_outputs != 1:
        return fn.fail(ctx, 1, "nb_scale: 1 input, 1 output")
    ins, outs = fn.buffers(inputs, n_inputs), fn.buffers(outputs, n_outputs)
    if ins[0].dtype != fn.FLOAT64 or outs[0].dtype != ins[0].dtype:
        return fn.fail(ctx, 2, "nb_scale: float64 only")
    if fn.numel(inputs, 0) != fn.numel(outputs, 0):
        return fn.fail(ctx, 3, "nb_scale: sizes differ")
    x = fn.array(inputs, 0, np.float64)
    y = fn.array(outputs, 0, np.float64)
    for i in range(x.size):
        y[i] = 2.0 * x[i]
    return 0


@numba.cfunc(fn.typed_signature)
def nb_describe(inputs, n_inputs, outputs, n_outputs, ctx):
    # out[0] = dtype code, out[1] = ndim, out[2:] = shape: what the record shows.
    ins = fn.buffers(inputs, n_inputs)
    out = fn.array(outputs, 0, np.int64)
    dims = fn.shape(inputs, 0)
    out[0] = ins[0].dtype
    out[1] = ins[0].ndim
    for k in range(dims.size):
        out[2 + k] = dims[k]
    out[2 + dims.size] = fn.numel(inputs, 0)
    out[3 + dims.size] = ins[0].nbytes
    return 0


@numba.cfunc(fn.typed_signature)
def nb_copy(inputs, n_inputs, outputs, n_outputs, ctx):
    ins, outs = fn.buffers(inputs, n_inputs), fn.buffers(outputs, n_outputs)
    if ins[0].nbytes != outs[0].nbytes or ins[0].dtype != outs[0].dtype:
        return fn.fail(ctx, 4, "nb_copy: output unlike input")
    n = ins[0].nbytes
    xb = numba.carray(fn.pointer(fn.data(inputs, 0)), n, np.uint8)
    yb = numba.carray(fn.pointer(fn.data(outputs, 0)), n, np.uint8)
    for i in range(n):
        yb[i] = xb[i]
    return 0


@numba.cfunc(fn.raw_signature)
def nb_raw_negate3(inputs, n_inputs, outputs, n_outputs):
    if n_inputs != 1 or n_outputs != 1:
        return 1
    x = fn.raw_array(inputs, 0, 3, np.float64)
    y = fn.raw_array(outputs, 0, 3, np.float64)
    for i in range(3):
        y[i] = -x[i]
    return 0


@numba.cfunc(fn.typed_signature)
def nb_long_message(inputs, n_inputs, outputs, n_outputs, ctx):
    return fn.fail(ctx, 6, "x" * 300 + " caf\u00e9")


@pytest.fixture(scope="module", autouse=True)
def registered(tmp_path_factory):
    for name, f, abi in [("nb_scale", nb_scale, 1), ("nb_describe", nb_describe, 1),
                         ("nb_copy", nb_copy, 1), ("nb_raw_negate3", nb_raw_negate3, 0),
                         ("nb_long_message", nb_long_message, 1)]:
        if name not in fjffi.default_registry:
            fjffi.register(name, f, api_version=abi)
    interop_util.register_all(interop_util.build(tmp_path_factory.mktemp("ik")))


@pytest.mark.parametrize("shape", SHAPES)
def test_typed_cfunc_matches_numpy(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    (y,) = fjffi.call("nb_scale", [x], [x])
    np.testing.assert_array_equal(y, 2 * x)


@pytest.mark.parametrize("dtype", DTYPES + ["bool", "float16"])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_record_shows_each_descriptor(dtype, shape):
    x = np.zeros(shape, dtype)
    (out,) = fjffi.call("nb_describe", [x], [np.zeros(12, np.int64)])
    nd = len(shape)
    assert fjffi._core.DTYPE_NAMES[out[0]] == np.dtype(dtype).name
    assert out[1] == nd
    assert tuple(out[2:2 + nd]) == shape
    assert out[2 + nd] == x.size and out[3 + nd] == x.nbytes
    (y,) = fjffi.call("nb_copy", [np.ones(shape, dtype)], [x])
    np.testing.assert_array_equal(y, np.ones(shape, dtype))


def test_raw_cfunc_and_the_signature_check():
    (y,) = fjffi.call("nb_raw_negate3", [np.arange(3.0)], [np.zeros(3)])
    np.testing.assert_array_equal(y, -np.arange(3.0))
    with pytest.raises(TypeError, match="does not match"):
        fjffi.Registry().register("wrong", nb_raw_negate3, api_version=1)
    with pytest.raises(TypeError, match="does not match"):
        fjffi.Registry().register("wrong", nb_scale, api_version=0)


def test_failure_message_is_set_cut_and_outputs_zeroed():
    out = np.full(3, 9.0)
    with pytest.raises(CallFailedError, match="nb_scale: sizes differ") as info:
        fjffi.Call("nb_scale").invoke((np.ones(4),), (out,))
    assert info.value.code == 3
    np.testing.assert_array_equal(out, 0.0)  # the kernel ran and failed: zeroed
    with pytest.raises(CallFailedError) as info:
        fjffi.call("nb_long_message", [np.ones(1)], [np.ones(1)])
    assert info.value.code == 6
    assert info.value.message == "x" * (fn.MESSAGE_SIZE - 1)


NEGATE = fn.target_name("negate")
SUM_1D = fn.target_name("ik_sum_1d")
MISSING = fn.target_name("no_such_target")


@numba.njit(nogil=True)
def njit_negate(x):
    out = np.empty_like(x)
    msg = np.zeros(fn.MESSAGE_SIZE, np.uint8)
    status, code = fn.invoke(NEGATE, (x,), (out,), msg)
    return status, code, out, msg


@numba.njit(nogil=True)
def njit_row_sums(rows):
    sums = np.empty(rows.shape[0])
    msg = np.zeros(fn.MESSAGE_SIZE, np.uint8)
    for i in range(rows.shape[0]):
        row = rows[i].copy()
        s = np.empty((), np.float64)
        status, code = fn.invoke(SUM_1D, (row,), (s,), msg)
        if status != 0:
            return status, sums
        sums[i] = s[()]
    return 0, sums


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int32"])
@pytest.mark.parametrize("shape", SHAPES)
def test_njit_invoke_matches_numpy(dtype, shape):
    x = (np.arange(int(np.prod(shape))) - 3).reshape(shape).astype(dtype)
    status, code, out, _ = njit_negate(x)
    assert (status, code) == (0, 0)
    np.testing.assert_array_equal(out, -x)


def test_njit_invoke_reports_refusal_and_failure():
    status, code, out, msg = njit_negate(np.arange(3, dtype=np.int8))
    assert status == fn.invoke_status["failed"] and code != 0  # the kernel's own refusal
    assert "int8" in fn.message_text(msg)

    @numba.njit
    def missing():
        msg = np.zeros(fn.MESSAGE_SIZE, np.uint8)
        x, y = np.ones(2), np.ones(2)
        status, code = fn.invoke(MISSING, (x,), (y,), msg)
        return status, y, msg

    status, y, msg = missing()
    assert status == fn.invoke_status["refused"] and "no_such_target" in fn.message_text(msg)
    np.testing.assert_array_equal(y, 1.0)  # refused: nothing ran, nothing zeroed

    @numba.njit
    def failing():
        msg = np.zeros(fn.MESSAGE_SIZE, np.uint8)
        x, y = np.ones(2), np.ones(2)
        status, code = fn.invoke(fn_fail_name, (x,), (y,), msg)
        return status, code, y, msg

    status, code, y, msg = failing()
    assert status == fn.invoke_status["failed"] and code == 7
    assert "wrote, then failed" in fn.message_text(msg)
    np.testing.assert_array_equal(y, 0.0)  # written by the kernel, then zeroed


fn_fail_name = fn.target_name("ik_fail_after_write")


def test_njit_invoke_from_eight_threads_without_the_gil():
    rows = np.random.default_rng(1).standard_normal((50, 7))
    njit_row_sums(rows)  # compile first
    results, barrier = [None] * 8, threading.Barrier(8)

    def work(k):
        barrier.wait()
        results[k] = njit_row_sums(rows + k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for k in range(8):
        status, sums = results[k]
        assert status == 0
        np.testing.assert_allclose(sums, (rows + k).sum(axis=1))


def test_imports_without_numba_and_says_how_to_install():
    script = textwrap.dedent("""
        import sys
        sys.modules["numba"] = None  # as if numba were not installed
        import fjffi.numba
        try:
            fjffi.numba.typed_signature
        except ImportError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install numba" in out.stdout
