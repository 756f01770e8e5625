"""The kept corpus of the C fuzz targets (fuzz/c/), replayed without
libFuzzer or clang: each target is compiled with gcc (under ASan and UBSan
when gcc has them) and fuzz/c/replay.c as its main(), then fed every input
of fuzz/c/corpus/<target>/ once.  A failed check aborts the replay, a
sanitizer report stops it: either fails the test."""

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
FUZZ_C = ROOT / "fuzz" / "c"
MAX_INPUTS = 200  # per target: the corpus is minimised, not a dump
MAX_LEN = 4096  # run.sh's -max_len


def targets():
    """name -> C sources, from fuzz/c/targets.txt (what build.sh builds)."""
    table = {}
    for line in (FUZZ_C / "targets.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, *sources = line.split()
            table[name] = [ROOT / s for s in sources]
    return table


TARGETS = targets()


def clean_env():
    """The test's own sanitizer settings, not those of a sanitized pytest."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """build(name, *defines) -> the path of target name compiled for replay."""
    cc = shutil.which("gcc")
    if cc is None:
        pytest.fail("gcc is needed to replay the C fuzz corpus")
    folder = tmp_path_factory.mktemp("cfuzz")
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    probe = folder / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    if subprocess.run([cc, *sanitize, str(probe), "-o", str(folder / "probe")],
                      capture_output=True, env=clean_env(), check=False).returncode != 0 or \
            subprocess.run([str(folder / "probe")], capture_output=True,
                           env=clean_env(), check=False).returncode != 0:
        sanitize = []
    built = {}

    def compile_target(name, *defines):
        key = (name, defines)
        if key not in built:
            exe = folder / f"{name}{len(built)}"
            subprocess.run([cc, "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
                            "-pthread", *sanitize, *defines,
                            *(f"-I{d}" for d in (SRC / "include", SRC / "src",
                                                 SRC / "kernels", FUZZ_C)),
                            *map(str, TARGETS[name]), str(FUZZ_C / "replay.c"), "-lm",
                            "-o", str(exe)], check=True, env=clean_env())
            built[key] = exe
        return built[key]

    return compile_target


def replay(exe, *paths):
    return subprocess.run([str(exe), *map(str, paths)], capture_output=True, text=True,
                          timeout=300, env=clean_env(), check=False)


def corpus(name):
    return sorted((FUZZ_C / "corpus" / name).iterdir())


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_corpus_replays_clean(build, name):
    inputs = corpus(name)
    run = replay(build(name), FUZZ_C / "corpus" / name)
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    assert f"replayed {len(inputs)} inputs" in run.stdout
    assert "runtime error" not in run.stderr and "Sanitizer" not in run.stderr, run.stderr


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_corpus_is_kept_small(name):
    inputs = corpus(name)
    assert 0 < len(inputs) <= MAX_INPUTS
    assert all(p.stat().st_size <= MAX_LEN for p in inputs)


def test_the_replay_catches_a_wrong_answer(build):
    """The harness is an oracle, not a smoke test: registry_hash checked
    against FNV-1a with another offset basis must fail on the corpus."""
    run = replay(build("registry", "-DFNV_OFFSET_BASIS=0"), FUZZ_C / "corpus" / "registry")
    assert run.returncode != 0
    assert "check failed: registry_hash" in run.stderr

