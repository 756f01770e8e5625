"""fjffi.jax: registered targets called from JAX, inside and outside jax.jit,
through fjffi's XLA handler; results checked against numpy."""

import subprocess
import sys
import textwrap
import threading

import interop_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fjffi
import fjffi.jax as fj
from fjffi.errors import TargetNotFoundError, TransformError, UnsupportedDtypeError

# Every dtype fjffi and JAX share.
SHARED = ["float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
          "uint64", "uint32", "uint16", "uint8", "bool", "complex64", "complex128"]
SHAPES = [(), (0,), (3, 0), (5,), (2, 3, 4)]


@pytest.fixture(scope="module", autouse=True)
def x64():
    # 64-bit dtypes stay 64-bit only with x64 on.
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


@pytest.fixture(scope="module", autouse=True)
def kernels(tmp_path_factory):
    lib = interop_util.build(tmp_path_factory.mktemp("ik"))
    interop_util.register_all(lib)
    return lib


def S(shape, dtype):
    return jax.ShapeDtypeStruct(shape, np.dtype(dtype))


def sample(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    return rng.standard_normal(shape).astype(dt)


@pytest.mark.parametrize("dtype", SHARED)
def test_every_shared_dtype_round_trips_bit_exactly(dtype):
    x = sample((2, 3), dtype)
    f = jax.jit(lambda a: fj.call("ik_copy", a, results=S(a.shape, a.dtype)))
    out = np.asarray(f(x))
    assert out.dtype == x.dtype
    assert out.tobytes() == x.tobytes()
    code = fj.call("ik_describe", x, results=S((), np.int32))
    assert fjffi._core.DTYPE_NAMES[int(code)] == np.dtype(dtype).name


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int32"])
def test_negate_matches_numpy_in_and_out_of_jit(shape, dtype):
    x = sample(shape, dtype, seed=1)
    expected = -x
    eager = fj.call("negate", x, results=S(shape, dtype))
    jitted = jax.jit(lambda a: fj.call("negate", a, results=S(a.shape, a.dtype)))(x)
    np.testing.assert_array_equal(np.asarray(eager), expected)
    np.testing.assert_array_equal(np.asarray(jitted), expected)


def test_two_inputs_and_several_results_compose_with_jax_ops():
    a, b = sample((4, 5), "float32", 2), sample((4, 5), "float32", 3)

    @jax.jit
    def f(a, b):
        s = fj.call("add", a, b, results=S(a.shape, a.dtype))
        c1, c2 = fj.call("ik_copy", s * 2, results=[S(a.shape, a.dtype)] * 2)
        return c1 + 1, c2

    c1, c2 = f(a, b)
    np.testing.assert_allclose(np.asarray(c1), (a + b) * 2 + 1, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(c2), (a + b) * 2, rtol=1e-6)
    assert isinstance(fj.call("ik_copy", a, results=(S(a.shape, a.dtype),)), tuple)


def test_failure_carries_code_and_message():
    x = np.ones(3)
    with pytest.raises(Exception, match=r"ik_fail_after_write.*code 7.*wrote, then failed"):
        jax.jit(lambda a: fj.call("ik_fail_after_write", a, results=S((3,), "float64")))(x)
    with pytest.raises(Exception, match=r"'fail' failed with code -42"):
        np.asarray(fj.call("fail", x, results=S((3,), "float64")))


def test_kernel_refusal_of_bad_descriptors_is_an_error_not_a_result():
    # ik_copy refuses a result of another size: the error, never garbage.
    with pytest.raises(Exception, match=r"ik_copy.*code 2"):
        jax.jit(lambda a: fj.call("ik_copy", a, results=S((4,), "float64")))(np.ones(3))


def test_unknown_target_and_unsupported_dtype_are_refused_at_trace_time():
    with pytest.raises(TargetNotFoundError):
        fj.call("no_such_target", np.ones(2), results=S((2,), "float64"))
    f8 = jnp.zeros(2, jnp.float8_e4m3fn)
    with pytest.raises(UnsupportedDtypeError):
        fj.call("ik_copy", f8, results=S((2,), "float32"))
    with pytest.raises(UnsupportedDtypeError):
        fj.call("ik_copy", np.ones(2), results=S((2,), jnp.float8_e4m3fn))
    with pytest.raises(TypeError):
        fj.call("ik_copy", np.ones(2), results=object())


def test_handler_refuses_an_unsupported_xla_type_and_a_missing_name():
    fj.register_handler()
    call = jax.ffi.ffi_call(fj.HANDLER_NAME, S((2,), "float32"))
    with pytest.raises(Exception, match="no string attribute fjffi_target"):
        np.asarray(jax.jit(lambda a: call(a))(np.ones(2, np.float32)))
    f8 = jnp.zeros(2, jnp.float8_e4m3fn)
    with pytest.raises(Exception, match="input 0 has XLA element type"):
        np.asarray(jax.jit(lambda a: call(a, fjffi_target="ik_copy",
                                          fjffi_registry=np.int64(0)))(f8))
    with pytest.raises(Exception, match="registry .* does not exist"):
        np.asarray(jax.jit(lambda a: call(a, fjffi_target="ik_copy",
                                          fjffi_registry=np.int64(10**6)))(np.ones(2, np.float32)))


@pytest.mark.parametrize("transform", ["grad", "jvp", "vjp"])
def test_differentiation_is_refused_naming_the_target(transform):
    def f(a):
        return fj.call("negate", a, results=S((), a.dtype))

    x = jnp.float64(1.5)
    with pytest.raises(TransformError, match="'negate'") as info:
        if transform == "grad":
            jax.grad(f)(x)
        elif transform == "jvp":
            jax.jvp(f, (x,), (x,))
        else:
            jax.vjp(f, x)
    assert info.value.target == "negate"


def test_undeclared_vmap_is_refused_never_a_wrong_batched_result():
    rows = sample((3, 4), "float64", 5)
    with pytest.raises(TransformError, match="'ik_sum_1d'.*vmap"):
        jax.vmap(lambda r: fj.call("ik_sum_1d", r, results=S((), "float64")))(rows)
    with pytest.raises(TransformError, match="'ik_sum_1d'"):
        jax.jit(jax.vmap(lambda r: fj.call("ik_sum_1d", r, results=S((), "float64"))))(rows)


def test_sequential_vmap_never_shows_the_kernel_a_batch():
    rows = sample((3, 4), "float64", 6)
    f = jax.vmap(lambda r: fj.call("ik_sum_1d", r, results=S((), "float64"),
                                   vmap="sequential"))
    np.testing.assert_allclose(np.asarray(f(rows)), rows.sum(axis=1))
    np.testing.assert_allclose(np.asarray(jax.jit(f)(rows)), rows.sum(axis=1))


def test_elementwise_vmap_hands_the_kernel_the_batch_and_declare_vmap():
    a = sample((3, 4), "float32", 7)
    b = sample((4,), "float32", 8)
    g = jax.vmap(lambda r, s: fj.call("add", r, s, results=S((4,), "float32"),
                                      vmap="elementwise"), in_axes=(0, None))
    np.testing.assert_allclose(np.asarray(g(a, b)), a + b, rtol=1e-6)
    fj.declare_vmap("multiply", "elementwise")
    try:
        h = jax.vmap(lambda r: fj.call("multiply", r, r, results=S((4,), "float32")))
        np.testing.assert_allclose(np.asarray(h(a)), a * a, rtol=1e-6)
    finally:
        fj.declare_vmap("multiply", None)
    with pytest.raises(TransformError):
        jax.vmap(lambda r: fj.call("multiply", r, r, results=S((4,), "float32")))(a)
    with pytest.raises(ValueError):
        fj.declare_vmap("multiply", "broadcast_all")


def test_a_non_default_registry(kernels):
    reg = fjffi.Registry()
    reg.register("mine", kernels.ik_negate_f64, api_version=1)
    x = sample((3,), "float64", 9)
    out = jax.jit(lambda a: fj.call("mine", a, results=S((3,), "float64"), registry=reg))(x)
    np.testing.assert_array_equal(np.asarray(out), -x)
    with pytest.raises(TargetNotFoundError):
        fj.call("mine", x, results=S((3,), "float64"))


def test_serialised_target_under_eight_threads_and_results_from_each():
    x = np.arange(16.0)
    serial = jax.jit(lambda a: fj.call("ik_serial", a, results=S((16,), "uint8")))
    neg = jax.jit(lambda a: fj.call("negate", a, results=S(a.shape, a.dtype)))
    np.asarray(serial(x)), np.asarray(neg(x))  # compile once, outside the threads
    errors, barrier = [], threading.Barrier(8)

    def work(k):
        try:
            barrier.wait()
            for i in range(25):
                np.testing.assert_array_equal(np.asarray(serial(x)), np.ones(16, np.uint8))
                y = x + k + i
                np.testing.assert_array_equal(np.asarray(neg(y)), -y)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_callbacks_and_gil_hold_targets_run_through_jax_callbacks(kernels):
    reg = fjffi.Registry()
    reg.register_callback("twice", lambda x: np.asarray(x) * 2)
    seen = []
    reg.register_callback("log", lambda x: seen.append(float(x[0])) or x * 1, flavor="io")
    reg.register("held", kernels.ik_negate_f64, api_version=1, gil="hold")
    x = np.arange(3.0)

    @jax.jit
    def f(a):
        t = fj.call("twice", a, results=S((3,), "float64"), registry=reg)
        fj.call("log", a, results=S((3,), "float64"), registry=reg)
        fj.call("log", a + 10, results=S((3,), "float64"), registry=reg)
        return t, fj.call("held", a, results=S((3,), "float64"), registry=reg)

    t, h = f(x)
    jax.effects_barrier()
    np.testing.assert_array_equal(np.asarray(t), 2 * x)
    np.testing.assert_array_equal(np.asarray(h), -x)
    assert seen == [0.0, 10.0]  # io callbacks keep program order
    with pytest.raises(TransformError):
        jax.grad(lambda a: fj.call("twice", a, results=S((), "float64"), registry=reg))(1.0)


def test_export_runs_whatever_the_name_means_in_the_importing_process(tmp_path, kernels):
    x = sample((2, 3), "float64", 10)
    fn = jax.jit(lambda a: fj.call("ik_copy", a, results=S(a.shape, a.dtype)))
    exp = jax.export.export(fn, disabled_checks=fj.export_checks())(S((2, 3), "float64"))
    text = exp.mlir_module()
    # The call names its target and carries no address; the locations after
    # it may hold file paths, which are not looked at.
    calls = [line.split(" loc(")[0] for line in text.splitlines() if "fjffi_target" in line]
    assert calls and all('"ik_copy"' in c and "0x" not in c for c in calls), calls
    np.testing.assert_array_equal(np.asarray(exp.call(x)), x)
    blob = tmp_path / "prog.bin"
    blob.write_bytes(exp.serialize())
    # Another process binds the name to another kernel: that one runs.
    script = textwrap.dedent(f"""
        import ctypes, numpy as np, jax
        jax.config.update("jax_enable_x64", True)
        import fjffi, fjffi.jax
        lib = ctypes.CDLL({interop_util.built_path(kernels)!r})
        fjffi.register("ik_copy", lib.ik_negate_f64, api_version=1)
        fjffi.jax.register_handler()
        exp = jax.export.deserialize(bytearray(open({str(blob)!r}, "rb").read()))
        x = np.arange(6.0).reshape(2, 3)
        print(np.asarray(exp.call(x)).tolist())
    """)
    out = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True,
                         text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str((-np.arange(6.0).reshape(2, 3)).tolist())


def test_imports_without_jax_and_says_how_to_install():
    script = textwrap.dedent("""
        import sys
        sys.modules["jax"] = None  # as if jax were not installed
        import fjffi.jax
        try:
            fjffi.jax.call("negate", 1.0, results=None)
        except ImportError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True,
                         text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install jax" in out.stdout


def test_a_callback_batches_as_declared():
    reg = fjffi.Registry()
    reg.register_callback("row_sum", lambda x: np.asarray(x).sum(axis=-1))
    reg.register_callback("plus_one", lambda x: np.asarray(x) + 1)
    rows = sample((3, 4), "float64", 11)
    seq = jax.vmap(lambda r: fj.call("row_sum", r, results=S((), "float64"), registry=reg,
                                     vmap="sequential"))
    np.testing.assert_allclose(np.asarray(seq(rows)), rows.sum(axis=1))
    ew = jax.jit(jax.vmap(lambda r: fj.call("plus_one", r, results=S((4,), "float64"),
                                            registry=reg, vmap="elementwise")))
    np.testing.assert_array_equal(np.asarray(ew(rows)), rows + 1)
    with pytest.raises(TransformError, match="'row_sum'"):
        jax.vmap(lambda r: fj.call("row_sum", r, results=S((), "float64"), registry=reg))(rows)


def test_a_compiled_program_runs_what_the_name_means_now(kernels):
    reg = fjffi.Registry()
    reg.register("swap", kernels.ik_copy, api_version=1)
    f = jax.jit(lambda a: fj.call("swap", a, results=S((3,), "float64"), registry=reg))
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(np.asarray(f(x)), x)
    reg.register("swap", kernels.ik_negate_f64, api_version=1, replace=True)
    np.testing.assert_array_equal(np.asarray(f(x + 1)), -(x + 1))  # same program, new kernel
    reg.unregister("swap")
    with pytest.raises(Exception, match="no target named 'swap'"):
        np.asarray(f(x + 2))
    # Bound now to a target that needs the GIL: refused, never waited for.
    reg.register_callback("swap", lambda a: a)
    with pytest.raises(Exception, match="needs the GIL"):
        np.asarray(f(x + 3))
