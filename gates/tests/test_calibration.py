"""Calibration of the bench gate: real git worktrees, a shell standing in for pytest-benchmark
(test_bench.BenchShell, which honours the demo project's slowdown switch)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_bench import SWITCH, SWITCHED_PROJECT, BenchShell, worktrees

from gates import cli
from gates.bench import calibration
from gates.bench.calibration import CalibrationError, calibrate
from gates.bench.compare import render
from gates.bench.settings import BenchSettings


def run(
    root: Path, shell: BenchShell, runs: int = 2, factor: float = 1.25
) -> calibration.Calibration:
    return calibrate(
        root,
        runs=runs,
        factor=factor,
        settings=BenchSettings.load(root),
        results=root / ".gates" / "calibration" / "c1",
        log=root / ".gates" / "calibration" / "c1" / "bench.log",
        shell=shell,
        environ={"PATH": "/usr/bin:/bin", SWITCH: "test_fast=3"},  # a person's leftover switch
    )


def test_calibration_counts_no_false_alarm_and_every_detection(
    make_project: Callable[..., Path],
) -> None:
    root = make_project(SWITCHED_PROJECT)
    shell = BenchShell(root)
    progress = run(root, shell)
    assert progress.completed == 2
    assert progress.rates() == {
        "false_alarm_rate": 0.0,
        "detection_rate": 1.0,
        "gate_false_alarm_rate": 0.0,
        "gate_detection_rate": 1.0,
    }
    assert set(progress.tallies) == {"test_fast", "test_slow"}
    # 2 runs x 2 comparisons x 2 rounds x 2 sides; the switch only ever on slowed candidates
    assert len(shell.sides) == 16
    switched = [e.get(SWITCH) for side, e in zip(shell.sides, shell.environs, strict=True)]
    assert set(switched) == {None, "test_fast=1.25,test_slow=1.25"}
    stored = json.loads((root / ".gates/calibration/c1/calibration.json").read_text())
    assert stored["runs"] == 2
    assert stored["benchmarks"]["test_slow"]["detections"] == 2
    assert "0/2 gate runs failed wrongly" in progress.summary()
    assert len(worktrees(root)) == 1


def test_a_noisy_benchmark_shows_up_as_false_alarms(make_project: Callable[..., Path]) -> None:
    """A candidate that is always 15 % slower (what noise looks like to the gate) is counted."""
    root = make_project(SWITCHED_PROJECT)
    progress = run(root, BenchShell(root, slowdown=1.15), runs=1)
    assert progress.tallies["test_slow"].false_alarms == 1
    assert progress.gate_false_alarms == 1
    assert progress.rates()["false_alarm_rate"] == 1.0


def test_a_dirty_tree_is_refused(make_project: Callable[..., Path]) -> None:
    root = make_project(SWITCHED_PROJECT)
    (root / "README.md").write_text("changed\n")
    with pytest.raises(CalibrationError, match="commit or stash"):
        run(root, BenchShell(root))


@pytest.mark.parametrize(
    ("runs", "factor", "message"),
    [(0, 1.25, "--runs must be at least 1"), (1, 1.0, "--factor must be above 1")],
)
def test_bad_arguments_are_named(
    make_project: Callable[..., Path], runs: int, factor: float, message: str
) -> None:
    root = make_project(SWITCHED_PROJECT)
    with pytest.raises(CalibrationError, match=message):
        run(root, BenchShell(root), runs=runs, factor=factor)


def test_a_project_without_a_slowdown_switch_is_told_how_to_declare_one(
    make_project: Callable[..., Path],
) -> None:
    root = make_project(SWITCHED_PROJECT.replace(f'slowdown_env = "{SWITCH}"\n', ""))
    with pytest.raises(CalibrationError, match="slowdown_env is not set"):
        run(root, BenchShell(root))


def test_the_table_shows_counts_and_ratio_spans(make_project: Callable[..., Path]) -> None:
    root = make_project(SWITCHED_PROJECT)
    progress = run(root, BenchShell(root), runs=1)
    text = render(progress.table())
    assert "test_slow" in text
    assert "0/1" in text
    assert "1/1" in text


def test_main_reports_a_refusal_with_exit_status_2(
    make_project: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = make_project(SWITCHED_PROJECT)
    (root / "README.md").write_text("changed\n")
    monkeypatch.chdir(root)
    assert cli.calibrate(1, 1.25) == 2
    assert "commit or stash" in capsys.readouterr().out


def test_the_selection_is_the_bench_gates_arguments(make_project: Callable[..., Path]) -> None:
    root = make_project(
        SWITCHED_PROJECT.replace("check = 'bench'", "check = 'bench', args = ['bench/x.py']")
    )
    assert calibration.gate_selection(root) == ["bench/x.py"]
