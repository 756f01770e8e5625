"""Helpers of the adversarial suite.

Crash- and hang-prone cases run in a child interpreter (sys.executable -c)
with a timeout, so that a segfault, an abort or a deadlock is a failed test
with the child's output shown, never a dead test run.  Many such cases are
started at once (run_snippets) so their timeouts overlap instead of adding
up.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

HERE = pathlib.Path(__file__).resolve().parent
USER_KERNELS_C = HERE.parent / "kernels" / "user_kernels.c"
ADV_KERNELS_C = HERE / "adv_kernels.c"

# For a whole batch of children started at once: on a loaded 2-core machine
# under a sanitizer their imports alone take most of a minute.  A real hang
# is caught sooner by each child's own faulthandler timer, where it has one.
TIMEOUT = 120.0
TIMED_OUT = -1000  # returncode reported for a child killed at its timeout

# Every snippet starts with these imports and helpers.  RawProto is the raw
# ABI as a ctypes prototype: a kernel made from a Python function takes the
# GIL whenever it runs.
PRELUDE = """
import ctypes, gc, os, sys, threading, time
import numpy as np
import fjffi
from fjffi import errors as E
RawProto = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t,
                            ctypes.c_void_p, ctypes.c_size_t)
RAW_ARGS = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
TYPED_ARGS = RAW_ARGS + (ctypes.c_void_p,)
def raw_fn(lib, name):
    fn = lib[name]
    fn.restype, fn.argtypes = ctypes.c_int32, RAW_ARGS
    return fn
def typed_fn(lib, name):
    fn = lib[name]
    fn.restype, fn.argtypes = ctypes.c_int32, TYPED_ARGS
    return fn
"""


def _command(code: str) -> list[str]:
    return [sys.executable, "-c", PRELUDE + textwrap.dedent(code)]


def _child_env(env: dict | None) -> dict:
    full = dict(os.environ)
    full.pop("FJFFI_GUARD", None)
    full["PYTHONFAULTHANDLER"] = "1"  # a crash prints the Python stack too
    if env:
        full.update(env)
    return full


def run_snippets(snippets: dict, timeout: float = TIMEOUT, env: dict | None = None) -> dict:
    """Run every code snippet in its own child interpreter, all at once.

    A snippet may be a (code, extra_env) pair.  Returns
    {key: (returncode, stdout, stderr)}.  A child still running at
    the timeout is killed (its whole process group: a forked grandchild
    too) and reported with returncode TIMED_OUT.
    """
    procs = {}
    for key, code in snippets.items():
        extra = dict(env or {})
        if isinstance(code, tuple):
            code, more = code
            extra.update(more)
        procs[key] = subprocess.Popen(
            _command(code), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=_child_env(extra), cwd=str(HERE.parent.parent), start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    results = {}
    for key, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            results[key] = (proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            results[key] = (TIMED_OUT, out, err + f"\n[killed: no exit within {timeout} s]")
    return results


def run_snippet(code: str, timeout: float = TIMEOUT, env: dict | None = None):
    """(returncode, stdout, stderr) of one snippet in a child interpreter."""
    return run_snippets({0: code}, timeout, env)[0]


def describe(result) -> str:
    rc, out, err = result
    if rc == TIMED_OUT:
        what = "the child hung (timeout)"
    elif rc < 0:
        what = f"the child died of signal {signal.Signals(-rc).name}"
    else:
        what = f"the child exited with {rc}"
    return f"{what}\n--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-3000:]}"


def assert_clean(result, expect_stdout: str | None = None):
    """The child exited 0 (no crash, no hang, no uncaught exception) and, if
    given, printed expect_stdout as its last line."""
    rc, out, _ = result
    assert rc == 0, describe(result)
    if expect_stdout is not None:
        lines = out.strip().splitlines()
        assert lines and lines[-1] == expect_stdout, describe(result)
