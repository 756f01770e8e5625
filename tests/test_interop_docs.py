"""docs/interop.md's examples, run as a user would: every Python block, in
order, in one fresh interpreter.  Blocks whose first line is `# needs torch`
run only where torch is installed (it is not in the test extras: too large
for CI); the rest always run."""

import importlib.util
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "interop.md"


def python_blocks():
    text = DOC.read_text(encoding="utf-8")
    return [m.group(1) for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text,
                                            re.MULTILINE | re.DOTALL)]


def test_the_doc_shows_every_path():
    text = DOC.read_text(encoding="utf-8")
    for needed in ["fjffi.jax.call", "TransformError", "declare_vmap", "jax.export",
                   "register_callback", "__dlpack__", "bfloat16", "typed_signature",
                   "raw_signature", "fn.fail", "fn.invoke"]:
        assert needed in text, needed


def test_examples_run(tmp_path):
    blocks = python_blocks()
    assert len(blocks) >= 8
    has_torch = importlib.util.find_spec("torch") is not None
    run = [b for b in blocks if has_torch or not b.startswith("# needs torch")]
    script = "\n\n".join(run)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "does not support jax.vmap" in out.stdout
