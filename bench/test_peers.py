"""fjffi against its peers: noop, scalar float64 double and 1000-element
float64 negate through fjffi, the floor (fjffi._floor), cffi API and ABI
mode, ctypes and numpy, one benchmark group per call.  The same
comparison, with ratios, thread scaling and the rest, is
`python bench/compare.py`; the routes live in bench/peers.py.
"""

import peers
import pytest

from fjffi._seedbench import label

CASES, MISSING = peers.peer_cases()

# Calls take tens of ns: rounds of at least 0.2 ms keep the clock's resolution out of the figures.
pytestmark = pytest.mark.benchmark(min_time=0.0002, max_time=0.5, warmup=True)
PARAMS = [pytest.param(key, id=label(key)) for key in CASES] + [
    pytest.param((None, route), id=route, marks=pytest.mark.skip(reason=f"{route}: {why}"))
    for route, why in MISSING.items()
]


@pytest.mark.parametrize("key", PARAMS)
def test_peer(benchmark, key):
    call, route = key
    case = CASES[key]
    benchmark.name = f"{call}/{route}"
    benchmark.group = f"{call}: {peers.CALL_DOCS[call]}"
    benchmark(case.fn, *case.args, **case.kwargs)
    case.verify()
