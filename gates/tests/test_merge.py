"""`gates merge`, in this process, over the shards' directories that CI's jobs would leave in a
small project: `gates run --only check --shard 1/1` and `--only unit --shard I/2` (each gate a
real pytest run without the plugins this environment would load for it: only pytest-split and
the gates' own). The integration tier runs whole sharded runs, each shard its own `gates`
process (integration/gates/test_shards.py)."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gates_testing import PY, git, toml_list

from gates import cli
from gates.engine.history import History
from gates.engine.junit import TestReport

PYTEST = [PY, "-m", "pytest", "-p", "no:cacheprovider", "-p", "pytest_split.plugin", "tests"]
# A gate that keeps a file, as the e2e session keeps a failed test's trace.
KEEPS = (
    "import os, pathlib; kept = pathlib.Path(os.environ['GATES_ARTIFACTS_DIR']); "
    "kept.mkdir(parents=True); (kept / 'trace.zip').write_text(str(os.getpid()))"
)
PIPELINE = f"""
# Also what makes this project pytest's rootdir, wherever its temp dir is.
[tool.pytest.ini_options]
minversion = "8.0"

[tool.gates.tiers.unit]
dirs = ["tests"]

[[tool.gates.phases]]
name = "check"
gates = [{{ name = "lint", run = {toml_list([PY, "-c", "pass"])} }}]

[[tool.gates.phases]]
name = "unit"
gates = [
  {{ name = "serial", run = {toml_list(PYTEST)}, tier = "unit", junit = true }},
  {{ name = "again", run = {toml_list(PYTEST)}, tier = "unit", junit = true, same_outcomes_as = "serial" }},
  {{ name = "note", run = {toml_list([PY, "-c", KEEPS])}, every_shard = true }},
]
"""  # noqa: E501
FILES = {
    "tests/test_a.py": "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n",
    "tests/test_b.py": "def test_three():\n    pass\n",
    "test-durations/unit.json": json.dumps(
        {"tests/test_a.py::test_one": 5.0, "tests/test_a.py::test_two": 1.0}
    ),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project in a git repository, after run r1's jobs ran (once per module): the check
    phase in one shard, the unit phase in two."""
    project = tmp_path_factory.mktemp("merge") / "demo"
    files = {
        "pyproject.toml": "[tool.gates]\nhistory = '.gates/history.jsonl'\n" + PIPELINE,
        ".gitignore": "/.gates/\n",
        **FILES,
    }
    for relative, text in files.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "-c", "user.name=T", "-c", "user.email=t@example.invalid", "commit", "-qm", "1")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in [n for n in os.environ if n.startswith(("PYTEST_", "GATES_"))]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        monkeypatch.chdir(project)
        for phases, shard in (("check", "1/1"), ("unit", "1/2"), ("unit", "2/2")):
            argv = ["run", "--only", phases, "--shard", shard, "--run-id", "r1", "--no-github"]
            assert cli.main(argv) == 0
    return project


@pytest.fixture
def shards(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, placeholder_charts: None
) -> tuple[Path, Path, Path, Path]:
    """This test's own copy of the project, and the directories of the unit phase's two shards
    and of the check phase's one (a merge writes the report: its charts are placeholders)."""
    project = tmp_path / "demo"
    shutil.copytree(built, project, symlinks=True)
    monkeypatch.chdir(project)
    run = project / ".gates" / "runs" / "r1"
    one, two = (run / f"shard-{i}-of-2" for i in (1, 2))
    return project, one, two, run / "shard-1-of-1"


