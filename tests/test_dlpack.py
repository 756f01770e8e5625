"""DLPack in and out: any __dlpack__ object on host memory as an input
(zero-copy where its memory allows) and as a writable output; every refusal
an FfiError.  A producer of our own (kernels/dlpack_producer.c) reaches every
corner of the format; torch and jax are checked as real producers."""

import ctypes
import os
import pathlib
import shutil
import subprocess
import sysconfig

import interop_util
import numpy as np
import pytest

import fjffi
from fjffi.errors import FfiError, LayoutError, UnsupportedDtypeError

PRODUCER_C = pathlib.Path(__file__).parent / "kernels" / "dlpack_producer.c"

# DLPack (code, bits) of each numpy dtype.
DL = {"float64": (2, 64), "float32": (2, 32), "float16": (2, 16), "int64": (0, 64),
      "int32": (0, 32), "int16": (0, 16), "int8": (0, 8), "uint64": (1, 64),
      "uint32": (1, 32), "uint16": (1, 16), "uint8": (1, 8), "bool": (6, 8),
      "complex64": (5, 64), "complex128": (5, 128)}
READ_ONLY = 1


@pytest.fixture(scope="module")
def producer(tmp_path_factory):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    out = tmp_path_factory.mktemp("producer") / "libproducer.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-std=gnu11",
                    "-I", sysconfig.get_paths()["include"], str(PRODUCER_C), "-o", str(out)],
                   check=True, capture_output=True, text=True)
    lib = ctypes.PyDLL(str(out))
    lib.producer_capsule.restype = ctypes.py_object
    lib.producer_exchange_api.restype = ctypes.py_object
    lib.producer_capsule.argtypes = [
        ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_int64),
        ctypes.POINTER(ctypes.c_int64), ctypes.c_uint8, ctypes.c_uint8, ctypes.c_uint16,
        ctypes.c_int32, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int]
    return lib


@pytest.fixture(scope="module", autouse=True)
def kernels(tmp_path_factory):
    lib = interop_util.build(tmp_path_factory.mktemp("ik"))
    interop_util.register_all(lib)
    return lib


class Exported:
    """Memory of a numpy array (its owner) exported through DLPack with any
    header fields; only __dlpack__, as the most minimal producer has."""

    def __init__(self, lib, base, shape=None, strides=None, dtype=None, offset=0, device=1,
                 flags=0, major=1, versioned=True, lanes=1):
        self.lib, self.base = lib, base
        self.shape = base.shape if shape is None else shape
        self.strides = strides
        self.code, self.bits = DL[np.dtype(dtype or base.dtype).name] if not isinstance(
            dtype, tuple) else dtype
        self.offset, self.device, self.flags = offset, device, flags
        self.major, self.versioned, self.lanes = major, versioned, lanes
        self.exports = 0

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        self.exports += 1
        nd = len(self.shape)
        shape = (ctypes.c_int64 * max(nd, 1))(*self.shape)
        strides = None if self.strides is None else (ctypes.c_int64 * max(nd, 1))(*self.strides)
        versioned = self.versioned and max_version is not None and max_version >= (1, 0)
        return self.lib.producer_capsule(
            self.base.ctypes.data, nd, shape, strides, self.code, self.bits, self.lanes,
            self.device, self.flags, self.offset, self.major, versioned)


class AlwaysVersioned(Exported):
    """A producer that speaks only versioned DLPack, whatever it is asked."""

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        return super().__dlpack__(max_version=(1, 0))


@pytest.fixture(scope="module")
def with_table(producer):
    """A producer type offering the C exchange table as well as __dlpack__."""

    class WithTable:
        __dlpack_c_exchange_api__ = producer.producer_exchange_api()

        def __init__(self, base):
            self.base = base
            self.shape = (ctypes.c_int64 * max(base.ndim, 1))(*base.shape)
            code, bits = DL[base.dtype.name]
            self._dl = (base.ctypes.data, base.ndim, ctypes.addressof(self.shape), code, bits)

        def __dlpack__(self, **kw):
            return producer.producer_capsule(self.base.ctypes.data, self.base.ndim, self.shape,
                                             None, *self._dl[3:], 1, 1, 0, 0, 1, True)

    return WithTable


def negate(x, out):
    fjffi.Call("negate").invoke((x,), (out,))
    return out


def test_input_is_zero_copy_and_output_written_in_place(producer):
    src = np.arange(6.0).reshape(2, 3)
    buf = fjffi.to_buffer(Exported(producer, src))
    src[0, 0] = 42.0  # the Buffer sees the producer's memory, not a copy
    assert fjffi.from_buffer(buf)[0, 0] == 42.0
    dst = np.zeros((2, 3))
    negate(Exported(producer, src), AlwaysVersioned(producer, dst))
    np.testing.assert_array_equal(dst, -src)


