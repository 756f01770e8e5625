"""The benchmark suite runs against the installed fjffi, like the tests:
fjffi._floor and fjffi._core exist only in the install.

    pytest bench/ --benchmark-only

It is not part of `pytest` (pyproject's testpaths is tests/): timings are
measured and reported here, never asserted.
"""

import pathlib

import fjffi

SOURCE_TREE = pathlib.Path(__file__).resolve().parent.parent

if SOURCE_TREE / "src" in pathlib.Path(fjffi.__file__).resolve().parents:
    raise RuntimeError(
        f"fjffi was imported from the source tree ({fjffi.__file__}); install it "
        "(pip install '.[bench]') and run pytest bench/ from a folder where `import fjffi` "
        "finds the install"
    )
