"""Shards as CI's job matrix runs them: `gates run --shard I/N`, `--shards N` and `gates merge`
on a small project in a real git repository, each gate a real pytest run (with pytest-split and
pytest-randomly) in its own `gates` process. Whole runs of the engine in processes of their own:
the integration tier's part (the unit tier tests the parts: gates/tests/test_shards.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gates import cli
from gates.engine.history import History, Record
from gates.engine.junit import TestReport
from integration.gates.repos import make_repo, toml_list

pytestmark = pytest.mark.timeout(180)

PY = sys.executable

TESTS = {
    # The durations below make test_slow outweigh the five others together.
    "tests/test_numbers.py": "import pytest\n\n\ndef test_adds():\n    assert 1 + 1 == 2\n\n\n"
    "def test_slow():\n    assert sum(range(10)) == 45\n\n\n"
    "@pytest.mark.skip(reason='not today')\ndef test_skipped():\n    pass\n",
    "tests/test_words.py": "def test_joins():\n    assert '-'.join('ab') == 'a-b'\n\n\n"
    "def test_splits():\n    assert 'a-b'.split('-') == ['a', 'b']\n\n\n"
    "def test_upper():\n    assert 'a'.upper() == 'A'\n",
    "test-durations/unit.json": json.dumps(
        {
            "tests/test_numbers.py::test_adds": 1.0,
            "tests/test_numbers.py::test_slow": 10.0,
            "tests/test_words.py::test_joins": 1.0,
            "tests/test_words.py::test_splits": 1.0,
            # test_upper and test_skipped have none: they count as the mean, 3.25
        }
    ),
}
PYTEST = [PY, "-m", "pytest", "-p", "no:cacheprovider", "tests"]


def pipeline() -> str:
    serial = toml_list([*PYTEST[:-1], "-p", "no:randomly", "tests"])
    shuffled = toml_list([*PYTEST[:-1], "-p", "randomly", "tests"])
    return f"""
[tool.pytest.ini_options]
minversion = "8.0"

[tool.gates]
history = ".gates/history.jsonl"

[tool.gates.tiers.unit]
dirs = ["tests"]

[[tool.gates.phases]]
name = "static"
gates = [{{ name = "lint", run = {toml_list([PY, "-c", "pass"])} }}]

[[tool.gates.phases]]
name = "unit"
gates = [
  {{ name = "serial", run = {serial}, tier = "unit", junit = true }},
  {{ name = "isolation", run = {shuffled}, tier = "unit", same_outcomes_as = "serial" }},
]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, pipeline(), TESTS)


def make_project(tmp_path: Path, toml: str, files: dict[str, str]) -> Path:
    """A git repository whose pyproject.toml declares the pipeline, with the tests' files."""
    pyproject = "[project]\nname = 'demo'\nversion = '0'\n\n" + toml
    return make_repo(
        tmp_path / "demo", {"pyproject.toml": pyproject, ".gitignore": "/.gates/\n", **files}
    )


