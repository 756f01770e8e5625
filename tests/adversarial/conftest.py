"""Shared setup of the adversarial suite: the C kernels it needs, compiled
once per session (see helpers.py for the child-interpreter runner)."""

import os
import shutil
import subprocess

import pytest

import fjffi

from .helpers import ADV_KERNELS_C, USER_KERNELS_C


@pytest.fixture(scope="session")
def kernels_lib(tmp_path_factory) -> str:
    """tests/kernels/user_kernels.c and adv_kernels.c in one shared library."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    out = tmp_path_factory.mktemp("adv_kernels") / "libadv_kernels.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-std=gnu11",
         "-I", fjffi.get_include(), str(USER_KERNELS_C), str(ADV_KERNELS_C), "-o", str(out)],
        check=True, capture_output=True, text=True,
    )
    return str(out)
