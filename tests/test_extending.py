"""Other extensions registering their own kernels, tested the way a user
would: build a small consumer extension with meson in a temporary folder,
import it, and call its kernel through fjffi.

- tests/consumers/cython_consumer: `from fjffi cimport register_function`
- tests/consumers/c_consumer: PyCapsule_Import(FJFFI_C_API_CAPSULE)

Each build takes a few seconds (Cython, then the C compiler); the two run
at once, once per module.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import fjffi

# pytest-run-parallel runs a test on several threads at once: these tests
# register fixed names in one shared registry.
pytestmark = pytest.mark.thread_unsafe(reason="registers fixed names in a shared registry")

CONSUMERS = pathlib.Path(__file__).parent / "consumers"


def meson_command() -> list[str]:
    """meson, run by this Python when it has mesonbuild (the test extras)."""
    try:
        import mesonbuild  # noqa: F401
    except ImportError:
        return [shutil.which("meson") or "meson"]
    return [sys.executable, "-m", "mesonbuild.mesonmain"]


def start_build(source: pathlib.Path, build: pathlib.Path) -> subprocess.Popen:
    """meson setup + compile of source into build, in the background.

    A native file names this Python, so the consumer is built for (and
    finds fjffi in) the interpreter running the tests.
    """
    build.mkdir(parents=True)
    native = build.parent / f"{build.name}-native.ini"
    native.write_text(f"[binaries]\npython = '{sys.executable}'\n")
    env = dict(os.environ)
    # The test extras install ninja and cython next to this Python.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    meson = " ".join(map(str, meson_command()))
    script = (f"{meson} setup --native-file {native} {build} {source} && "
              f"{meson} compile -C {build}")
    return subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def import_from(build: pathlib.Path, name: str):
    sys.path.insert(0, str(build))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(build))


@pytest.fixture(scope="module")
def consumers(tmp_path_factory):
    """{name: imported module} for each consumer, built from tests/consumers."""
    root = tmp_path_factory.mktemp("consumers")
    names = ("cython_consumer", "c_consumer")
    builds = {name: start_build(CONSUMERS / name, root / name) for name in names}
    for name, proc in builds.items():
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"building {name} failed:\n{log}"
    return {name: import_from(root / name, name) for name in names}


@pytest.fixture
def reg():
    return fjffi.Registry()


def test_the_package_ships_its_cimport_api_and_header():
    package = pathlib.Path(fjffi.__file__).parent
    for path in ("__init__.pxd", "_core.pxd"):
        assert (package / path).is_file()
    assert (pathlib.Path(fjffi.get_include()) / "fjffi.h").is_file()


# --- Cython ------------------------------------------------------------------

def test_cython_kernel_registers_through_cimport_and_runs(consumers, reg):
    consumers["cython_consumer"].register(reg, "axpy")
    record = reg.get("axpy")
    assert (record.name, record.kind, record.api_version) == ("axpy", "cython", 1)
    assert (record.gil, record.thread_safe, record.flavor) == ("release", True, None)
    rng = np.random.default_rng(0)
    for shape in [(), (0,), (5,), (3, 4)]:
        x, y = rng.standard_normal(shape), rng.standard_normal(shape)
        (out,) = fjffi.call("axpy", (2.5, x, y), (x,), registry=reg)
        assert np.array_equal(out, 2.5 * x + y)


def test_cython_kernel_reports_its_message(consumers, reg):
    consumers["cython_consumer"].register(reg, "axpy")
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.call("axpy", (2.0, np.ones(3)), (np.empty(3),), registry=reg)
    assert (info.value.target, info.value.code) == ("axpy", 1)
    assert info.value.message == "axpy: expected 3 inputs (a, x, y) and 1 output"
    with pytest.raises(fjffi.CallFailedError, match="every input must be float64"):
        fjffi.call("axpy", (2.0, np.ones(3, np.float32), np.ones(3)), (np.empty(3),),
                   registry=reg)


def test_cython_registration_refusals(consumers, reg):
    module = consumers["cython_consumer"]
    module.register(reg, "axpy")
    with pytest.raises(fjffi.DuplicateTargetError):
        module.register(reg, "axpy")
    with pytest.raises(TypeError, match="Registry"):
        module.register(object(), "axpy2")
    with pytest.raises(ValueError, match="gil"):
        module.register(reg, "axpy3", gil="sometimes")
    assert reg.names() == ["axpy"]


def test_cython_kernel_in_the_default_registry(consumers):
    name = "test_extending.cython_axpy"
    consumers["cython_consumer"].register(None, name)
    assert fjffi.default_registry.get(name).kind == "cython" and name in fjffi.targets()
    (out,) = fjffi.call(name, (1.0, np.arange(3.0), np.arange(3.0)), (np.empty(3),))
    assert out.tolist() == [0.0, 2.0, 4.0]


def test_cython_kernel_from_many_threads_matches_serial(consumers, reg):
    consumers["cython_consumer"].register(reg, "axpy")
    x = np.arange(100_000.0)
    expected = [fjffi.call("axpy", (float(i), x, x), (x,), registry=reg)[0] for i in range(8)]
    results = [None] * 8

    def work(i):
        results[i] = fjffi.call("axpy", (float(i), x, x), (x,), registry=reg)[0]

    pool = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert all(np.array_equal(r, e) for r, e in zip(results, expected, strict=True))
    assert np.array_equal(expected[3], 4.0 * x)


# --- plain C through the capsule --------------------------------------------

def test_c_kernel_registers_through_the_capsule_and_runs(consumers, reg):
    consumers["c_consumer"].register(reg, "abs")
    record = reg.get("abs")
    assert (record.name, record.kind, record.api_version) == ("abs", "foreign", 1)
    assert (record.gil, record.thread_safe, record.flavor) == ("release", True, None)
    x = np.array([[-3, 0], [7, -(2**62)]], np.int64)
    (out,) = fjffi.call("abs", (x,), (x,), registry=reg)
    assert np.array_equal(out, np.abs(x))


def test_c_kernel_reports_its_message(consumers, reg):
    consumers["c_consumer"].register(reg, "abs")
    with pytest.raises(fjffi.CallFailedError) as info:
        fjffi.call("abs", (np.ones(2),), (np.empty(2),), registry=reg)
    assert (info.value.code, info.value.message) == (2, "abs_i64: int64 in and out, one shape")


def test_c_registration_refusals(consumers, reg):
    module = consumers["c_consumer"]
    module.register(reg, "abs")
    with pytest.raises(fjffi.DuplicateTargetError) as info:
        module.register(reg, "abs")
    assert info.value.name == "abs"
    with pytest.raises(TypeError, match="must be a fjffi.Registry"):
        module.register(object(), "abs2")
    assert reg.names() == ["abs"]


def test_c_kernel_in_the_default_registry(consumers):
    name = "test_extending.c_abs"
    consumers["c_consumer"].register(name=name)
    assert fjffi.default_registry.get(name).kind == "foreign"
    assert fjffi.call(name, (np.int64(-9),), (np.empty((), np.int64),))[0] == 9


def test_c_api_capsule_is_named_as_the_header_says():
    capsule = fjffi._core._C_API
    assert type(capsule).__name__ == "PyCapsule"
    assert "fjffi._core._C_API" in repr(capsule)
