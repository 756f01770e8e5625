"""fjffi.dask.map_blocks against numpy through dask, in one run:

    python bench/bench_dask.py [--rounds R] [--mib 200] [--chunk-mib 8]

A float64 array of 200 MiB in 8 MiB chunks is made and kept in the memory
of 2 local worker processes (1 thread each); each case maps one function
over its blocks and keeps the result in the workers (persist), so nothing
but the map is timed: fjffi's built-in negate, np.negative, and the
identity (dask's own cost per block, the floor).  Best of R rounds.
"""

import argparse
import sys
import time

import numpy as np


def identity(block):
    return block


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--mib", type=int, default=200)
    p.add_argument("--chunk-mib", type=int, default=8)
    args = p.parse_args(argv)

    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import fjffi.dask

    n, chunk = (args.mib << 20) // 8, (args.chunk_mib << 20) // 8
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster):
        x = da.random.random(n, chunks=chunk).persist()
        wait(x)
        cases = {
            "fjffi negate": lambda: fjffi.dask.map_blocks("negate", x, results=np.float64),
            "np.negative": lambda: x.map_blocks(np.negative, dtype=np.float64),
            "identity (floor)": lambda: x.map_blocks(identity, dtype=np.float64),
        }
        best = {}
        for _ in range(args.rounds):
            for label, make in cases.items():
                y = make()
                start = time.perf_counter()
                y = y.persist()
                wait(y)
                elapsed = time.perf_counter() - start
                del y
                best[label] = min(best.get(label, float("inf")), elapsed)
        check = fjffi.dask.map_blocks("negate", x[:1000], results=np.float64).compute()
        assert np.array_equal(check, -x[:1000].compute())

    gib = args.mib / 1024
    print(f"{args.mib} MiB in {args.chunk_mib} MiB chunks, 2 workers x 1 thread")
    print(f"{'case':<20}{'time':>10}{'GiB/s':>9}{'vs np':>8}")
    for label, t in best.items():
        ratio = best["np.negative"] / t
        print(f"{label:<20}{t * 1e3:>8.1f}ms{gib / t:>9.2f}{ratio:>7.2f}x")
    print("goal: fjffi negate >= 0.95x np.negative")
    return 0


if __name__ == "__main__":
    sys.exit(main())
