"""Crash containment (docs/design.md, threat T7): a kernel that segfaults still takes the
process down, as the seed accepts, but loudly.  Each crash runs in a child
interpreter with faulthandler on."""

import signal
import subprocess
import sys
import textwrap

import pytest

SCRIPT = """\
import threading
import fjffi
from fjffi import _testing

registry = _testing.registry()


def crash_in_kernel():
    fjffi.Call("segfault", registry, guard={guard}).invoke([1.0], [])


if {in_thread}:
    worker = threading.Thread(target=crash_in_kernel)
    worker.start()
    worker.join()
else:
    crash_in_kernel()
print("still alive")
"""
CALL_LINE = 9  # the line of SCRIPT that calls the kernel


@pytest.mark.parametrize("in_thread", [False, True], ids=["main thread", "worker thread"])
@pytest.mark.parametrize("guard", [False, True], ids=["plain", "guard mode"])
def test_segfaulting_kernel_aborts_loudly(tmp_path, in_thread, guard):
    script = tmp_path / "crash_script.py"
    script.write_text(SCRIPT.format(guard=guard, in_thread=in_thread))
    assert script.read_text().splitlines()[CALL_LINE - 1].lstrip().startswith("fjffi.Call(")
    proc = subprocess.run([sys.executable, "-X", "faulthandler", str(script)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    report = f"return code {proc.returncode}, stderr:\n{textwrap.indent(proc.stderr, '  ')}"
    # faulthandler re-raises the signal after its report, so the process
    # dies of SIGSEGV itself, and never reaches the print.
    assert proc.returncode == -signal.SIGSEGV, report
    assert "still alive" not in proc.stdout
    assert "Fatal Python error: Segmentation fault" in proc.stderr, report
    # fjffi's own signal handler names the target; faulthandler's stack
    # names the call that ran it: file, line and function.
    assert "fjffi: fatal signal in target 'segfault'\n" in proc.stderr, report
    crashing = proc.stderr.split("(most recent call first):", 1)[1].split("\n\n", 1)[0]
    assert f'File "{script}", line {CALL_LINE} in crash_in_kernel' in crashing, report
    assert ("threading.py" in crashing) is in_thread, report
