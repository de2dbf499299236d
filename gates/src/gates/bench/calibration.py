"""How much to trust the bench gate on this machine: its false-alarm and detection rates.

Each calibration run is two real comparisons of HEAD with itself, exactly as the gate runs them
(worktree, own environment, alternating rounds): one as it is, where every "slower" verdict is
a false alarm, and one with every benchmark slowed by `factor` on the candidate side through the
project's test-only slowdown switch (`[tool.gates.bench] slowdown_env`), where every "slower"
verdict is a detection. Results go to `.gates/calibration/<run>/`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from gates.bench.compare import BenchReport, run_comparison
from gates.bench.settings import DEFAULT_SELECTION, BenchSettings
from gates.engine.execution import Shell, real_shell
from gates.engine.pipeline import Pipeline
from gates.errors import GatesError
from gates.git.repository import Repository


class CalibrationError(GatesError):
    """Calibration cannot run as asked; the message says what to change."""


@dataclass
class Tally:
    """One benchmark over every run: the ratios and verdicts of both kinds of comparison."""

    name: str
    same: list[tuple[float, str]] = field(default_factory=list)  # (ratio, verdict), A against A
    slowed: list[tuple[float, str]] = field(default_factory=list)  # A against A slowed

    @property
    def false_alarms(self) -> int:
        return sum(verdict == "slower" for _, verdict in self.same)

    @property
    def detections(self) -> int:
        return sum(verdict == "slower" for _, verdict in self.slowed)


@dataclass
class Calibration:
    factor: float
    tallies: dict[str, Tally] = field(default_factory=dict)
    gate_false_alarms: int = 0  # comparisons of HEAD with itself that the gate would have failed
    gate_detections: int = 0  # slowed comparisons that the gate failed

    def add(self, same: BenchReport, slowed: BenchReport) -> None:
        for kind, report in (("same", same), ("slowed", slowed)):
            for comparison in report.comparisons:
                short = comparison.name.rsplit("::", 1)[-1]
                tally = self.tallies.setdefault(short, Tally(short))
                getattr(tally, kind).append((comparison.ratio, comparison.verdict))
        self.gate_false_alarms += bool(same.regressions)
        self.gate_detections += bool(slowed.regressions)

    @property
    def completed(self) -> int:
        return max((len(t.same) for t in self.tallies.values()), default=0)

    def rates(self) -> dict[str, float]:
        """Per comparison of one benchmark, and per gate run (any benchmark slower)."""
        judged_same = sum(len(t.same) for t in self.tallies.values())
        judged_slowed = sum(len(t.slowed) for t in self.tallies.values())
        runs = self.completed
        return {
            "false_alarm_rate": _share(
                sum(t.false_alarms for t in self.tallies.values()), judged_same
            ),
            "detection_rate": _share(
                sum(t.detections for t in self.tallies.values()), judged_slowed
            ),
            "gate_false_alarm_rate": _share(self.gate_false_alarms, runs),
            "gate_detection_rate": _share(self.gate_detections, runs),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "runs": self.completed,
            **self.rates(),
            "benchmarks": {
                name: {
                    "false_alarms": t.false_alarms,
                    "detections": t.detections,
                    "same": [{"ratio": r, "verdict": v} for r, v in t.same],
                    "slowed": [{"ratio": r, "verdict": v} for r, v in t.slowed],
                }
                for name, t in self.tallies.items()
            },
        }

    def table(self) -> Table:
        result = Table(
            title=f"bench gate calibration: {self.completed} runs, slowdown {self.factor:g}x"
        )
        for column in (
            "benchmark",
            "false alarms",
            "ratio, same code",
            "detected",
            "ratio, slowed",
        ):
            result.add_column(column, justify="left" if column == "benchmark" else "right")
        for t in self.tallies.values():
            result.add_row(
                t.name,
                f"{t.false_alarms}/{len(t.same)}",
                _span([r for r, _ in t.same]),
                f"{t.detections}/{len(t.slowed)}",
                _span([r for r, _ in t.slowed]),
            )
        return result

    def summary(self) -> str:
        rates = self.rates()
        return (
            f"false alarms: {rates['false_alarm_rate']:.1%} of benchmark comparisons, "
            f"{self.gate_false_alarms}/{self.completed} gate runs failed wrongly; "
            f"detection: {rates['detection_rate']:.1%} of {self.factor:g}x slowdowns caught, "
            f"{self.gate_detections}/{self.completed} gate runs failed rightly"
        )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _span(ratios: Sequence[float]) -> str:
    return f"{min(ratios):.3f} to {max(ratios):.3f}" if ratios else "-"


def calibrate(
    root: Path,
    *,
    runs: int,
    factor: float,
    settings: BenchSettings,
    results: Path,
    log: Path,
    selection: Sequence[str] = DEFAULT_SELECTION,
    shell: Shell = real_shell,
    environ: Mapping[str, str] | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> Calibration:
    """Run `runs` pairs of comparisons of HEAD with itself (plain, then slowed by `factor`)."""
    if not settings.slowdown_env:
        raise CalibrationError(
            "[tool.gates.bench] slowdown_env is not set: name the environment variable through "
            'which the benchmarks slow themselves down (NAME=FACTOR,...), e.g. "MY_BENCH_SLOWDOWN"'
        )
    if runs < 1:
        raise CalibrationError(f"--runs must be at least 1, got {runs}")
    if not 1 < factor <= 10:
        raise CalibrationError(f"--factor must be above 1 and at most 10, got {factor}")
    if Repository(root).state().dirty:
        raise CalibrationError(
            "the working tree differs from HEAD; calibration compares HEAD with itself, so commit "
            "or stash your changes first"
        )
    environ = dict(os.environ if environ is None else environ)
    environ.pop(settings.slowdown_env, None)
    calibration = Calibration(factor)
    names: list[str] = []

    def compare(number: int, kind: str, candidate: dict[str, str]) -> BenchReport:
        return run_comparison(
            root,
            "HEAD",
            shell=shell,
            results=results / f"{number:02d}-{kind}",
            log=log,
            environ=environ,
            settings=settings,
            selection=selection,
            candidate_environ=candidate,
            run_id=f"calibration-{number}",
        )

    for number in range(1, runs + 1):
        same = compare(number, "same", {})
        names = names or [c.name.rsplit("::", 1)[-1] for c in same.comparisons]
        if not names:
            raise CalibrationError(f"no benchmark ran on both sides of {list(selection)}")
        switch = ",".join(f"{name}={factor:g}" for name in names)
        slowed = compare(number, "slowed", {settings.slowdown_env: switch})
        calibration.add(same, slowed)
        (results / "calibration.json").write_text(json.dumps(calibration.as_json(), indent=2))
        progress(f"run {number}/{runs}: {calibration.summary()}")
    return calibration


def gate_selection(root: Path) -> list[str]:
    """The arguments of the pipeline's bench gate: calibrate what the gate compares."""
    for phase in Pipeline.load(root).phases:
        for gate in phase.gates:
            if gate.kind == "check" and gate.target == "bench":
                return list(gate.args or BenchSettings.load(root).selection)
    return list(BenchSettings.load(root).selection)
