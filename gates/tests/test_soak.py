"""Soak: N runs of a tier, and every test that failed at least once listed with its counts."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gates_testing import git

from gates import cli, soak
from gates.engine.junit import TestReport
from gates.git.repository import TreeState
from gates.tiers import Tiers

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
        self.cwds: list[Path | None] = []  # where soak._run was told to run each command

    def __call__(self, argv: Sequence[str], cwd: Path | None = None) -> int:
        self.commands.append(list(argv))
        self.cwds.append(cwd)
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
    assert "2 test(s) failed at least once:" in text
    assert "1/3 failed (flaky)  e2e.test_x::b  (on tree outside git)" in text
    assert "3/3 failed (always)  e2e.test_x::c" in text
    assert "last failure: boom" in text
    assert "e2e.test_x::a" not in text.split("at least once:")[1].split("rule of three")[0]


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
    runs = ScriptedRuns([{"a": "failed"}])
    monkeypatch.setattr(soak, "_run", runs)
    assert cli.soak_tier("e2e", 1, ["-k", "a"], root=root) == 1
    assert runs.cwds == [root]  # the project's root, wherever gates was started
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
            "tier": "e2e",
            "tree": git(root, "rev-parse", "HEAD").strip()[:12],
            "round": 1,
        }
    ]
    assert data["failing"] == [
        {
            "test": "e2e.test_x::a",
            "failures": 1,
            "runs": 1,
            "last_message": "boom",
            "verdict": "always",
            "trees": [],
        }
    ]
    assert data["tiers"] == ["e2e"]
    assert data["confidence"] == [
        "tier e2e: failed in 1 of 1 rounds (100 %); the rule of three bounds only a clean record"
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


THREE_TIERS = """
[tool.gates.tiers.unit]
dirs = ["tests/unit"]
session = "unit-{python}"
[tool.gates.tiers.e2e]
dirs = ["e2e"]
session = "e2e"
[tool.gates.tiers.lint]
session = "lint"
[tool.gates.tiers.docs]
dirs = ["docs_tests"]
"""


def tiers_of(text: str) -> Tiers:
    return Tiers.from_table(tomllib.loads(text)["tool"]["gates"]["tiers"], python="3.11")


class Trees:
    """The tree key before each run: `keys[i]` for run i + 1 (the last one from then on)."""

    def __init__(self, *keys: str) -> None:
        self.keys, self.calls = keys, 0

    def __call__(self) -> str:
        self.calls += 1
        return self.keys[min(self.calls, len(self.keys)) - 1]


def test_all_soaks_every_tier_with_dirs_and_a_session_once_per_round(tmp_path: Path) -> None:
    runs = ScriptedRuns([{"a": "passed"}] * 4)
    result = soak.soak("all", 2, runner=runs, workdir=tmp_path, tiers=tiers_of(THREE_TIERS))
    sessions = [command[command.index("-s") + 1] for command in runs.commands]
    assert sessions == ["unit-3.11", "e2e", "unit-3.11", "e2e"]  # lint has no dirs, docs no session
    assert [(r.round, r.tier) for r in result.runs] == [
        (1, "unit"),
        (1, "e2e"),
        (2, "unit"),
        (2, "e2e"),
    ]
    assert runs.commands[0][6:8] == ["--", "tests/unit"]
    assert result.render().startswith("soak of all tiers (unit, e2e): 2 rounds, 4 runs\n")
    assert "  run 2 (round 1, e2e): exit 0" in result.render()


def test_a_pass_and_a_fail_on_the_same_tree_is_flaky_across_trees_it_is_not() -> None:
    passed, failed = {"t::x": "passed"}, {"t::x": "failed"}
    same_tree = soak.SoakResult("e2e", [run(1, failed, "abc"), run(2, passed, "abc")])
    assert same_tree.verdict("t::x") == "flaky"
    assert same_tree.flaky_trees("t::x") == ["abc"]
    # Failed on the tree before an edit, passed on the tree after it: fixed, not flaky.
    fixed = soak.SoakResult("e2e", [run(1, failed, "abc"), run(2, passed, "abc+d1ff")])
    assert fixed.verdict("t::x") == "by tree"
    assert "1/2 failed (by tree)  t::x" in fixed.render()
    assert "the tree changed during the soak: 2 trees" in fixed.render()
    broken = soak.SoakResult("e2e", [run(1, failed, "abc"), run(2, failed, "abc+d1ff")])
    assert broken.verdict("t::x") == "always"
    # Flaky on one tree and failing on another is still flaky.
    mixed = soak.SoakResult(
        "e2e", [run(1, failed, "abc"), run(2, passed, "abc"), run(3, failed, "def")]
    )
    assert (mixed.verdict("t::x"), mixed.flaky_trees("t::x")) == ("flaky", ["abc"])


def test_the_tree_is_taken_before_every_run(tmp_path: Path) -> None:
    trees = Trees("abc", "abc", "abc+d1ff")
    outcomes: list[dict[str, str] | None] = [{"x": "failed"}, {"x": "passed"}, {"x": "passed"}]
    result = soak.soak("e2e", 3, runner=ScriptedRuns(outcomes), workdir=tmp_path, tree=trees)
    assert [r.tree for r in result.runs] == ["abc", "abc", "abc+d1ff"]
    assert result.flaky_trees("e2e.test_x::x") == ["abc"]
    assert "1/3 failed (flaky)  e2e.test_x::x  (on tree abc)" in result.render()


def test_the_rule_of_three_bounds_each_clean_test_and_a_clean_suite() -> None:
    runs = [run(n, {"t::a": "passed", "t::b": "passed"}, "abc") for n in range(1, 11)]
    runs[9].report.outcomes["t::b"] = "skipped"  # a skip is no trial: b passed 9 times
    result = soak.SoakResult("all", runs, tiers=["unit"])
    assert result.never_failed() == {"t::a": 10, "t::b": 9}
    assert result.confidence() == [
        "the suite (every tier once): 0 failures in 10 rounds, so its failure rate is below "
        "3/10 = 30 % (95 % confidence)",
        "each of the 2 tests that never failed: failure rate below 3/n, n its passing runs "
        "(n = 9 to 10: below 33.3 % at worst)",
    ]
    assert soak.rule_of_three(1) == 1.0
    assert soak.rule_of_three(300) == 0.01


def test_a_round_fails_when_any_of_its_runs_had_a_failure_or_crashed() -> None:
    clean = {"t::a": "passed"}
    runs = [
        run(1, clean, "abc", tier="unit", round_=1),
        run(2, {"t::b": "failed"}, "abc", tier="e2e", round_=1),
        run(3, clean, "abc", tier="unit", round_=2),
        run(4, {}, "abc", tier="e2e", round_=2, status=3),  # crashed
        run(5, clean, "abc", tier="unit", round_=3),
        run(6, {"t::b": "passed"}, "abc", tier="e2e", round_=3),
    ]
    result = soak.SoakResult("all", runs, tiers=["unit", "e2e"])
    assert (result.rounds, result.failed_rounds) == (3, [1, 2])
    assert result.confidence()[0] == (
        "the suite (every tier once): failed in 2 of 3 rounds (66.7 %); the rule of three "
        "bounds only a clean record"
    )
    assert result.never_failed() == {"t::a": 3}


def test_a_stored_soak_keeps_trees_verdicts_and_bounds(tmp_path: Path) -> None:
    result = soak.SoakResult(
        "all",
        [run(1, {"t::x": "failed"}, "abc"), run(2, {"t::x": "passed"}, "abc", round_=2)],
        tiers=["unit"],
    )
    started = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    path = soak.store(result, tmp_path, run_id="r1", started=started)
    [stored] = soak.stored_soaks(tmp_path)
    assert stored == soak.StoredSoak.from_dict(json.loads(path.read_text()))
    assert (stored.tier, stored.tiers) == ("all", ["unit"])
    assert [(r.tier, r.tree, r.round) for r in stored.runs] == [
        ("unit", "abc", 1),
        ("unit", "abc", 2),
    ]
    [failing] = stored.failing
    assert (failing.verdict, failing.trees) == ("flaky", ("abc",))
    assert stored.confidence == result.confidence()


def test_a_soak_stored_before_trees_reads_as_it_did() -> None:
    old = {
        "run_id": "r0",
        "tier": "e2e",
        "runs": [{"number": 1, "exit_status": 1, "seconds": 1.0}],
        "failing": [{"test": "t::x", "failures": 1, "runs": 1}],
    }
    stored = soak.StoredSoak.from_dict(old)
    assert (stored.failing[0].verdict, stored.tiers, stored.confidence) == ("always", [], [])
    assert (stored.runs[0].tree, stored.runs[0].round) == ("", 0)


@pytest.mark.parametrize(
    ("tier", "words", "expected"),
    [
        ("all", ["-k", "auth"], ("all", ["-k", "auth"])),
        ("", ["e2e", "-k", "auth"], ("e2e", ["-k", "auth"])),
        ("", ["e2e"], ("e2e", [])),
    ],
)
def test_the_tier_is_named_by_option_or_first_word(
    tier: str, words: list[str], expected: tuple[str, list[str]]
) -> None:
    assert cli.soak_arguments(tier, words) == expected


def test_a_soak_without_a_tier_says_how_to_name_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["soak", "--runs", "2"]) == 2
    assert "name the tier to soak: --tier NAME, or --tier all" in capsys.readouterr().out


def test_all_without_a_soakable_tier_is_refused() -> None:
    with pytest.raises(soak.SoakError, match="has none with dirs and a session"):
        soak.soak(
            "all",
            1,
            runner=ScriptedRuns([]),
            tiers=tiers_of("[tool.gates.tiers.lint]\nsession = 'lint'\n"),
        )
    with pytest.raises(soak.SoakError, match="one command runs one tier"):
        soak.command_for("all", Path("x.xml"), tiers=tiers_of(THREE_TIERS))


def run(
    number: int,
    outcomes: dict[str, str],
    tree: str,
    *,
    tier: str = "unit",
    round_: int = 0,
    status: int | None = None,
) -> soak.RunRecord:
    """A synthetic run; its round is its number unless given."""
    exit_status = (
        status if status is not None else int(any(o != "passed" for o in outcomes.values()))
    )
    report = TestReport(dict(outcomes))
    return soak.RunRecord(number, exit_status, 1.0, report, tier, tree, round_ or number)
