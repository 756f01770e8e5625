"""Shared test setup.  The suite runs against the installed fjffi: the
compiled _core exists only there, never in the source tree."""

import os
import pathlib
import sys

import hypothesis
import pytest

import fjffi

SOURCE_TREE = pathlib.Path(__file__).resolve().parent.parent

if SOURCE_TREE / "src" in pathlib.Path(fjffi.__file__).resolve().parents:
    raise RuntimeError(
        f"fjffi was imported from the source tree ({fjffi.__file__}); install it "
        "(pip install '.[test]') and run pytest from outside the package folder"
    )

# No deadline and no too_slow health check: on a loaded machine, under a
# sanitizer or with several threads drawing at once (pytest-run-parallel),
# drawing is slow without anything being wrong.  The profiles CI uses draw
# the same examples every run, so a failure there is never a new draw.
_SLOW_IS_FINE = {"deadline": None,
                 "suppress_health_check": [hypothesis.HealthCheck.too_slow]}
hypothesis.settings.register_profile("default", max_examples=200, **_SLOW_IS_FINE)
hypothesis.settings.register_profile("ci", max_examples=300, derandomize=True, **_SLOW_IS_FINE)
hypothesis.settings.register_profile("quick", max_examples=30, derandomize=True, **_SLOW_IS_FINE)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def test_registry():
    """A new Registry holding the test-only kernels of fjffi._testing."""
    from fjffi import _testing

    return _testing.registry()


def pytest_sessionfinish(session, exitstatus):
    """With FJFFI_REQUIRE_NO_GIL set (tools/check.sh, step freethreaded), the
    run fails if the GIL is on at its end: on a free-threaded Python, one
    imported extension that does not declare itself safe without a GIL turns
    it on for the whole process."""
    if not os.environ.get("FJFFI_REQUIRE_NO_GIL"):
        return
    enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"FJFFI_REQUIRE_NO_GIL: GIL enabled at the end of the run = {enabled}")
    if enabled:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
