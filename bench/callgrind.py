"""Instructions per call, by function, under callgrind: deterministic where
timings on a shared machine are not.

    python bench/callgrind.py [CASE ...]     # cases: see LOOPS; default all

Each case's loop runs under `valgrind --tool=callgrind` twice, with N1 and
N2 calls; the difference of the two runs, divided by N2 - N1, is the cost
of one call, with start-up and import cancelled out.  Prints the whole
loop iteration's instructions, then the self instructions per call of each
function above 0.5 (callgrind_annotate --threshold=100), and with
--inclusive the inclusive figures.  Needs valgrind and callgrind_annotate.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

N1, N2 = 100_000, 300_000

# Each loop's body is the call alone: locals only, no star-args, so the
# interpreter's share is the same for every case.
LOOPS = {
    "invoke": ("f = fjffi.Call('noop').invoke; a = b = ()", "f(a, b)"),
    "floor": ("f = _floor.noop", "f()"),
    "scalar": ("f = fjffi.Call('double_f64').invoke; a = (np.array(21.0),); "
               "b = (np.empty(()),)", "f(a, b)"),
    "scalar_floor": ("f = _floor.double_f64; a = np.array(21.0); b = np.empty(())", "f(a, b)"),
    "negate_1k": ("f = fjffi.Call('negate').invoke; a = (np.arange(1000.0),); "
                  "b = (np.empty(1000),)", "f(a, b)"),
    "negate_1k_floor": ("f = _floor.negate; a = np.arange(1000.0); b = np.empty(1000)",
                        "f(a, b)"),
    "call_e2e": ("f = fjffi.call; s = (np.empty(()),)",
                 "float(f('double_f64', (21.0,), s)[0])"),
    # cffi API mode end to end, as bench/peers.py times it.
    "call_e2e_cffi": ("sys.path.insert(0, BENCH); import peers; api = peers.build_cffi_api(); "
                      "ffi, d = api.ffi, api.lib.bench_double_f64; "
                      "cin, cout = ffi.new('double[1]'), ffi.new('double[1]'); "
                      "i = ffi.new('uint8_t *[1]', [ffi.cast('uint8_t *', cin)]); "
                      "o = ffi.new('uint8_t *[1]', [ffi.cast('uint8_t *', cout)])",
                      "cin[0] = 21.0; d(i, 1, o, 1); cout[0]"),
}

SCRIPT = """
import itertools, sys
BENCH = {bench!r}
import numpy as np
import fjffi
from fjffi import _floor

def loop(n):
    {setup}
    for _ in itertools.repeat(None, n):
        {body}

loop(1000)
loop(int(sys.argv[1]))
"""


def annotate(path: str, inclusive: bool) -> tuple[int, dict]:
    cmd = ["callgrind_annotate", "--threshold=100", path]
    if inclusive:
        cmd.insert(1, "--inclusive=yes")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    total, per = 0, {}
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.+?)\s*$", line)
        if not m:
            continue
        value, name = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in name:
            total = value
        else:
            # file:function [object] -> function [object's base name]
            name = re.sub(r"^.*?:(?=[^:\[]+( \[|$))", "", name)
            name = re.sub(r"\[(.*/)?([^/\]]+)\]", r"[\2]", name)
            per[name] = per.get(name, 0) + value
    return total, per


def measure(case: str, tmp: str, inclusive: bool) -> tuple[float, list]:
    setup, body = LOOPS[case]
    script = os.path.join(tmp, f"{case}.py")
    with open(script, "w") as f:
        f.write(SCRIPT.format(setup=setup, body=body,
                              bench=os.path.dirname(os.path.abspath(__file__))))
    runs = []
    for n in (N1, N2):
        out = os.path.join(tmp, f"{case}.{n}.out")
        # Run from the temporary folder: fjffi is imported from the install.
        # One BLAS thread: idle BLAS threads spin for a while, and their
        # instructions would land in the program's totals.
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, script, str(n)], check=True, cwd=tmp, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs.append(annotate(out, inclusive))
    (t1, d1), (t2, d2) = runs
    span = N2 - N1
    rows = sorted(((v - d1.get(k, 0)) / span, k) for k, v in d2.items())
    return (t2 - t1) / span, [(v, k) for v, k in reversed(rows) if v >= 0.5]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python bench/callgrind.py", description=__doc__)
    p.add_argument("cases", nargs="*", metavar="CASE",
                   help=f"of: {', '.join(LOOPS)} (default: all)")
    p.add_argument("--inclusive", action="store_true", help="inclusive instructions")
    args = p.parse_args(argv)
    unknown = [c for c in args.cases if c not in LOOPS]
    if unknown:
        p.error(f"unknown cases {unknown}; choose from {', '.join(LOOPS)}")
    args.cases = args.cases or list(LOOPS)
    if not (shutil.which("valgrind") and shutil.which("callgrind_annotate")):
        print("needs valgrind and callgrind_annotate on PATH", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="fjffi-callgrind-") as tmp:
        for case in args.cases:
            total, rows = measure(case, tmp, args.inclusive)
            print(f"{case}: {total:.0f} instructions per loop iteration "
                  f"({'inclusive' if args.inclusive else 'self'} per function below)")
            for value, name in rows:
                print(f"  {value:8.1f}  {name[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
