"""Soak: N runs of a tier, and every test that failed at least once listed with its counts."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gates_testing import git

from gates import cli, soak
from gates.git.repository import TreeState

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


E2E_TIER = "[tool.gates.tiers.e2e]\ndirs = ['e2e']\nsession = 'e2e'\n"


def test_main_exit_status_and_the_stored_soak(
    make_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = make_repo({"pyproject.toml": E2E_TIER})
    monkeypatch.setattr(soak, "_run", ScriptedRuns([{"a": "failed"}]))
    assert cli.soak_tier("e2e", 1, ["-k", "a"], root=root) == 1
    out = capsys.readouterr().out
    assert "1/1 failed (always)" in out
    (stored,) = (root / ".gates" / "soak").iterdir()
    assert f"soak stored: {stored}" in out
    data = json.loads(stored.read_text())
    assert stored.name == f"{data['run_id']}.json"
    assert data["tier"] == "e2e"
    assert data["pytest_args"] == ["-k", "a"]
    assert (data["commit"], data["dirty"]) == (git(root, "rev-parse", "HEAD").strip(), False)
    assert data["runs"] == [
        {
            "number": 1,
            "exit_status": 1,
            "seconds": data["runs"][0]["seconds"],
            "crashed": False,
            "counts": {"passed": 0, "failed": 1, "error": 0, "skipped": 0},
        }
    ]
    assert data["failing"] == [
        {"test": "e2e.test_x::a", "failures": 1, "runs": 1, "last_message": "boom"}
    ]
    assert datetime.fromisoformat(data["time"]).tzinfo is not None


def test_main_refuses_bad_input_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(E2E_TIER)
    assert cli.soak_tier("nope", 1, root=tmp_path) == 2
    assert cli.soak_tier("e2e", 0, root=tmp_path) == 2
    assert "known tiers" in capsys.readouterr().out
    assert not (tmp_path / ".gates").exists()


def test_main_outside_a_project_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".git").mkdir()  # tests may run inside a checkout; the search stops here
    monkeypatch.chdir(tmp_path)
    assert cli.soak_tier("e2e", 1) == 2
    assert "no pyproject.toml with a [tool.gates] table" in capsys.readouterr().out


def test_a_soak_that_cannot_be_stored_warns_and_keeps_its_status(
    make_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = make_repo({"pyproject.toml": E2E_TIER})
    monkeypatch.setattr(soak, "_run", ScriptedRuns([{"a": "passed"}]))
    (root / ".gates").write_text("a file where the directory should be\n")
    assert cli.soak_tier("e2e", 1, root=root) == 0
    out = capsys.readouterr().out
    assert "no flaky tests" in out
    assert "warning: the soak could not be stored" in out


def test_store_writes_whole_files_only(tmp_path: Path) -> None:
    result = soak.soak(
        "unit",
        2,
        runner=ScriptedRuns([{"a": "passed", "b": "failed"}, None]),
        workdir=tmp_path,
    )
    state = TreeState("0123456789abcdef", True, "d1ff")
    started = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    directory = tmp_path / "soak"
    path = soak.store(result, directory, run_id="r1", started=started, state=state)
    assert [p.name for p in directory.iterdir()] == ["r1.json"]  # no temporary file left
    data = json.loads(path.read_text())
    assert (data["commit"], data["dirty"], data["time"]) == (
        "0123456789abcdef",
        True,
        "2026-11-23T17:00:00+00:00",
    )
    assert data["crashed_runs"] == [2]
    assert not data["ok"]
    assert [run["crashed"] for run in data["runs"]] == [False, True]
    assert data["failing"][0]["test"] == "e2e.test_x::b"
