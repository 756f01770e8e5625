"""fjffi.dask on a real distributed.LocalCluster with worker processes.

The kernels are real C (tests/kernels/isolate_kernels.c) compiled here; the
workers are separate processes that start with nothing registered, so
every kernel reaches them as a KernelSpec.
"""

import ctypes
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from test_targets import compile_shared

import fjffi

pytestmark = pytest.mark.thread_unsafe(reason="one cluster for the module")

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
import fjffi.dask  # noqa: E402 - only once dask and distributed are known to import

KERNELS_C = pathlib.Path(__file__).parent / "kernels" / "isolate_kernels.c"
WAIT = 120  # seconds: any result later than this is a failure, not a hang


@pytest.fixture(scope="module")
def lib_path(tmp_path_factory):
    return compile_shared(KERNELS_C, tmp_path_factory.mktemp("dask") / "libdask_kernels.so")


@pytest.fixture(scope="module")
def lib(lib_path):
    return ctypes.CDLL(str(lib_path))


@pytest.fixture(scope="module")
def client():
    with (distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                   dashboard_address=None) as cluster,
          distributed.Client(cluster) as client):
        client.wait_for_workers(2, timeout=WAIT)
        yield client


def register_once(name, fn, **options):
    if name not in fjffi.default_registry:
        fjffi.register(name, fn, api_version=1, **options)


def compute(client, array):
    return client.compute(array).result(timeout=WAIT)


def test_map_blocks_matches_numpy_in_worker_processes(client, lib):
    register_once("dask_negate", lib.iso_negate, gil="release")
    x = np.random.default_rng(1).standard_normal((1000, 30))
    dx = da.from_array(x, chunks=(125, 30))
    y = fjffi.dask.map_blocks("dask_negate", dx, results=np.float64)
    assert y.dtype == np.float64 and y.chunks == dx.chunks
    assert np.array_equal(compute(client, y), np.negative(x))
    # The workers had nothing registered: each task carried the spec.
    held = client.run(lambda: "dask_negate" in fjffi.default_registry)
    assert len(held) == 2 and any(held.values())


def test_several_outputs_from_a_callback_spec(client):
    # np.divmod pickles by reference, so its callback spec replays in workers.
    if "dask_divmod" not in fjffi.default_registry:
        fjffi.register_callback("dask_divmod", np.divmod)
    x, d = np.arange(40.0), np.full(40, 7.0)
    q, r = fjffi.dask.map_blocks("dask_divmod", da.from_array(x, chunks=10),
                                 da.from_array(d, chunks=10), results=[np.float64, np.float64])
    assert np.array_equal(compute(client, q), x // 7) and np.array_equal(compute(client, r), x % 7)


def test_a_failing_kernel_reaches_the_client_with_its_fields(client, lib):
    register_once("dask_fail", lib.iso_fail)
    y = fjffi.dask.map_blocks("dask_fail", da.ones(8, chunks=4), results=np.float64)
    with pytest.raises(fjffi.CallFailedError) as info:
        compute(client, y)
    err = info.value
    assert type(err) is fjffi.CallFailedError
    assert (err.target, err.code, err.message) == ("dask_fail", 7, "iso_fail: refused on purpose")


def test_a_worker_without_the_library_says_what_to_do(client, lib_path, tmp_path):
    gone = tmp_path / "libgone.so"
    spec = fjffi.KernelSpec.for_library("dask_gone", gone, "iso_negate", api_version=1)
    y = fjffi.dask.map_blocks("dask_gone", da.ones(4, chunks=4), results=np.float64,
                              specs=[spec])
    with pytest.raises(OSError, match="cannot register 'dask_gone'.*ship_libraries=True"):
        compute(client, y)


def test_plugin_ships_the_library_and_reaches_workers_that_join_later(client, lib_path,
                                                                       tmp_path):
    # A copy that exists only while the plugin is made: the workers must
    # load the bytes the plugin shipped.
    private = tmp_path / "libshipped.so"
    shutil.copy(lib_path, private)
    spec = fjffi.KernelSpec.for_library("dask_shipped", private, "iso_negate", api_version=1)
    client.register_plugin(fjffi.dask.RegisterSpecs([spec], ship_libraries=True))
    private.unlink()

    def where():
        return fjffi.spec("dask_shipped").path

    paths = client.run(where)
    assert len(paths) == 2
    assert all("fjffi-libraries" in p and p.endswith("libshipped.so") for p in paths.values())
    cluster = client.cluster
    cluster.scale(3)
    try:
        client.wait_for_workers(3, timeout=WAIT)
        assert len(client.run(where)) == 3
        x = np.arange(12.0)
        y = fjffi.dask.map_blocks("dask_shipped", da.from_array(x, chunks=4),
                                  results=np.float64, specs=[spec])
        assert np.array_equal(compute(client, y), -x)
    finally:
        cluster.scale(2)


def test_a_long_hold_call_in_a_worker_warns_once(client, lib):
    register_once("dask_slow_hold", lib.iso_slow_copy, gil="hold")
    x = np.arange(6.0)
    y = fjffi.dask.map_blocks("dask_slow_hold", da.from_array(x, chunks=3), results=np.float64)
    assert np.array_equal(compute(client, y), x)
    warned = client.run(lambda: sorted(fjffi.dask.warned_hold))
    assert any("dask_slow_hold" in names for names in warned.values())


def test_fjffi_dask_imports_without_dask_and_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None; "
            "import fjffi.dask\n"
            "try:\n    fjffi.dask.map_blocks('negate', [1.0], results='f8')\n"
            "except ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=tmp_path,
                         capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 0, out.stderr
    assert "pip install 'dask[array]' distributed" in out.stdout