def gates(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`gates ARGS…` as its own process in the project, as a person or a CI job runs it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GATES_"))}
    return subprocess.run(
        [PY, "-m", "gates", *args],
        cwd=root,
        env={**environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
        timeout=150,
    )


def runs_of(root: Path) -> dict[str, list[Record]]:
    """The whole-gate records of the project's history, by run id."""
    found: dict[str, list[Record]] = {}
    for record in History(root / ".gates" / "history.jsonl").records():
        found.setdefault(record.run_id, []).append(record)
    return found


def test_two_shards_side_by_side_give_the_outcomes_and_verdicts_of_one_run(project: Path) -> None:
    whole = gates(project, "run")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    sharded = gates(project, "run", "--shards", "2")
    assert sharded.returncode == 0, sharded.stdout + sharded.stderr

    runs = runs_of(project)
    assert len(runs) == 2
    (first, one), (second, merged) = sorted(runs.items(), key=lambda r: r[1][0].time)
    verdicts = {(r.phase, r.gate): r.outcome for r in one}
    assert verdicts == {(r.phase, r.gate): r.outcome for r in merged}
    assert verdicts == {
        ("static", "lint"): "passed",
        ("unit", "serial"): "passed",
        ("unit", "isolation"): "passed",
    }
    assert all(r.metrics["shards"] == 2 for r in merged)
    for gate in ("serial", "isolation"):
        alone = TestReport.read(project / ".gates" / "runs" / first / f"unit-{gate}.xml")
        together = TestReport.read(
            project / ".gates" / "runs" / second / "merged" / f"unit-{gate}.xml"
        )
        assert alone.outcomes == together.outcomes
        assert len(alone.outcomes) == 6
        assert alone.outcomes["tests.test_numbers::test_skipped"] == "skipped"

    # Balanced by the stored durations: test_slow (10) alone, the rest (1 + 1 + 1 + 3.25 + 3.25).
    parts = {}
    for index in (1, 2):
        shard = project / ".gates" / "runs" / second / f"shard-{index}-of-2"
        report = json.loads((shard / "unit-serial.shard.json").read_text())
        parts[index] = sorted(report["selected"])
        assert len(report["collected"]) == 6
        # The shuffled run kept the same tests as the serial one, whatever its order.
        shuffled = json.loads((shard / "unit-isolation.shard.json").read_text())
        assert sorted(shuffled["selected"]) == parts[index]
    assert sorted([parts[1], parts[2]], key=len)[0] == ["tests.test_numbers::test_slow"]
    # The history has each shard's part, tagged, and the merged whole, each once.
    tags = [r.shard for r in History(project / ".gates" / "history.jsonl").all_records()]
    assert sorted(tags) == sorted(["", "", "", *["1/2"] * 3, *["2/2"] * 3, "", "", ""])


def test_after_a_failing_test_the_merge_gives_one_runs_verdicts(tmp_path: Path) -> None:
    failing = {"tests/test_broken.py": "def test_broken():\n    assert 1 == 2\n"}
    project = make_project(tmp_path, pipeline(), {**TESTS, **failing})
    assert gates(project, "run").returncode == cli.EXIT_FAILED
    sharded = gates(project, "run", "--shards", "2")
    assert sharded.returncode == cli.EXIT_FAILED, sharded.stdout + sharded.stderr
    (first, one), (second, merged) = sorted(runs_of(project).items(), key=lambda r: r[1][0].time)
    # The serial gate fails; the isolation gate after it is not run, in one run as merged.
    verdicts = {(r.phase, r.gate): r.outcome for r in one}
    assert verdicts == {("static", "lint"): "passed", ("unit", "serial"): "failed"}
    assert verdicts == {(r.phase, r.gate): r.outcome for r in merged}
    alone = TestReport.read(project / ".gates" / "runs" / first / "unit-serial.xml")
    together = TestReport.read(project / ".gates" / "runs" / second / "merged" / "unit-serial.xml")
    assert alone.outcomes == together.outcomes
    assert alone.outcomes["tests.test_broken::test_broken"] == "failed"
    assert "tests.test_broken::test_broken" in sharded.stdout
    # What to do next, as one run says it: the command, and the failing shard's log.
    assert f"Next: {PY} -m pytest" in sharded.stdout
    assert "/unit-serial.log" in sharded.stdout


def test_a_shard_the_split_gives_no_test_passes_its_test_gates(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    # Six tests in eight shards: the two shards with the least duration get none.
    assert cli.main(["run", "--shard", "8/8", "--only", "unit", "--run-id", "r8"]) == 0
    shard = project / ".gates" / "runs" / "r8" / "shard-8-of-8"
    records = {r.gate: r for r in History(shard / "history.jsonl").all_records()}
    assert {gate: r.outcome for gate, r in records.items()} == {
        "serial": "passed",
        "isolation": "passed",
    }
    assert records["serial"].summary == "no tests in shard 8/8"
    assert records["serial"].shard == "8/8"
    assert json.loads((shard / "unit-serial.shard.json").read_text())["selected"] == []
    assert "merge every shard's with `gates merge DIR…`" in capsys.readouterr().out


def test_a_test_no_shard_ran_fails_the_merge_naming_it(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for shard in ("1/2", "2/2"):
        done = gates(project, "run", "--shard", shard, "--run-id", "r1")
        assert done.returncode == 0, done.stdout + done.stderr
    one, two = (project / ".gates" / "runs" / "r1" / f"shard-{i}-of-2" for i in (1, 2))
    assert not (project / ".gates" / "history.jsonl").exists()  # the merge appends, once

    # One shard's result for one test is lost (an upload that went wrong, say).
    junit = two / "unit-serial.xml"
    tree = ET.parse(junit)  # noqa: S314 - the test's own pytest output
    suite = next(tree.getroot().iter("testsuite"))
    case = next(iter(suite.iter("testcase")))
    lost = f"{case.get('classname')}::{case.get('name')}"
    suite.remove(case)
    tree.write(junit)

    monkeypatch.chdir(project)  # the merge in this process, as CI's merge job runs it
    assert cli.main(["merge", str(one), str(two), "--no-github"]) == cli.EXIT_FAILED
    assert f"{lost}: collected, but no shard ran it" in capsys.readouterr().out
    merged = project / ".gates" / "runs" / "r1" / "merged"
    assert (merged / "unit-serial.lost.txt").read_text() == f"{lost}\n"
    records = {(r.gate, r.outcome) for r in runs_of(project)["r1"]}
    assert ("serial", "failed") in records
    # The isolation gate compares the merged runs, so it fails for the same test.
    assert ("isolation", "failed") in records

    assert cli.main(["merge", str(one)]) == cli.EXIT_REFUSED
    assert "shard 2/2 is missing: merge needs all 2 shards" in capsys.readouterr().out
    assert cli.main(["merge", str(project / "tests")]) == cli.EXIT_REFUSED
    assert "no shard's results in it (no shard.json)" in capsys.readouterr().out
    # Merged twice, the history still holds each record once.
    before = len(list(History(project / ".gates" / "history.jsonl").all_records()))
    # The run's directory stands for the shards' below it, as CI's downloaded artifacts do.
    assert cli.main(["merge", str(one.parent), "--no-github"]) == cli.EXIT_FAILED
    assert "this run was merged before" in capsys.readouterr().out
    assert len(list(History(project / ".gates" / "history.jsonl").all_records())) == before
