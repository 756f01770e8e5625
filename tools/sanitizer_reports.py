"""Read the sanitizer logs of tools/sanitize.sh and decide pass or fail.

Usage: python sanitizer_reports.py asan|tsan LOGDIR

asan: any ASan or UBSan report file fails the run; the canary's log must
hold the heap-buffer-overflow of the off_by_one test kernel.
tsan: a warning fails the run when any of its frames is fjffi's own code;
warnings wholly inside the interpreter or numpy are counted and shown, not
failed (tools/tsan.supp silences the known ones).  The canary's log must hold
a data race in canary_kernel, or TSan was blind and the run proves nothing.
"""

import pathlib
import re
import sys

# fjffi's compiled code as it shows in a stack frame: the two extension
# modules (Cython, registry.c and the kernels are linked into them).
FJFFI_FRAME = re.compile(r"_core\.cpython|_testing\.cpython|_core\.pyx|registry\.c|kernels/")
SEPARATOR = "=================="


def show(text, lines=60):
    out = text.splitlines()
    print("\n".join(out[:lines]) + ("\n    ..." if len(out) > lines else ""))


def asan(logdir):
    files = sorted(logdir.glob("asan.*")) + sorted(logdir.glob("ubsan.*"))
    asan_errors = ub_errors = 0
    for f in files:
        text = f.read_text(errors="replace")
        asan_errors += text.count("ERROR: AddressSanitizer")
        ub_errors += len(re.findall(r"runtime error:", text))
        print(f"--- {f}")
        show(text)
    print(f"ASan reports: {asan_errors}; UBSan reports: {ub_errors}; report files: {len(files)}")
    status = 1 if files else 0
    canary = [f for f in logdir.glob("canary.*")
              if re.search(r"heap-buffer-overflow(.|\n)*in off_by_one",
                           f.read_text(errors="replace"))]
    if canary:
        print("ASan canary: the off_by_one kernel's overrun was reported, so ASan sees kernels")
    else:
        print("ASan canary: NO report of off_by_one's overrun; ASan is blind here and the run "
              "proves nothing")
        status = 1
    return status


def tsan_warnings(files):
    """(first line, full text) of every TSan warning in the files."""
    for f in files:
        for chunk in f.read_text(errors="replace").split(SEPARATOR):
            if "WARNING: ThreadSanitizer" in chunk:
                head = next(line for line in chunk.splitlines()
                            if "WARNING: ThreadSanitizer" in line)
                yield head.strip(), chunk.strip()


def tsan(logdir):
    status = 0
    files = sorted(logdir.glob("tsan.*"))
    for f in files:
        text = f.read_text(errors="replace")
        if "FATAL: ThreadSanitizer" in text:
            print(f"--- {f}: TSan could not run")
            show(text)
            status = 1
    ours, theirs = [], []
    for head, text in tsan_warnings(files):
        (ours if FJFFI_FRAME.search(text) else theirs).append((head, text))
    for _head, text in ours:
        print("--- TSan warning in fjffi code")
        show(text)
    for head, text in theirs:
        frame = next((line.strip() for line in text.splitlines()
                      if line.strip().startswith("#0")), "")
        print(f"--- TSan warning outside fjffi (not failed): {head} at {frame}")
    suppressed = sum(int(n) for f in files
                     for n in re.findall(r"^\s*(\d+) \S+:", f.read_text(errors="replace"),
                                         re.MULTILINE))
    print(f"TSan warnings in fjffi code: {len(ours)}; outside fjffi: {len(theirs)}; "
          f"suppressed: {suppressed}")
    if ours:
        status = 1

    canary = [h for h, t in tsan_warnings(sorted(logdir.glob("canary.*")))
              if "data race" in h and "canary_kernel" in t]
    if canary:
        print(f"TSan canary: race seen ({len(canary)} warning), so TSan sees fjffi's threads")
    else:
        print("TSan canary: NO race reported; TSan is blind here and the run proves nothing")
        status = 1
    return status


if __name__ == "__main__":
    mode, logdir = sys.argv[1], pathlib.Path(sys.argv[2])
    sys.exit(asan(logdir) if mode == "asan" else tsan(logdir))
