"""The peer comparison and the other figures of `python -m fjffi bench`, as a
script, with a choice of sections:

    python bench/peers.py [--rounds N] [--json PATH] [--quick] [--only SECTION ...]

Sections: peers (the table of routes and ratios to the floor), threads (2
threads vs 1), registry (lookup at 10 to 100,000 targets), allocation
(tracemalloc over 10^6 invokes), to_buffer (1k vs 10M elements), gil (the
cost of releasing the GIL by size).
"""

import argparse
import sys

from fjffi import _bench


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="rounds per route (default 7)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    p.add_argument("--only", nargs="+", choices=_bench.SECTIONS, default=_bench.SECTIONS,
                   metavar="SECTION", help=f"sections to run: {', '.join(_bench.SECTIONS)}")
    args = p.parse_args(argv)
    return _bench.main(rounds=args.rounds, json_path=args.json, quick=args.quick,
                       sections=args.only)


if __name__ == "__main__":
    sys.exit(main())
