"""Fork safety: a child process never inherits a registry lock held by a
thread that does not exist in it, and never copies a half-changed table."""

import os
import threading

import numpy as np
import pytest

import fjffi

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def run_in_child(fn) -> int:
    """fn() in a forked child; its exit code (99 when the child hangs)."""
    pid = os.fork()
    if pid == 0:
        try:
            code = fn()
        except BaseException:
            code = 1
        os._exit(code)
    for _ in range(1200):  # up to 60 s: a deadlocked child never exits
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        threading.Event().wait(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return 99


def test_child_registers_and_calls_while_parent_threads_register():
    registry = fjffi.Registry()
    stop = threading.Event()
    added = []

    def keep_registering():
        i = 0
        while not stop.is_set():
            registry.register_callback(f"t{i}", lambda: ())
            added.append(i)
            i += 1

    def child():
        registry.register_callback("child", lambda x: x * 2)
        (y,) = fjffi.call("child", (np.arange(3.0),), (np.empty(3),), registry=registry)
        fjffi.Call("noop").invoke((), ())
        names = registry.names()
        ok = y.tolist() == [0.0, 2.0, 4.0] and "child" in names and len(names) == len(registry)
        return 0 if ok else 2

    worker = threading.Thread(target=keep_registering)
    worker.start()
    try:
        codes = [run_in_child(child) for _ in range(20)]
    finally:
        stop.set()
        worker.join()
    assert codes == [0] * 20
    assert len(registry) == len(added)  # the parent's registry kept working


def test_thread_unsafe_target_usable_in_child():
    registry = fjffi.Registry()
    registry.register("noop_serial", fjffi.default_registry.get("noop").owner or _noop_capsule(),
                      thread_safe=False)
    fjffi.Call("noop_serial", registry).invoke((), ())
    assert run_in_child(lambda: fjffi.Call("noop_serial", registry).invoke((), ()) or 0) == 0


def _noop_capsule():
    from fjffi import _testing

    return _testing.kernels()["raw_noop"][0]
