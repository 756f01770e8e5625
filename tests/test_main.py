"""`python -m fjffi` and `python bench/compare.py` as a user runs them, each in
a subprocess: what the main job prints and how both refuse bad arguments.

bench/ is not installed: compare.py is run as a script from the source
checkout, with this interpreter (whose fjffi is the installed one)."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

import fjffi

# Each test is a subprocess writing to fixed paths in its tmp_path: copies run
# in parallel threads would race on those files and only multiply the load.
pytestmark = pytest.mark.thread_unsafe(reason="subprocesses writing fixed paths")

SOURCE_TREE = pathlib.Path(__file__).resolve().parent.parent
COMPARE = SOURCE_TREE / "bench" / "compare.py"
SEED_NAMES = [
    "ffi_roundtrip/scalar_f64", "ffi_roundtrip/noop", "ffi_roundtrip/1k_f64_vec",
    "marshal/scalar_to_buffer", "marshal/buffer_to_scalar", "marshal/1k_tensor_to_buffer",
    "marshal/1k_buffer_to_tensor", "registry/lookup",
]


def run(*args, cwd=None, timeout=120):
    # Outside the source tree, so that `-m fjffi` finds the installed package.
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          check=False,
                          timeout=timeout, cwd=cwd or pathlib.Path(fjffi.__file__).parent.parent)


def fjffi_main(*args, **kwargs):
    return run("-m", "fjffi", *args, **kwargs)


def compare(*args):
    return run(COMPARE, *args, cwd=SOURCE_TREE)


@pytest.fixture(scope="module")
def quick_run():
    return fjffi_main("--quick")


def test_main_job_exits_0_with_self_check_and_seed_table(quick_run):
    out = quick_run.stdout
    assert quick_run.returncode == 0, quick_run.stderr
    assert out.startswith(f"fjffi {fjffi.__version__} ")
    assert "Self-check of the built-in kernels against numpy:" in out
    for name in ("noop", "copy", "double_f64", "fail", "negate", "add", "multiply", "sum"):
        assert f"\n  {name:<12} ok\n" in out
    assert "seed v1" in out and "fjffi/v1" in out
    for name in SEED_NAMES:
        assert f"\n  {name} " in out


def test_main_job_shows_the_load_and_no_verdict_on_figures(quick_run):
    out = quick_run.stdout
    if hasattr(os, "getloadavg"):
        assert "load average " in out.splitlines()[0]
    assert "(1/5/15 min) on" in out or "load average not available" in out
    assert "depend on this machine and on\n  its load" in out
    assert "FAIL" not in out and "PASS" not in out
    # Of the project alone: no issue numbers, no goals of a tracker.
    assert "issue" not in out.lower() and "Goals" not in out


def test_each_seed_figure_is_shown_against_v1(quick_run):
    rows = {line.split()[0]: line.split() for line in quick_run.stdout.splitlines()
            if line.strip().split(" ")[0] in SEED_NAMES}
    assert sorted(rows) == sorted(SEED_NAMES)
    for fields in rows.values():
        # name, fjffi figure and unit, v1 figure and unit, ratio
        assert len(fields) == 6 and fields[-1].endswith("x"), fields
        # A figure is net of the timing loop, so on a loaded machine it may
        # come out at or below 0: it must be a number, not a sign.
        assert math.isfinite(float(fields[-1][:-1])), fields


def test_no_bench_skips_the_timing():
    done = fjffi_main("--no-bench")
    assert done.returncode == 0, done.stderr
    assert "Self-check" in done.stdout and "seed v1" not in done.stdout


def test_json_written_with_the_seed_figures(tmp_path):
    path = tmp_path / "main.json"
    done = fjffi_main("--quick", "--rounds", "1", "--json", path)
    assert done.returncode == 0, done.stderr
    report = json.loads(path.read_text())
    assert set(report["self_check"].values()) == {"ok"}
    assert [r["name"] for r in report["seed"]] == SEED_NAMES
    assert all(math.isfinite(r["median_ns"]) and r["seed_v1_ns"] > 0 for r in report["seed"])


def test_help():
    done = fjffi_main("--help")
    assert done.returncode == 0, done.stderr
    for option in ("--no-bench", "--quick", "--rounds", "--json", "bench", "load"):
        assert option in done.stdout
    assert "bench/compare.py" in done.stdout


@pytest.mark.parametrize("extra", [(), ("--quick", "--rounds", "3")])
def test_bench_command_says_where_the_comparison_is(extra):
    done = fjffi_main("bench", *extra)
    assert done.returncode == 0, done.stderr
    assert f"python bench/compare.py{''.join(' ' + a for a in extra)}\n" in done.stdout


def unwritable_paths(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    return {"missing directory": tmp_path / "missing" / "out.json",
            "parent is a file": a_file / "out.json",
            "a directory": tmp_path}


BAD_ROUNDS = ["0", "-1", "x", "1.5"]


@pytest.mark.parametrize("rounds", BAD_ROUNDS)
def test_main_refuses_bad_rounds(rounds):
    done = fjffi_main("--rounds", rounds)
    assert done.returncode == 2
    assert f"argument --rounds: must be an integer >= 1, got '{rounds}'" in done.stderr
    assert done.stdout == ""  # refused before anything ran


@pytest.mark.parametrize("case", ["missing directory", "parent is a file", "a directory"])
def test_main_refuses_unwritable_json_up_front(tmp_path, case):
    path = unwritable_paths(tmp_path)[case]
    done = fjffi_main("--json", path)
    assert done.returncode == 2
    assert f"argument --json: cannot write '{path}'" in done.stderr
    assert done.stdout == ""


def test_json_check_leaves_no_file_behind_when_refused_later(tmp_path):
    # --json is checked by writing; a run refused afterwards must not leave it.
    path = tmp_path / "out.json"
    done = fjffi_main("--json", path, "--rounds", "0")
    assert done.returncode == 2
    assert not path.exists()


def test_unknown_argument_refused():
    done = fjffi_main("--frobnicate")
    assert done.returncode == 2 and "unrecognized arguments: --frobnicate" in done.stderr


# --- bench/compare.py, run as a script from the checkout -----------------------------


def test_compare_help():
    done = compare("--help")
    assert done.returncode == 0, done.stderr
    for option in ("--rounds", "--json", "--quick", "--only"):
        assert option in done.stdout


@pytest.mark.parametrize("rounds", BAD_ROUNDS)
def test_compare_refuses_bad_rounds(rounds):
    done = compare("--rounds", rounds)
    assert done.returncode == 2
    assert f"argument --rounds: must be an integer >= 1, got '{rounds}'" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("case", ["missing directory", "parent is a file", "a directory"])
def test_compare_refuses_unwritable_json_up_front(tmp_path, case):
    path = unwritable_paths(tmp_path)[case]
    done = compare("--json", path)
    assert done.returncode == 2
    assert f"argument --json: cannot write '{path}'" in done.stderr
    assert done.stdout == ""


def test_compare_runs_one_quick_section(tmp_path):
    path = tmp_path / "compare.json"
    done = compare("--quick", "--rounds", "1", "--only", "to_buffer", "--json", path)
    assert done.returncode == 0, done.stderr
    assert "depends on this machine and its load" in done.stdout
    assert "to_buffer of a contiguous float64 array" in done.stdout
    assert "issue" not in done.stdout.lower()
    report = json.loads(path.read_text())
    assert math.isfinite(report["to_buffer"]["1k_ns"])
