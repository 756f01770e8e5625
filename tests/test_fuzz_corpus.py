"""The kept fuzz corpus, replayed through the fuzz harness as an ordinary
test: every input must end in a documented outcome (see fuzz/fuzz_fjffi.py)."""

import importlib.util
import pathlib

import numpy as np
import pytest

FUZZ = pathlib.Path(__file__).resolve().parent.parent / "fuzz"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("fuzz_fjffi", FUZZ / "fuzz_fjffi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def corpus():
    return sorted((FUZZ / "corpus").iterdir())


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.name)
def test_corpus_input_ends_in_a_documented_outcome(harness, path):
    harness.one_input(path.read_bytes())


def test_corpus_is_small_and_reaches_every_operation(harness):
    paths = corpus()
    assert 0 < len(paths) <= 60 and all(p.stat().st_size <= 400 for p in paths)
    reached = {harness.outcome(p.read_bytes()).split()[0] for p in paths}
    assert reached == {op.__name__ for op in harness.OPERATIONS}


def test_harness_oracle_rejects_wrong_results(harness):
    """The replay can fail: results that break a kernel's contract are findings."""
    x = np.arange(3.0)
    harness.check_results("negate", [x], [-x])
    for name, inputs, outputs in [("negate", [x], [x]), ("noop", [], [np.ones(2)]),
                                  ("write_one_byte_ok", [], [np.zeros(2, dtype=np.uint8)])]:
        with pytest.raises(harness.Finding):
            harness.check_results(name, inputs, outputs)
