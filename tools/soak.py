"""Soak: a million calls through fjffi's success and failure paths, checking
that memory does not grow with the number of calls.

Each round runs every operation below once, in turn; a failing operation
must raise exactly its error and leave its outputs as the contract says.
After a warm-up the resident set size (VmRSS of /proc/self/status) and the
memory traced by tracemalloc are taken, and taken again at the end.  Growth
beyond either bound is a leak: exit status 1.  C allocations (Buffer.zeros,
guard-mode shadows, the registry) show in the RSS; Python objects and numpy
arrays show in tracemalloc.

    python tools/soak.py [--calls N] [--warmup N]
"""

import argparse
import gc
import sys
import time
import tracemalloc

import numpy as np

import fjffi


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def expect(error, fn, *args):
    try:
        fn(*args)
    except error:
        return
    raise AssertionError(f"{fn} did not raise {error.__name__}")


def operations():
    """(name, function) pairs; each function is one call and checks its result."""
    registry = fjffi.Registry()
    registry.register_builtins()
    registry.register_callback("cb_negate", lambda a: -a)
    registry.register_callback("cb_raise", lambda a: 1 / 0)

    x = np.linspace(-1.0, 1.0, 16)
    out = np.empty(16)
    readonly = np.empty(16)
    readonly.flags.writeable = False
    bad_bool = np.array([0, 1, 2], dtype=np.uint8).view(np.bool_)
    many = tuple(np.zeros(1) for _ in range(12))  # more than fit the stack frame
    many_out = tuple(np.empty(1) for _ in range(12))

    noop = fjffi.Call("noop", registry)
    negate = fjffi.Call("negate", registry)
    guarded = fjffi.Call("negate", registry, guard=True)
    fail = fjffi.Call("fail", registry)
    missing = fjffi.Call("not_registered", registry)
    cb_negate = fjffi.Call("cb_negate", registry)
    cb_raise = fjffi.Call("cb_raise", registry)

    def negate_ok():
        negate.invoke((x,), (out,))
        assert out[0] == 1.0 and out[-1] == -1.0

    def guarded_ok():
        guarded.invoke((x,), (out,))
        assert out[0] == 1.0

    def kernel_fails():
        out[:] = 5.0
        expect(fjffi.CallFailedError, fail.invoke, (x,), (out,))
        assert not out.any()

    def kernel_fails_with_message():
        # negate refuses an output of the wrong shape, with a message.
        expect(fjffi.CallFailedError, negate.invoke, (x,), (many_out[0],))

    def callback_ok():
        cb_negate.invoke((x,), (out,))
        assert out[0] == 1.0

    def round_trip():
        buf = fjffi.to_buffer(x)
        assert fjffi.from_buffer(buf)[3] == x[3]
        assert fjffi.from_buffer(fjffi.Buffer.zeros((4, 4), "int32")).sum() == 0

    return [
        ("noop", lambda: noop.invoke((x,), (out,))),
        ("noop, 12 inputs and 12 outputs", lambda: noop.invoke(many, many_out)),
        ("negate", negate_ok),
        ("negate in guard mode", guarded_ok),
        ("call() allocating its output",
         lambda: fjffi.call("add", (x, x), (x,), registry=registry)),
        ("to_buffer / from_buffer / Buffer.zeros", round_trip),
        ("python callback", callback_ok),
        ("CallFailedError", kernel_fails),
        ("CallFailedError with a message", kernel_fails_with_message),
        ("CallFailedError from a raising callback",
         lambda: expect(fjffi.CallFailedError, cb_raise.invoke, (x,), (out,))),
        ("LayoutError (read-only output)",
         lambda: expect(fjffi.LayoutError, negate.invoke, (x,), (readonly,))),
        ("InvalidBoolByteError", lambda: expect(fjffi.InvalidBoolByteError, noop.invoke,
                                                (bad_bool,), ())),
        ("BufferMismatchError", lambda: expect(fjffi.BufferMismatchError, fjffi.Buffer,
                                               bytearray(7), (1,), "float64")),
        ("TargetNotFoundError", lambda: expect(fjffi.TargetNotFoundError, missing.invoke,
                                               (), ())),
    ]


def run(ops, calls, progress=None):
    n = len(ops)
    step = max(calls // 10, 1)
    for i in range(calls):
        ops[i % n][1]()
        if progress and (i + 1) % step == 0:
            progress(i + 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000,
                        help="calls measured after the warm-up (default 1,000,000)")
    parser.add_argument("--warmup", type=int, default=50_000,
                        help="calls before the first measurement (default 50,000)")
    parser.add_argument("--max-rss-growth-kib", type=int, default=2048,
                        help="bound on VmRSS growth (default 2048 KiB)")
    parser.add_argument("--max-traced-growth-kib", type=int, default=64,
                        help="bound on tracemalloc growth (default 64 KiB)")
    args = parser.parse_args(argv)

    ops = operations()
    print(f"soak: {args.calls:,} calls over {len(ops)} operations, "
          f"after {args.warmup:,} warm-up calls:")
    for name, _ in ops:
        print(f"  - {name}")
    tracemalloc.start()
    run(ops, args.warmup)
    gc.collect()
    rss0, traced0 = rss_kib(), tracemalloc.get_traced_memory()[0]

    start = time.perf_counter()

    def progress(done):
        gc.collect()  # a failing call's traceback may sit in a cycle until then
        rate = done / (time.perf_counter() - start)
        print(f"soak: {done:>9,} calls  RSS {rss_kib() - rss0:+6d} KiB  "
              f"traced {(tracemalloc.get_traced_memory()[0] - traced0) / 1024:+8.1f} KiB  "
              f"{rate:,.0f} calls/s", flush=True)

    run(ops, args.calls, progress)
    gc.collect()
    rss_growth = rss_kib() - rss0
    traced_growth = (tracemalloc.get_traced_memory()[0] - traced0) / 1024
    tracemalloc.stop()
    elapsed = time.perf_counter() - start

    ok = (rss_growth <= args.max_rss_growth_kib
          and traced_growth <= args.max_traced_growth_kib)
    print(f"soak: {args.calls:,} calls in {elapsed:.1f} s: RSS growth {rss_growth} KiB "
          f"(bound {args.max_rss_growth_kib}), tracemalloc growth {traced_growth:.1f} KiB "
          f"(bound {args.max_traced_growth_kib}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