@pytest.mark.parametrize("dtype", list(DL))
@pytest.mark.parametrize("shape", [(), (0,), (4, 0), (3,), (2, 3, 2)])
def test_every_dtype_and_shape_matches_numpy(producer, dtype, shape):
    rng = np.random.default_rng(0)
    src = (rng.integers(0, 2, shape) if dtype == "bool" else rng.integers(-50, 50, shape))
    src = src.astype(dtype)
    dst = np.ones(shape, dtype)
    fjffi.Call("ik_copy").invoke((Exported(producer, src),), (AlwaysVersioned(producer, dst),))
    assert dst.tobytes() == src.tobytes()


def test_byte_offset_and_strides(producer):
    base = np.arange(20.0)
    # Elements 4..9 through the byte offset.
    out = negate(Exported(producer, base, shape=(6,), offset=4 * 8), np.zeros(6))
    np.testing.assert_array_equal(out, -base[4:10])
    # Every other element (stride 2): not contiguous, so copied, and right.
    out = negate(Exported(producer, base, shape=(10,), strides=(2,)), np.zeros(10))
    np.testing.assert_array_equal(out, -base[::2])
    # A transposed view (strides in elements, row-major base 4x5).
    out = negate(Exported(producer, base, shape=(5, 4), strides=(1, 5)), np.zeros((5, 4)))
    np.testing.assert_array_equal(out, -base.reshape(4, 5).T)
    # Dense strides given explicitly, and strides of size-1 dimensions, are contiguous.
    buf = fjffi.to_buffer(Exported(producer, base, shape=(4, 1, 5), strides=(5, 99, 1)))
    base[1] = -7.0
    assert fjffi.from_buffer(buf)[0, 0, 1] == -7.0


def test_output_refusals_are_ffi_errors_and_leave_outputs_untouched(producer):
    x = np.arange(4.0)
    dst = np.full(4, 3.0)
    cases = [
        (AlwaysVersioned(producer, dst, flags=READ_ONLY), "read-only"),
        (Exported(producer, dst, versioned=False), "unversioned"),
        (AlwaysVersioned(producer, np.full(8, 3.0), shape=(4,), strides=(2,)), "C-contiguous"),
        (AlwaysVersioned(producer, dst, device=2), "cuda:0"),
    ]
    for out, words in cases:
        with pytest.raises(LayoutError, match=words):
            negate(x, out)
        np.testing.assert_array_equal(dst, 3.0)


def test_input_refusals_name_the_problem(producer):
    src, out = np.arange(4.0), np.zeros(4)
    with pytest.raises(LayoutError, match="on device cuda:0"):
        negate(Exported(producer, src, device=2), out)
    with pytest.raises(LayoutError, match="on device rocm:0"):
        negate(Exported(producer, src, device=10), out)
    with pytest.raises(UnsupportedDtypeError, match="lanes 2"):
        negate(Exported(producer, src, shape=(2,), lanes=2), out)
    with pytest.raises(UnsupportedDtypeError, match="bits 8"):
        negate(Exported(producer, src, dtype=(2, 8)), out)
    with pytest.raises(LayoutError, match="2.x"):
        negate(AlwaysVersioned(producer, src, major=2), out)
    with pytest.raises(LayoutError, match="negative dimension"):
        negate(Exported(producer, src, shape=(-1,)), out)

    class Broken:
        def __dlpack__(self, **kw):
            raise BufferError("cannot export")

    with pytest.raises(LayoutError, match="BufferError: cannot export"):
        negate(Broken(), out)
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.thread_unsafe(reason="counts on the producer library's process-wide export "
                                   "counters, which other threads' copies of this test bump")
def test_every_export_is_given_back_exactly_once(producer):
    before = producer.producer_deleted()
    src, dst = np.arange(3.0), np.zeros(3)
    n = 0
    for _ in range(5):
        negate(Exported(producer, src), AlwaysVersioned(producer, dst))
        n += 2
        with pytest.raises(FfiError):
            negate(Exported(producer, src), AlwaysVersioned(producer, dst, flags=READ_ONLY))
        n += 2
        with pytest.raises(FfiError):
            negate(Exported(producer, src, device=2), dst)
        n += 1
    buf = fjffi.to_buffer(Exported(producer, src))
    assert producer.producer_deleted() - before == n  # the Buffer still holds one
    del buf
    assert producer.producer_deleted() - before == n + 1


