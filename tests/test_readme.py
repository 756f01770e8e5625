"""The README's "Writing and registering a kernel" section, run as a user
would: every code block in it is either a file (its first line names it),
a shell command, or Python, and all of them run, in one temporary folder.

Files are written first, then the shell blocks run in order (they compile
the C kernels and build the consumer extensions with meson: a few seconds),
then the Python blocks run in order in one fresh interpreter.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SECTION = "Writing and registering a kernel"

# The first line of a file block names the file: /* name.c */, # name.pyx, ...
FILE_NAME = re.compile(r"^(?:/\*|#|//)\s*([\w.-]+\.(?:c|h|pyx|pxd|build))\s*(?:\*/)?$")
SHELL = ("sh", "bash", "console", "shell")

# What the section must show: one entry per way of writing a kernel.
MUST_SHOW = [
    "fjffi_buffer", "fjffi_fail", "ctypes.CDLL", "argtypes", "PyCapsule_New",
    "ffi.dlopen", "keep_alive=", "set_source", "addressof", "thread_safe=False",
    "from fjffi cimport", "register_function", "FJFFI_C_API_CAPSULE", "register_callback",
    'flavor="io"', "PurityConfig.strict()", "PurityViolationError", "__cause__",
    "BufferMismatchError", "Registry.get",
]


def section_text() -> tuple[str, int]:
    """The section's text and the README line it starts on."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(SECTION)}[ \t]*\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if match is None:
        pytest.fail(f"{README} has no '## {SECTION}' section")
    return match.group(1), text.count("\n", 0, match.start(1)) + 1


def code_blocks() -> list[tuple[str, str, int]]:
    """(language, code, README line) of each fenced block of the section."""
    body, first_line = section_text()
    return [(m.group(1), m.group(2), first_line + body.count("\n", 0, m.start()))
            for m in re.finditer(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", body, re.MULTILINE | re.DOTALL)]


def test_section_shows_every_way_of_writing_a_kernel():
    body, _ = section_text()
    assert [s for s in MUST_SHOW if s not in body] == []


def test_every_block_runs(tmp_path):
    files, shell, python = {}, [], []
    for language, code, line in code_blocks():
        name = FILE_NAME.match(code.splitlines()[0]) if code.strip() else None
        if language in SHELL:
            shell.append((code, line))
        elif language == "python":
            python.append((code, line))
        elif name is not None:
            files[name.group(1)] = code
        else:
            pytest.fail(f"README.md line {line}: a {language or 'plain'} block that is not a "
                        "file (first line naming it), a shell command or Python cannot be run")
    assert files and shell and python

    for name, code in files.items():
        (tmp_path / name).write_text(code)

    # `python` and `meson` in the blocks mean this environment's: a meson
    # launcher that runs under this Python, so meson finds fjffi here.
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    meson = bin_dir / "meson"
    meson.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mesonbuild.mesonmain "$@"\n')
    meson.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable),
                                   env.get("PATH", "")])

    for code, line in shell:
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env, check=False,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"README.md line {line}:\n{code}\n{run.stdout}{run.stderr}"

    script = tmp_path / "readme_blocks.py"
    script.write_text("".join(f"# --- README.md line {line}\n{code}\n" for code, line in python))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, check=False,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{run.stdout}{run.stderr}"


def test_opening_example_runs(tmp_path):
    """The README's first Python block, the ten-line example, runs as printed."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Example[ \t]*\n.*?^```python[ \t]*\n(.*?)^```", text,
                      re.MULTILINE | re.DOTALL)
    assert match is not None, "README.md has no '## Example' section with a Python block"
    script = tmp_path / "example.py"
    script.write_text(match.group(1))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("negate 4 negate: output 0 shape (3,) does not match")
