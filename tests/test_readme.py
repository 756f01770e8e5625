"""The documented examples, run as a user would.

docs/guide.md's "Writing and registering a kernel" section: every code
block in it is either a file (its first line names it), a shell command, or
Python, and all of them run, in one temporary folder.  Files are written
first, then the shell blocks run in order (they compile the C kernels and
build the consumer extensions with meson: a few seconds), then the Python
blocks run in order in one fresh interpreter.

README.md's example runs as printed, and the README keeps the two commands
that .ci/run runs.  Every relative link of the docs leads to a file, and
every #anchor to a heading of it.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide.md"
SECTION = "Writing and registering a kernel"
# The docs that link to each other; each of their relative links must resolve.
DOCS = [README, GUIDE, ROOT / "docs" / "reference.md", ROOT / "docs" / "design.md",
        ROOT / "docs" / "interop.md",
        ROOT / "bench" / "README.md", ROOT / "CONTRIBUTING.md"]

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
    """The section's text and the guide's line it starts on."""
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(SECTION)}[ \t]*\n(.*?)(?=^## |\Z)", text,
                      re.MULTILINE | re.DOTALL)
    if match is None:
        pytest.fail(f"{GUIDE} has no '## {SECTION}' section")
    return match.group(1), text.count("\n", 0, match.start(1)) + 1


def code_blocks() -> list[tuple[str, str, int]]:
    """(language, code, guide line) of each fenced block of the section."""
    body, first_line = section_text()
    return [(m.group(1), m.group(2), first_line + body.count("\n", 0, m.start()))
            for m in re.finditer(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", body,
                                 re.MULTILINE | re.DOTALL)]


def test_section_shows_every_way_of_writing_a_kernel():
    body, _ = section_text()
    assert [s for s in MUST_SHOW if s not in body] == []


def test_every_block_runs(tmp_path):
    # The section shows cffi in both modes; cffi does not build on 3.13t.
    pytest.importorskip(
        "cffi", reason="cffi is not installed (it does not build on free-threaded CPython 3.13)")
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
            pytest.fail(f"docs/guide.md line {line}: a {language or 'plain'} block that is not a "
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
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                             check=False, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"docs/guide.md line {line}:\n{code}\n{run.stdout}{run.stderr}"

    script = tmp_path / "guide_blocks.py"
    script.write_text("".join(f"# --- docs/guide.md line {line}\n{code}\n"
                              for code, line in python))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, check=False,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{run.stdout}{run.stderr}"


def test_opening_example_runs(tmp_path):
    """The README's example runs as printed."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Example[ \t]*\n.*?^```python[ \t]*\n(.*?)^```", text,
                      re.MULTILINE | re.DOTALL)
    assert match is not None, "README.md has no '## Example' section with a Python block"
    script = tmp_path / "example.py"
    script.write_text(match.group(1))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("negate 4 negate: output 0 shape (3,) does not match")


def test_readme_commands_are_the_ones_ci_runs():
    """The README opens with the two commands, and .ci/run runs exactly those
    (adding only --quick and a hypothesis profile)."""
    text = README.read_text(encoding="utf-8")
    first = re.search(r"^```\w*[ \t]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert first is not None, "README.md has no code block"
    commands = first.group(1).splitlines()
    assert commands == ["pip install . && python -m fjffi", "pip install '.[test]' && pytest"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ran = [re.sub(r" --quick\b|HYPOTHESIS_PROFILE=\w+ ", "", line.strip())
           for line in ci.splitlines()
           if line.strip().startswith(("pip install .", "pip install '."))]
    assert ran == commands


def without_code(text: str) -> str:
    """The text with fenced code blocks blanked (their lines kept, so a
    line number still points at the right place)."""
    return re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text,
                  flags=re.MULTILINE | re.DOTALL)


def anchors(path: pathlib.Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    found = set()
    text = without_code(path.read_text(encoding="utf-8"))
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    """Every relative link leads to a file of the repository, and every
    #anchor to a heading of its Markdown file."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", without_code(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, fragment = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment}")
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_cite_only_what_the_repository_holds(doc):
    """Threats and invariants are cited from docs/design.md, never from an
    issue tracker, the seed or a design file kept elsewhere."""
    text = doc.read_text(encoding="utf-8")
    assert re.findall(r"\bissue \d+|\bseed (?:threat|invariant|T\d)|DESIGN\.md", text) == []
