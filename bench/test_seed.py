"""The seed's eight benchmarks (FJ-P2C-007, benches/ffi_baseline.rs), under
the seed's names.  Each does the work of its criterion counterpart; the cases
live in fjffi._seedbench, which `python -m fjffi` times too.  The seed's v1
figures ride along in each benchmark's extra_info (--benchmark-json).
"""

import numpy as np
import pytest

import fjffi
from fjffi import _seedbench

CASES = _seedbench.seed_cases()

# Calls take tens of ns: rounds of at least 0.2 ms keep the clock's resolution out of the figures.
pytestmark = pytest.mark.benchmark(min_time=0.0002, max_time=0.5, warmup=True)


@pytest.mark.parametrize(("name", "seed_ns"), _seedbench.SEED,
                         ids=[name for name, _ in _seedbench.SEED])
def test_seed(benchmark, name, seed_ns):
    case = CASES[name]
    benchmark.name = name
    benchmark.group = "seed"
    benchmark.extra_info.update(seed_v1_ns=seed_ns)
    benchmark(case.fn, *case.args, **case.kwargs)
    case.verify()


def test_1k_list_to_buffer(benchmark):
    """marshal/1k_tensor_to_buffer from a list of 1000 Python floats: like the
    seed's Vec<Literal>, every element is an object to convert and copy (the
    seed-named benchmark marshals an ndarray, fjffi's own tensor value)."""
    values = [float(i) for i in range(1000)]
    benchmark.name = "marshal/1k_list_to_buffer"
    benchmark.group = "seed, variants"
    buf = benchmark(fjffi.to_buffer, values)
    assert (np.asarray(buf) == np.arange(1000.0)).all()
