"""What ships and how it presents itself: signatures, stubs, one version,
no internal symbol leaving the extension."""

import importlib.metadata
import inspect
import pathlib
import shutil
import subprocess

import pytest

import fjffi

PACKAGE = pathlib.Path(fjffi.__file__).resolve().parent


@pytest.mark.parametrize("cls, params", [
    (fjffi.Call, ["name", "registry", "guard"]),
    (fjffi.Buffer, ["data", "shape", "dtype"]),
    (fjffi.Registry, []),
])
def test_classes_have_signatures_and_say_how_they_behave_in_threads(cls, params):
    assert list(inspect.signature(cls).parameters) == params
    assert "Thread safety:" in cls.__doc__


def test_typing_ships():
    assert (PACKAGE / "py.typed").exists()
    stub = (PACKAGE / "_core.pyi").read_text()
    for name in ("class Call", "class Buffer", "class Registry", "def call(", "def to_buffer("):
        assert name in stub


def test_one_version():
    assert fjffi.__version__ == importlib.metadata.version("fjffi")


def test_headers_and_declarations_ship():
    assert (pathlib.Path(fjffi.get_include()) / "fjffi.h").exists()
    for pxd in ("_core.pxd", "_abi.pxd", "__init__.pxd"):
        assert (PACKAGE / pxd).exists()


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm (binutils)")
def test_core_exports_only_its_module_init():
    (core,) = PACKAGE.glob("_core*.so")
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(core)], check=True,
                             capture_output=True, text=True).stdout.split("\n")
    names = {line.split()[-1] for line in symbols if line.strip()}
    assert names == {"PyInit__core"}, sorted(names)[:20]
