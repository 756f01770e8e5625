"""Call tools/tsan_canary.c's racy kernel through fjffi from 4 threads at once.

Usage: python tsan_canary.py LIBCANARY_SO.  Run under libtsan; the caller
checks that TSan reported the race (see sanitizer_reports.py)."""

import ctypes
import sys
import threading

import fjffi

lib = ctypes.CDLL(sys.argv[1])
registry = fjffi.Registry()
# gil="release": the threads must be inside the kernel at the same time.
registry.register("canary", lib.canary_kernel, gil="release")
call = fjffi.Call("canary", registry)
barrier = threading.Barrier(4)


def work():
    barrier.wait()
    for _ in range(20_000):
        call.invoke((), ())


threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
