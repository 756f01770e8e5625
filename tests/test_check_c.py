"""The C validation primitives (src/fjffi/src/check.c), tested in C: the
unit test tests/c/test_check.c is compiled with gcc, under ASan and UBSan
when the compiler has them, and run."""

import os
import pathlib
import shutil
import subprocess

import pytest

# Compiling into shared paths from several threads would race, and copies
# of a C program run on four threads add only time.
pytestmark = pytest.mark.thread_unsafe(reason="builds and runs C programs in shared folders")

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "fjffi"


def clean_env():
    """The test's own sanitizer settings, not those of a sanitized pytest."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def sanitizer_flags(cc, folder):
    """-fsanitize=address,undefined when cc builds and runs such a program."""
    flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    probe = folder / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    built = subprocess.run([cc, *flags, str(probe), "-o", str(folder / "probe")],
                           capture_output=True, env=clean_env(), check=False)
    if built.returncode == 0 and subprocess.run([str(folder / "probe")], env=clean_env(),
                                                capture_output=True, check=False).returncode == 0:
        return flags
    return []


@pytest.fixture(scope="module")
def compiler():
    cc = shutil.which("gcc")
    if cc is None:
        pytest.fail("gcc is needed to build the C tests")
    return cc


def test_check_primitives_in_c(compiler, tmp_path):
    exe = tmp_path / "test_check"
    subprocess.run([compiler, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
                    *sanitizer_flags(compiler, tmp_path),
                    f"-I{SRC / 'include'}", f"-I{SRC / 'src'}",
                    str(ROOT / "tests" / "c" / "test_check.c"), str(SRC / "src" / "check.c"),
                    "-o", str(exe)], check=True, env=clean_env())
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, env=clean_env(),
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 failed" in run.stdout and run.stderr == "", run.stdout + run.stderr
