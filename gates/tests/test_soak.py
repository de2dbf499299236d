"""Soak: N runs of a tier, and every test that failed at least once listed with its counts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from gates import soak

CASE = '<testcase classname="e2e.test_x" name="{name}">{body}</testcase>'


def junit(path: Path, outcomes: dict[str, str]) -> None:
    bodies = {"passed": "", "failed": '<failure message="boom"/>', "error": '<error message="x"/>'}
    cases = "".join(CASE.format(name=n, body=bodies[o]) for n, o in outcomes.items())
    path.write_text(f'<testsuites><testsuite name="pytest">{cases}</testsuite></testsuites>')


class ScriptedRuns:
    """A runner that writes a prepared junit report per run instead of running nox."""

    def __init__(self, per_run: list[dict[str, str] | None]) -> None:
        self.per_run = per_run
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> int:
        self.commands.append(list(argv))
        outcomes = self.per_run[len(self.commands) - 1]
        if outcomes is None:
            return 3  # crashed before writing a report
        target = next(a for a in argv if a.startswith("--junitxml="))
        junit(Path(target.split("=", 1)[1]), outcomes)
        return 1 if any(o != "passed" for o in outcomes.values()) else 0


def test_lists_every_test_that_failed_at_least_once_with_counts(tmp_path: Path) -> None:
    runs = ScriptedRuns(
        [
            {"a": "passed", "b": "failed", "c": "failed"},
            {"a": "passed", "b": "passed", "c": "error"},
            {"a": "passed", "b": "passed", "c": "failed"},
        ]
    )
    result = soak.soak("e2e", 3, runner=runs, workdir=tmp_path)
    assert result.failing == [("e2e.test_x::c", 3, 3), ("e2e.test_x::b", 1, 3)]
    assert not result.ok
    text = result.render()
    assert "2 test(s) failed at least once (flaky):" in text
    assert "1/3 failed (flaky)  e2e.test_x::b" in text
    assert "3/3 failed (always)  e2e.test_x::c" in text
    assert "last failure: boom" in text
    assert "e2e.test_x::a" not in text.split("flaky):")[1]


def test_all_green_reports_no_flaky_tests(tmp_path: Path) -> None:
    result = soak.soak("e2e", 2, runner=ScriptedRuns([{"a": "passed"}] * 2), workdir=tmp_path)
    assert result.ok
    assert "no flaky tests" in result.render()


def test_a_crashed_run_is_reported_not_hidden(tmp_path: Path) -> None:
    result = soak.soak("e2e", 2, runner=ScriptedRuns([{"a": "passed"}, None]), workdir=tmp_path)
    assert not result.ok
    assert "run(s) 2 crashed before writing a report" in result.render()


def test_each_run_goes_through_the_tiers_nox_session_with_its_own_report(tmp_path: Path) -> None:
    runs = ScriptedRuns([{"a": "passed"}] * 2)
    soak.soak("e2e", 2, extra=["-k", "auth"], runner=runs, workdir=tmp_path)
    first, second = runs.commands
    assert first[:6] == ["uv", "run", "nox", "-R", "-s", "e2e"]
    assert first[-2:] == ["-k", "auth"]
    assert first != second  # one junit file per run


@pytest.mark.parametrize(
    ("tier", "runs", "message"), [("nope", 1, "known tiers"), ("e2e", 0, "at least 1")]
)
def test_bad_input_says_what_is_allowed(tier: str, runs: int, message: str) -> None:
    with pytest.raises(soak.SoakError, match=message):
        soak.soak(tier, runs, runner=ScriptedRuns([]))


def test_main_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(soak, "_run", ScriptedRuns([{"a": "failed"}]))
    assert soak.main("e2e", 1) == 1
    assert "1/1 failed (always)" in capsys.readouterr().out
    assert soak.main("nope", 1) == 2
