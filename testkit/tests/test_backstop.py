"""The timeout backstop ends a run whose stuck test swallowed its timeout, and stays out of every
other run: each case is a real pytest process with pytest-timeout's signal method."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

CONFTEST = """
import testkit.backstop

testkit.backstop.GRACE_S = 0.25  # fire 2 x timeout + 0.25 s after a test starts
pytest_plugins = ["testkit.backstop"]
"""


def run_pytest(tmp_path: Path, tests: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\ntimeout_method = signal\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_cases.py").write_text(textwrap.dedent(tests))
    # Only the plugin under test and pytest-timeout: this environment's other plugins would cost
    # the child pytest half a second of start-up each run and take no part.
    environ = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "pytest_timeout", "-p", "no:cacheprovider", "-v"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_stuck_test_that_swallowed_its_timeout_ends_the_run_with_its_stack(
    tmp_path: Path,
) -> None:
    result = run_pytest(
        tmp_path,
        """
        import time
        import pytest

        def spin(deadline):
            while time.monotonic() < deadline:
                pass

        @pytest.mark.timeout(0.25)
        def test_swallows():
            deadline = time.monotonic() + 50
            while time.monotonic() < deadline:
                try:
                    spin(deadline)
                except BaseException:  # where the SIGALRM handler's failure gets lost
                    pass

        def test_after():
            pass
        """,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "test_cases.py::test_swallows is still running 1 s after it started" in output
    assert "in spin" in output  # the stuck thread's stack names where it was stuck
    assert "test_after" not in output


def test_a_timeout_that_fails_its_test_leaves_the_run_going_and_the_backstop_disarmed(
    tmp_path: Path,
) -> None:
    result = run_pytest(
        tmp_path,
        """
        import time
        import pytest

        @pytest.mark.timeout(0.25)
        def test_times_out():
            time.sleep(10)

        @pytest.mark.timeout(0.25)
        def test_quick():
            pass

        @pytest.mark.timeout(0)
        def test_outlives_the_earlier_tests_backstops():
            time.sleep(1.5)  # past 2 x 0.25 + 0.25 s after the tests above started
        """,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # one failure, the run completed
    assert "test_cases.py::test_times_out FAILED" in output
    assert "test_cases.py::test_quick PASSED" in output
    assert "test_cases.py::test_outlives_the_earlier_tests_backstops PASSED" in output
    assert "is still running" not in output  # the backstop's report
