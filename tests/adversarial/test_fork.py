"""Fork in every state: while another thread is inside an io or pure
callback, a thread_safe=False (or thread-safe) C kernel, a GIL-taking
kernel, or a registration; and fork called from inside a kernel or a
callback itself.  The child's first call to the same target (or
registration in the same registry) must work and exit 0 within a timeout.
Every case runs in its own child interpreter, which forks."""

import os

import pytest

from .helpers import assert_clean, run_snippets

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

COMMON = """
import faulthandler, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
faulthandler.dump_traceback_later(25, exit=True)
def fork_and_check(child, wait=8.0):
    pid = os.fork()
    if pid == 0:
        try:
            code = child()
        except BaseException as e:
            print("child raised", repr(e), flush=True)
            code = 1
        os._exit(code)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9); os.waitpid(pid, 0)
    return "hung"
lib = ctypes.CDLL({lib!r})
r = fjffi.Registry(); r.register_builtins()
inside = threading.Event()
"""

# State a background thread is in at the moment of the fork.  Each sets
# `inside` once it is there, stays about half a second, and defines
# child_call(), the child's first use of the same thing.
WHILE_INSIDE = {
    "io_callback": """
def cb(x):
    inside.set(); time.sleep(0.5); return x * 2
r.register_callback("t", cb, flavor="io")
def work(): fjffi.call("t", (np.ones(3),), (np.zeros(3),), registry=r)
def child_call():
    (y,) = fjffi.call("t", (np.ones(3),), (np.zeros(3),), registry=r)
    return 0 if y.tolist() == [2.0] * 3 else 2
""",
    "pure_callback": """
def cb(x):
    inside.set(); time.sleep(0.5); return x * 2
r.register_callback("t", cb, flavor="pure")
def work(): fjffi.call("t", (np.ones(3),), (np.zeros(3),), registry=r)
def child_call():
    (y,) = fjffi.call("t", (np.ones(3),), (np.zeros(3),), registry=r)
    return 0 if y.tolist() == [2.0] * 3 else 2
""",
    "c_kernel_thread_unsafe": """
r.register("t", raw_fn(lib, "adv_sleep_raw"), gil="release", thread_safe=False)
def work():
    threading.Timer(0.1, inside.set).start()
    fjffi.Call("t", r).invoke((np.int64(600000),), ())
def child_call():
    fjffi.Call("t", r).invoke((np.int64(1000),), ()); return 0
""",
    "c_kernel_thread_safe": """
r.register("t", raw_fn(lib, "adv_sleep_raw"), gil="release", thread_safe=True)
def work():
    threading.Timer(0.1, inside.set).start()
    fjffi.Call("t", r).invoke((np.int64(600000),), ())
def child_call():
    fjffi.Call("t", r).invoke((np.int64(1000),), ()); return 0
""",
    "ctypes_kernel_thread_unsafe": """
def k(*a):
    inside.set(); time.sleep(0.5); return 0
kernel = RawProto(k)
r.register("t", kernel, gil="release", thread_safe=False)
def work(): fjffi.Call("t", r).invoke((), ())
def child_call():
    fjffi.Call("t", r).invoke((), ()); return 0
""",
    "ctypes_kernel_guarded": """
def k(*a):
    inside.set(); time.sleep(0.5); return 0
kernel = RawProto(k)
r.register("t", kernel, gil="release", thread_safe=False)
def work(): fjffi.Call("t", r, guard=True).invoke((), (np.zeros(4),))
def child_call():
    fjffi.Call("t", r, guard=True).invoke((), (np.zeros(4),)); return 0
""",
    "registration": """
names = iter(range(10**9))
stop = threading.Event()
def work():
    while not stop.is_set():
        r.register_callback(f"n{next(names)}", lambda: ())
        inside.set()
def child_call():
    r.register_callback("child", lambda x: -x)
    (y,) = fjffi.call("child", (np.ones(2),), (np.zeros(2),), registry=r)
    names = r.names()
    return 0 if y.tolist() == [-1.0, -1.0] and len(names) == len(r) else 2
""",
    "names_and_lookups": """
stop = threading.Event()
def work():
    while not stop.is_set():
        r.names(); "noop" in r; r.get("negate"); len(r)
        inside.set()
def child_call():
    fjffi.Call("noop", r).invoke((), ())
    return 0 if "negate" in r.names() else 2
""",
}

