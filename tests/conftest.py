"""Shared test setup.  The suite runs against the installed fjffi: the
compiled _core exists only there, never in the source tree."""

import os
import pathlib

import hypothesis
import pytest

import fjffi

SOURCE_TREE = pathlib.Path(__file__).resolve().parent.parent

if SOURCE_TREE / "src" in pathlib.Path(fjffi.__file__).resolve().parents:
    raise RuntimeError(
        f"fjffi was imported from the source tree ({fjffi.__file__}); install it "
        "(pip install '.[test]') and run pytest from outside the package folder"
    )

hypothesis.settings.register_profile("default", deadline=None, max_examples=200)
hypothesis.settings.register_profile("ci", deadline=None, max_examples=300, derandomize=True)
hypothesis.settings.register_profile("quick", deadline=None, max_examples=30)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def test_registry():
    """A new Registry holding the test-only kernels of fjffi._testing."""
    from fjffi import _testing

    return _testing.registry()