def test_the_merge_of_two_shards_is_one_runs_verdicts_and_history(
    shards: tuple[Path, Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    project, one, two, check = shards
    assert not (project / ".gates" / "history.jsonl").exists()  # the merge appends, once
    # Each shard names the phases its job selected: what the merge groups them by.
    selected = [json.loads((d / "shard.json").read_text())["phases"] for d in (check, one, two)]
    assert selected == [["check"], ["unit"], ["unit"]]
    # test_one (5 s) alone in one shard, the two others (1 s and the mean, 3 s) in the other.
    parts = [
        json.loads((shard / "unit-serial.shard.json").read_text())["selected"]
        for shard in (one, two)
    ]
    assert sorted(parts, key=len) == [
        ["tests.test_a::test_one"],
        ["tests.test_a::test_two", "tests.test_b::test_three"],
    ]
    capsys.readouterr()
    assert cli.main(["merge", str(one.parent), "--no-github"]) == 0
    assert "report:" in capsys.readouterr().out

    merged = TestReport.read(project / ".gates" / "runs" / "r1" / "merged" / "unit-serial.xml")
    assert merged.outcomes == {
        "tests.test_a::test_one": "passed",
        "tests.test_a::test_two": "passed",
        "tests.test_b::test_three": "passed",
    }
    history = History(project / ".gates" / "history.jsonl")
    whole = {r.gate: (r.outcome, r.metrics.get("shards")) for r in history.records()}
    assert whole == {
        "lint": ("passed", 1),
        "serial": ("passed", 2),
        "again": ("passed", 2),
        "note": ("passed", 2),
    }
    assert {r.run_id for r in history.records()} == {"r1"}  # the jobs' records are one run's
    tags = sorted(r.shard for r in history.all_records() if r.shard)
    # Every shard records every gate it ran (note runs in every shard too).
    assert tags == ["1/1"] + ["1/2"] * 3 + ["2/2"] * 3
    note = {r.shard: r.outcome for r in history.all_records() if r.gate == "note" and r.shard}
    assert note == {"1/2": "passed", "2/2": "passed"}  # every_shard: it ran in both
    # What each shard's gate kept is gathered, a name both used kept once per shard.
    kept = project / ".gates" / "runs" / "r1" / "merged" / "artifacts" / "unit-note"
    assert sorted(p.name for p in kept.iterdir()) == ["trace.zip", "trace.zip.shard-2-of-2"]
    assert {p.read_text() for p in kept.iterdir()} == {
        (d / "artifacts" / "unit-note" / "trace.zip").read_text() for d in (one, two)
    }


def test_a_test_whose_result_is_lost_fails_the_merge_by_name(
    shards: tuple[Path, Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    project, one, two, check = shards
    junit = two / "unit-serial.xml"
    tree = ET.parse(junit)  # noqa: S314 - the test's own pytest output
    suite = next(tree.getroot().iter("testsuite"))
    case = next(iter(suite.iter("testcase")))
    lost = f"{case.get('classname')}::{case.get('name')}"
    suite.remove(case)
    tree.write(junit)
    capsys.readouterr()

    assert cli.main(["merge", str(one), str(two), str(check), "--no-github"]) == cli.EXIT_FAILED
    assert f"{lost}: collected, but no shard ran it" in capsys.readouterr().out
    merged = project / ".gates" / "runs" / "r1" / "merged"
    assert (merged / "unit-serial.lost.txt").read_text() == f"{lost}\n"
    outcomes = {r.gate: r.outcome for r in History(project / ".gates" / "history.jsonl").records()}
    # The isolation gate compares the merged runs, so it fails for the same test.
    assert outcomes == {"lint": "passed", "serial": "failed", "again": "failed", "note": "passed"}


def test_what_is_not_every_shard_of_one_run_is_refused_naming_what_is_wrong(
    shards: tuple[Path, Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    project, one, two, check = shards
    capsys.readouterr()
    assert cli.main(["merge", str(one), str(check)]) == cli.EXIT_REFUSED
    said = capsys.readouterr().out
    assert "shard 2/2 is missing: merge needs all 2 shards (of --only unit)" in said
    # A phase two selections ran cannot be judged from one of them.
    manifest = json.loads((check / "shard.json").read_text())
    (check / "shard.json").write_text(json.dumps({**manifest, "phases": ["check", "unit"]}))
    assert cli.main(["merge", str(one.parent)]) == cli.EXIT_REFUSED
    assert "phase 'unit' was run by two selections of shards" in capsys.readouterr().out
    (check / "shard.json").write_text(json.dumps({**manifest, "phases": "check"}))
    assert cli.main(["merge", str(one.parent)]) == cli.EXIT_REFUSED
    assert "shard.json: unreadable (phases must be a list of names" in capsys.readouterr().out
    assert cli.main(["merge", str(project / "tests")]) == cli.EXIT_REFUSED
    assert "no shard's results in it (no shard.json)" in capsys.readouterr().out
    (two / "shard.json").write_text("{not json")
    assert cli.main(["merge", str(one), str(two)]) == cli.EXIT_REFUSED
    assert "shard.json: unreadable" in capsys.readouterr().out
    assert not (project / ".gates" / "history.jsonl").exists()
