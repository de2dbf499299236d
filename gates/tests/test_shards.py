"""Shards, the parts a unit test can reach: what `--shard I/N` and `--shards N` accept, and the
command that refreshes a tier's durations. Whole sharded runs and merges, each gate a real pytest
run in its own `gates` process, are the integration tier's (integration/gates/test_shards.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from gates_testing import ok_gate, pipeline_toml

from gates import cli
from gates.engine.pipeline import Pipeline
from gates.engine.shard import Shard
from gates.errors import ConfigError
from gates.shards.durations import refresh_command
from gates.shards.matrix import Job, jobs
from gates.tiers import Tier


@pytest.fixture
def project(make_project: Callable[..., Path]) -> Path:
    tiers = "\n[tool.gates.tiers.unit]\ndirs = ['tests']\n"
    return make_project(pipeline_toml({"unit": [ok_gate("serial")]}) + tiers)


def test_a_shard_is_i_of_n_and_anything_else_says_what_is_allowed() -> None:
    assert Shard.parse("2/3") == Shard(2, 3)
    for bad, words in [
        ("3/2", "between 1 and N"),
        ("0/2", "between 1 and N"),
        ("x", "give I/N"),
        ("1/", "give I/N"),
    ]:
        with pytest.raises(ConfigError, match=words):
            Shard.parse(bad)


def test_shard_and_shards_together_are_refused_in_one_line(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    assert cli.main(["run", "--shard", "1/2", "--shards", "2"]) == cli.EXIT_REFUSED
    assert cli.main(["run", "--shard", "3/2"]) == cli.EXIT_REFUSED
    assert cli.main(["run", "--shards", "two"]) == cli.EXIT_REFUSED
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "error: use either --shard I/N (one shard's part) or --shards N (every shard, side by "
        "side, merged), not both",
        "error: --shard 3/2: I must be between 1 and N ≥ 1, e.g. 1/2",
        "error: --shards 'two': give the number of shards, a whole number ≥ 1",
    ]
    assert not (project / ".gates").exists()


def test_durations_are_stored_by_the_tiers_session_over_all_its_tests(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tier = Tier("unit", dirs=("tests",), session="unit-3.11")
    argv = refresh_command(tier, Path("/p/test-durations/unit.json"))
    assert argv[-7:] == [
        "-s",
        "unit-3.11",
        "--",
        "--store-durations",
        "--clean-durations",
        "--durations-path=/p/test-durations/unit.json",
        "tests",
    ]
    with pytest.raises(ConfigError, match="no tests or no session"):
        refresh_command(Tier("lint", session="lint"), Path("lint.json"))
    monkeypatch.chdir(project)
    assert cli.main(["durations", "nope"]) == cli.EXIT_REFUSED
    assert "nope" in capsys.readouterr().out


def test_the_ci_matrix_is_a_job_per_tier_and_shard_from_the_pipeline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hangar = Pipeline.load(Path(__file__).parents[2])  # this project's own pipeline
    # (a --bare copy keeps this test and has neither a fuzz nor a coverage phase)
    checks = ",".join(p for p in ("deps", "static", "coverage") if p in hangar.phase_names)
    tested = [p for p in ("unit", "e2e", "integration", "fuzz") if p in hangar.phase_names]
    assert [(j.job, j.phases, j.shard, j.shards) for j in jobs(hangar, 2)] == [
        ("checks", checks, 1, 1),
        *[(tier, tier, i, 2) for tier in tested for i in (1, 2)],
        ("bench", "bench", 1, 1),
    ]
    # Every phase in exactly one job's selection: what gates merge needs of the jobs' shards.
    selected = [p for phases in {j.phases for j in jobs(hangar, 3)} for p in phases.split(",")]
    assert sorted(selected) == sorted(hangar.phase_names)
    with pytest.raises(ConfigError, match="give the number of shards per tier, ≥ 1"):
        jobs(hangar, 0)

    assert cli.main(["matrix", "--shards", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1  # one line, for $GITHUB_OUTPUT
    include = json.loads(printed)["include"]
    assert include[0] == {
        "job": "checks",
        "phases": checks,
        "shard": 1,
        "shards": 1,
    }
    assert {"job": "unit", "phases": "unit", "shard": 1, "shards": 1} in include


def test_a_pipeline_without_tests_or_bench_is_one_checks_job(
    make_project: Callable[..., Path],
) -> None:
    project = make_project(pipeline_toml({"a": [ok_gate("x")], "b": [ok_gate("y")]}))
    assert jobs(Pipeline.load(project), 4) == [Job("checks", "a,b", 1, 1)]
