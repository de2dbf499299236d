"""Calibration of the bench gate: real git worktrees, a shell standing in for pytest-benchmark and
callgrind (test_bench.BenchShell, which honours the demo project's slowdown switch on both)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from test_bench import SWITCH, SWITCHED_PROJECT, BenchShell, worktrees

from gates import cli
from gates.bench import calibration
from gates.bench.calibration import (
    CalibrationError,
    Metric,
    Rate,
    calibrate,
    latest,
    parse_factors,
    rates_table,
)
from gates.bench.compare import render
from gates.bench.settings import BenchSettings

# The demo's cpu_bound benchmarks and their instructions per window on the baseline.
COUNTS = {"test_fast": 1_000_000, "test_slow": 40_000_000}


def run(
    root: Path,
    shell: BenchShell,
    runs: int = 2,
    factors: Sequence[float] = (1.05, 1.25),
    metrics: Sequence[Metric] = ("wall", "instructions"),
) -> calibration.Calibration:
    return calibrate(
        root,
        runs=runs,
        factors=factors,
        metrics=metrics,
        settings=BenchSettings.load(root),
        results=root / ".gates" / "calibration" / "c1",
        log=root / ".gates" / "calibration" / "c1" / "bench.log",
        shell=shell,
        environ={"PATH": "/usr/bin:/bin", SWITCH: "test_fast=3"},  # a person's leftover switch
    )


def rate(result: calibration.Calibration, metric: str, factor: float | None) -> Rate:
    return next(r for r in result.rates() if r.metric == metric and r.factor == factor)


def test_both_metrics_are_tallied_apart_per_factor(make_project: Callable[..., Path]) -> None:
    root = make_project(SWITCHED_PROJECT)
    shell = BenchShell(root, instructions=COUNTS)
    result = run(root, shell)
    assert result.runs == 2
    # Same code: nothing slower under either metric.
    assert rate(result, "wall", None) == Rate("wall", None, 4, 0)
    assert rate(result, "instructions", None) == Rate("instructions", None, 4, 0)
    # Counted instructions see the 5 % of extra work, which wall time's 10 % threshold lets pass.
    assert rate(result, "instructions", 1.05) == Rate("instructions", 1.05, 4, 4)
    assert rate(result, "wall", 1.05).slower == 0
    assert rate(result, "wall", 1.25) == Rate("wall", 1.25, 4, 4)
    assert rate(result, "instructions", 1.05).goal_met() is True
    assert rate(result, "wall", 1.25).goal_met() is True
    assert rate(result, "wall", 1.05).goal_met() is None  # the wall goal is about 25 %
    assert result.gate_false_alarms == 0
    assert result.gate_detections == {1.05: 2, 1.25: 2}
    # 2 runs x 3 comparisons x 2 rounds x 2 sides; the switch only ever on slowed candidates,
    # never the person's leftover one.
    assert len(shell.sides) == 24
    switched = {e.get(SWITCH) for e in shell.environs}
    assert switched == {None, "test_fast=1.05,test_slow=1.05", "test_fast=1.25,test_slow=1.25"}
    # 2 runs x 2 sides x (3 rounds of the same-code comparison, which never settles early with
    # the default spread, + 1 round each of the slowed ones, which settle at once).
    assert len(shell.instruction_runs) == 20
    stored = json.loads((root / ".gates/calibration/c1/calibration.json").read_text())
    assert stored["runs"] == 2
    assert stored["gate_detections"] == {"1.05": 2, "1.25": 2}
    assert len(worktrees(root)) == 1


def test_instructions_alone_run_no_timed_rounds(make_project: Callable[..., Path]) -> None:
    root = make_project(SWITCHED_PROJECT)
    shell = BenchShell(root, instructions=COUNTS)
    result = run(root, shell, runs=1, factors=(1.05,), metrics=("instructions",))
    assert shell.sides == []  # no pytest-benchmark round on either side
    # (baseline, candidate) x (3 rounds of the same code + 1 of the slowed)
    assert len(shell.instruction_runs) == 8
    assert [r.metric for r in result.rates()] == ["instructions", "instructions"]
    assert rate(result, "instructions", 1.05).share == 1.0


def test_instructions_alone_need_cpu_bound_benchmarks(make_project: Callable[..., Path]) -> None:
    root = make_project(SWITCHED_PROJECT)
    with pytest.raises(CalibrationError, match="needs cpu_bound ones"):
        run(root, BenchShell(root), runs=1, metrics=("instructions",))


def test_a_noisy_benchmark_shows_up_as_false_alarms(make_project: Callable[..., Path]) -> None:
    """A candidate that is always 15 % slower (what noise looks like to the gate) is counted,
    by both metrics, and misses the goals."""
    root = make_project(SWITCHED_PROJECT)
    result = run(root, BenchShell(root, slowdown=1.15, instructions=COUNTS), runs=1)
    assert result.tallies[("wall", "test_slow")].false_alarms == 1
    assert rate(result, "instructions", None) == Rate("instructions", None, 2, 2)
    assert rate(result, "instructions", None).goal_met() is False
    assert result.gate_false_alarms == 1
    assert "1/1 failed wrongly" in result.summary()


def test_a_dirty_tree_is_refused(make_project: Callable[..., Path]) -> None:
    root = make_project(SWITCHED_PROJECT)
    (root / "README.md").write_text("changed\n")
    with pytest.raises(CalibrationError, match="commit or stash"):
        run(root, BenchShell(root))


@pytest.mark.parametrize(
    ("runs", "factors", "metrics", "message"),
    [
        (0, (1.25,), ("wall",), "--runs must be at least 1"),
        (1, (1.0,), ("wall",), "must be above 1"),
        (1, (), ("wall",), "must be above 1"),
        (1, (1.25,), ("time",), "--metric must be one of"),
    ],
)
def test_bad_arguments_are_named(
    make_project: Callable[..., Path],
    runs: int,
    factors: tuple[float, ...],
    metrics: tuple[Metric, ...],
    message: str,
) -> None:
    root = make_project(SWITCHED_PROJECT)
    with pytest.raises(CalibrationError, match=message):
        run(root, BenchShell(root), runs=runs, factors=factors, metrics=metrics)


@pytest.mark.parametrize(
    ("text", "expected"), [("1.05,1.1", (1.05, 1.1)), ("1.25, 1.05,1.25", (1.05, 1.25))]
)
def test_factors_are_parsed_sorted_and_deduplicated(text: str, expected: tuple[float, ...]) -> None:
    assert parse_factors(text) == expected


@pytest.mark.parametrize(
    ("text", "message"), [("fast", "separated by commas"), ("0.9", "above 1"), ("", "above 1")]
)
def test_bad_factors_say_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        parse_factors(text)


def test_a_project_without_a_slowdown_switch_is_told_how_to_declare_one(
    make_project: Callable[..., Path],
) -> None:
    root = make_project(SWITCHED_PROJECT.replace(f'slowdown_env = "{SWITCH}"\n', ""))
    with pytest.raises(CalibrationError, match="slowdown_env is not set"):
        run(root, BenchShell(root))


def test_the_tables_show_rates_goals_and_ratio_spans(make_project: Callable[..., Path]) -> None:
    root = make_project(SWITCHED_PROJECT)
    result = run(root, BenchShell(root, instructions=COUNTS), runs=1)
    rates = render(result.table())
    assert "none (false alarms)" in rates
    assert "+5%" in rates
    assert ">= 95%" in rates
    assert "yes" in rates
    per_benchmark = render(result.benchmark_table())
    assert "test_slow" in per_benchmark
    assert "1/1" in per_benchmark
    # The instruction ratio of the 5 % injection: exactly the extra work.
    assert result.tallies[("instructions", "test_slow")].slowed[1.05] == [(1.05, "slower")]


def test_the_newest_stored_calibration_is_found_and_rendered(
    make_project: Callable[..., Path],
) -> None:
    root = make_project(SWITCHED_PROJECT)
    assert latest(root) is None
    run(root, BenchShell(root, instructions=COUNTS), runs=1)
    older = root / ".gates" / "calibration" / "c0"
    older.mkdir()
    (older / "calibration.json").write_text(json.dumps({"factor": 1.25, "runs": 3}))  # old format
    found = latest(root)
    assert found is not None
    run_id, stored = found
    assert run_id == "c1"
    assert "instructions" in render(rates_table(stored))


def test_main_reports_a_refusal_with_exit_status_2(
    make_project: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = make_project(SWITCHED_PROJECT)
    (root / "README.md").write_text("changed\n")
    monkeypatch.chdir(root)
    assert cli.calibrate(1, "1.25") == 2
    assert "commit or stash" in capsys.readouterr().out
    assert cli.calibrate(1, "1.25", metric="time") == 2
    assert "--metric must be" in capsys.readouterr().out


def test_the_selection_is_the_bench_gates_arguments(make_project: Callable[..., Path]) -> None:
    root = make_project(
        SWITCHED_PROJECT.replace("check = 'bench'", "check = 'bench', args = ['bench/x.py']")
    )
    assert calibration.gate_selection(root) == ["bench/x.py"]