FORK_WHILE_INSIDE = """
t = threading.Thread(target=work, daemon=True)
t.start()
assert inside.wait(5)
codes = [fork_and_check(child_call) for _ in range({forks})]
if "stop" in globals(): stop.set()
t.join(5)
print("ok" if codes == [0] * {forks} else f"child exit codes {{codes}}")
"""

# Fork called from inside the running kernel or callback itself.
FORK_FROM_INSIDE = {
    "ctypes_kernel_release_unsafe": """
state = {"fork": True}
def k(*a):
    if state["fork"]:
        state["fork"] = False
        state["code"] = fork_and_check(lambda: (fjffi.Call("t", r).invoke((), ()), 0)[1])
    return 0
kernel = RawProto(k)
r.register("t", kernel, gil="release", thread_safe=False)
""",
    "ctypes_kernel_hold": """
state = {"fork": True}
def k(*a):
    if state["fork"]:
        state["fork"] = False
        state["code"] = fork_and_check(lambda: (fjffi.Call("t", r).invoke((), ()), 0)[1])
    return 0
kernel = RawProto(k)
r.register("t", kernel, gil="hold", thread_safe=True)
""",
    "io_callback": """
state = {"fork": True}
def cb(x):
    if state["fork"]:
        state["fork"] = False
        state["code"] = fork_and_check(
            lambda: (fjffi.call("t", (np.ones(2),), (np.zeros(2),), registry=r), 0)[1])
    return x
r.register_callback("t", cb, flavor="io")
""",
    "pure_callback": """
state = {"fork": True}
def cb(x):
    if state["fork"]:
        state["fork"] = False
        state["code"] = fork_and_check(
            lambda: (fjffi.call("t", (np.ones(2),), (np.zeros(2),), registry=r), 0)[1])
    return x
r.register_callback("t", cb, flavor="pure")
""",
    "io_callback_with_waiters": """
state = {"fork": True}
def cb(x):
    if state["fork"]:
        state["fork"] = False
        time.sleep(0.2)  # another thread now waits for this callback's lock
        state["code"] = fork_and_check(
            lambda: (fjffi.call("t", (np.ones(2),), (np.zeros(2),), registry=r), 0)[1])
    return x
r.register_callback("t", cb, flavor="io")
w = threading.Thread(target=lambda: (time.sleep(0.05),
                                     fjffi.call("t", (np.ones(2),), (np.zeros(2),), registry=r)))
w.start()
""",
}
RUN_FROM_INSIDE = """
fjffi.Call("t", r).invoke(*( ((), ()) if "kernel" in {case!r}
                             else ((np.ones(2),), (np.zeros(2),)) ))
print("ok" if state.get("code") == 0 else f"child exit code {{state.get('code')}}")
"""


def snippets(lib):
    out = {}
    for case, body in WHILE_INSIDE.items():
        forks = 3 if case in ("registration", "names_and_lookups") else 1
        out[f"while_inside-{case}"] = (COMMON.format(lib=lib) + body
                                       + FORK_WHILE_INSIDE.format(forks=forks))
    for case, body in FORK_FROM_INSIDE.items():
        out[f"from_inside-{case}"] = (COMMON.format(lib=lib) + body
                                      + RUN_FROM_INSIDE.format(case=case))
    return out


CASES = list(snippets("LIB"))


@pytest.fixture(scope="module")
def fork_results(kernels_lib):
    return run_snippets(snippets(kernels_lib), timeout=120)


@pytest.mark.parametrize("case", CASES)
def test_child_works_after_fork(fork_results, case):
    assert_clean(fork_results[case], "ok")