@pytest.mark.thread_unsafe(reason="the test producer counts fills and managed tensors process-wide")
def test_the_exchange_table_and_when_memory_is_pinned(producer, with_table, kernels):
    src, out = np.arange(4.0), np.zeros(4)

    def counts():
        return producer.producer_fills(), producer.producer_managed()

    f0, m0 = counts()
    negate(with_table(src), out)  # small, GIL held throughout: no allocation
    np.testing.assert_array_equal(out, -src)
    assert counts() == (f0 + 1, m0)
    reg = fjffi.Registry()
    reg.register("released", kernels.ik_negate_f64, api_version=1, gil="release")
    reg.register("serial", kernels.ik_negate_f64, api_version=1, thread_safe=False)
    reg.register_callback("cb", lambda x: -np.asarray(x))
    for name in ["released", "serial", "cb"]:  # other threads may run: memory held
        f1, m1 = counts()
        out[:] = 0
        fjffi.Call(name, reg).invoke((with_table(src),), (out,))
        np.testing.assert_array_equal(out, -src)
        assert counts()[1] == m1 + 1, name
    m2 = counts()[1]
    buf = fjffi.to_buffer(with_table(src))  # a Buffer outlives any call: held
    assert counts()[1] == m2 + 1
    del buf
    dst = np.zeros(4)
    negate(src, with_table(dst))  # an output always through the managed tensor
    np.testing.assert_array_equal(dst, -src)
    assert counts()[1] == m2 + 2


def test_bool_input_bytes_are_checked(producer):
    raw = np.array([0, 1, 2], np.uint8)
    with pytest.raises(fjffi.InvalidBoolByteError):
        fjffi.Call("ik_copy").invoke((Exported(producer, raw, dtype="bool"),),
                                     (np.zeros(3, bool),))


def test_numpy_through_its_own_dlpack():
    class OnlyDLPack:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

    src = np.arange(5.0)
    dst = np.zeros(5)
    negate(OnlyDLPack(src), OnlyDLPack(dst))
    np.testing.assert_array_equal(dst, -src)
    ro = np.zeros(5)
    ro.flags.writeable = False
    with pytest.raises(FfiError):
        negate(src, OnlyDLPack(ro))


# --- real producers ---------------------------------------------------------------


def test_torch_tensors_in_and_out():
    # torch is no test extra (on PyPI a GPU build of GBs); CI installs a CPU one.
    torch = pytest.importorskip("torch")
    for dtype in [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
                  torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
                  torch.complex64, torch.complex128]:
        for shape in [(), (0,), (3, 0), (4,), (2, 3, 2)]:
            src = (torch.arange(int(np.prod(shape)) or 0) % 3).reshape(shape).to(dtype)
            dst = torch.ones(shape, dtype=dtype)
            fjffi.Call("ik_copy").invoke((src,), (dst,))
            assert torch.equal(dst, src), (dtype, shape)
    t = torch.arange(6.0, dtype=torch.float64).reshape(2, 3)
    out = torch.zeros(3, 2, dtype=torch.float64)
    fjffi.Call("negate").invoke((t.T,), (out,))  # a strided input is copied
    assert torch.equal(out, -t.T)
    with pytest.raises(LayoutError, match="C-contiguous"):
        fjffi.Call("negate").invoke((t,), (torch.zeros(3, 2, dtype=torch.float64).T,))
    bf = torch.tensor([1.5, -2.0, 3.25], dtype=torch.bfloat16)
    buf = fjffi.to_buffer(bf)
    assert buf.dtype == "bfloat16"
    assert buf.tobytes() == bf.view(torch.int16).numpy().tobytes()
    import ml_dtypes

    (res,) = fjffi.call("ik_copy", [bf], [np.zeros(3, ml_dtypes.bfloat16)])
    assert res.view(np.uint16).tobytes() == bf.view(torch.int16).numpy().tobytes()


def test_jax_arrays_are_inputs_but_never_outputs():
    # jax is a test extra; only a free-threaded interpreter goes without it.
    jnp = pytest.importorskip("jax.numpy", reason="jax has no free-threaded build")

    src = jnp.arange(5, dtype=jnp.float32)
    out = np.zeros(5, np.float32)
    negate(src, out)
    np.testing.assert_array_equal(out, -np.arange(5, dtype=np.float32))
    (res,) = fjffi.call("negate", [src], [out])
    np.testing.assert_array_equal(res, out)
    # A jax array is immutable, and its DLPack does not say so: refused.
    with pytest.raises(LayoutError):
        negate(np.zeros(5, np.float32), jnp.zeros(5, jnp.float32))


def test_tvm_ffi_tensors_in_and_out():
    """tvm-ffi tensors (a test extra), as input and as a writable output, no copy."""
    tvm_ffi = pytest.importorskip("tvm_ffi", reason="apache-tvm-ffi has no free-threaded build")
    x, y = np.arange(5.0), np.zeros(5)
    tx, ty = tvm_ffi.from_dlpack(x), tvm_ffi.from_dlpack(y)
    fjffi.Call("negate").invoke((tx,), (ty,))
    np.testing.assert_array_equal(y, -x)  # written through the tensor's own memory
    (out,) = fjffi.call("negate", (tx,), (x,))
    np.testing.assert_array_equal(out, -x)
