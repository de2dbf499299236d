"""How much to trust the bench gate on this machine: each metric's false-alarm and detection rates.

Each calibration run compares HEAD with itself exactly as the gate does (worktree, own
environment, alternating wall-time rounds, up to `instruction_runs` callgrind runs per side for the
`cpu_bound` benchmarks): once as it is, where every "slower" verdict is a false alarm, and once
per injected slowdown factor, with every benchmark slowed on the candidate side through the
project's test-only slowdown switch (`[tool.gates.bench] slowdown_env`), where every "slower"
verdict is a detection. The switch injects real extra work in the measured call (a busy wait as
long as the call for wall time; extra calls of the benchmarked function inside the callgrind
window), so both metrics see it. The two metrics are tallied apart and judged against their
goals (`GOALS`).
Results go to `.gates/calibration/<run>/calibration.json`, which `gates report` shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

from gates.bench.compare import BenchReport, run_comparison
from gates.bench.settings import DEFAULT_SELECTION, BenchSettings
from gates.engine.execution import Shell, real_shell
from gates.engine.pipeline import Pipeline
from gates.errors import GatesError
from gates.git.repository import Repository

Metric = Literal["wall", "instructions"]
METRICS: tuple[Metric, ...] = ("wall", "instructions")
DEFAULT_FACTORS = (1.05, 1.10, 1.25)
CALIBRATION_DIR = Path(".gates") / "calibration"
RESULTS_FILE = "calibration.json"


class CalibrationError(GatesError):
    """Calibration cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class Goal:
    """What a metric should achieve: at most `false_alarms` of same-code comparisons judged
    slower, at least `detection` of `factor` slowdowns caught (both per benchmark comparison)."""

    false_alarms: float
    factor: float
    detection: float

    def describe(self) -> str:
        return (
            f"false alarms <= {self.false_alarms:.0%}, "
            f">= {self.detection:.0%} of {_percent(self.factor)} slowdowns caught"
        )


# The instruction metric is deterministic, so it must never raise a false alarm and must see a
# 5 % slowdown; wall time on shared cores is judged by what its statistics can promise.
GOALS: dict[Metric, Goal] = {
    "instructions": Goal(false_alarms=0.0, factor=1.05, detection=0.95),
    "wall": Goal(false_alarms=0.05, factor=1.25, detection=0.95),
}


def _percent(factor: float) -> str:
    return f"{factor - 1:.0%}"


Outcome = tuple[float, str]  # (ratio candidate/baseline, verdict)


@dataclass
class Tally:
    """One benchmark under one metric over every run: the same-code and the slowed outcomes."""

    metric: Metric
    name: str
    same: list[Outcome] = field(default_factory=list)
    slowed: dict[float, list[Outcome]] = field(default_factory=dict)

    @property
    def false_alarms(self) -> int:
        return sum(verdict == "slower" for _, verdict in self.same)

    def detections(self, factor: float) -> int:
        return sum(verdict == "slower" for _, verdict in self.slowed.get(factor, []))


@dataclass(frozen=True)
class Rate:
    """One metric at one injected factor (None: the same-code comparisons)."""

    metric: Metric
    factor: float | None
    judged: int
    slower: int

    @property
    def share(self) -> float:
        return self.slower / self.judged if self.judged else 0.0

    def goal_met(self) -> bool | None:
        """Against the metric's goal; None where the goal says nothing about this factor."""
        goal = GOALS[self.metric]
        if not self.judged:
            return None
        if self.factor is None:
            return self.share <= goal.false_alarms
        if abs(self.factor - goal.factor) < 1e-9:
            return self.share >= goal.detection
        return None


def _outcomes(report: BenchReport, metric: Metric) -> list[tuple[str, Outcome]]:
    found = report.comparisons if metric == "wall" else report.instructions
    return [(c.name.rsplit("::", 1)[-1], (c.ratio, c.verdict)) for c in found]


@dataclass
class Calibration:
    factors: tuple[float, ...]
    metrics: tuple[Metric, ...] = METRICS
    tallies: dict[tuple[Metric, str], Tally] = field(default_factory=dict)
    runs: int = 0
    gate_false_alarms: int = 0  # same-code comparisons that the gate would have failed
    gate_detections: dict[float, int] = field(default_factory=dict)  # slowed ones it failed

    def add(self, same: BenchReport, slowed: Mapping[float, BenchReport]) -> None:
        """One run: the same-code comparison and one slowed comparison per factor."""
        for metric in self.metrics:
            for name, outcome in _outcomes(same, metric):
                self._tally(metric, name).same.append(outcome)
            for factor, report in slowed.items():
                for name, outcome in _outcomes(report, metric):
                    self._tally(metric, name).slowed.setdefault(factor, []).append(outcome)
        self.runs += 1
        self.gate_false_alarms += bool(same.regressions)
        for factor, report in slowed.items():
            self.gate_detections[factor] = self.gate_detections.get(factor, 0) + bool(
                report.regressions
            )

    def _tally(self, metric: Metric, name: str) -> Tally:
        return self.tallies.setdefault((metric, name), Tally(metric, name))

    def rates(self) -> list[Rate]:
        """Per metric: the false alarms of the same-code comparisons, then the detections of
        each factor, counted per benchmark comparison."""
        result = []
        for metric in self.metrics:
            tallies = [t for (m, _), t in self.tallies.items() if m == metric]
            result.append(
                Rate(
                    metric,
                    None,
                    sum(len(t.same) for t in tallies),
                    sum(t.false_alarms for t in tallies),
                )
            )
            for factor in self.factors:
                result.append(
                    Rate(
                        metric,
                        factor,
                        sum(len(t.slowed.get(factor, [])) for t in tallies),
                        sum(t.detections(factor) for t in tallies),
                    )
                )
        return result

    def as_json(self) -> dict[str, Any]:
        return {
            "version": 2,
            "runs": self.runs,
            "factors": list(self.factors),
            "metrics": list(self.metrics),
            "rates": [
                {
                    "metric": r.metric,
                    "factor": r.factor,
                    "judged": r.judged,
                    "slower": r.slower,
                    "share": r.share,
                    "goal_met": r.goal_met(),
                }
                for r in self.rates()
            ],
            "goals": {
                metric: {
                    "false_alarms": g.false_alarms,
                    "factor": g.factor,
                    "detection": g.detection,
                }
                for metric, g in GOALS.items()
            },
            "gate_false_alarms": self.gate_false_alarms,
            "gate_detections": {str(f): n for f, n in self.gate_detections.items()},
            "benchmarks": [
                {
                    "metric": t.metric,
                    "name": t.name,
                    "same": [list(o) for o in t.same],
                    "slowed": {str(f): [list(o) for o in outs] for f, outs in t.slowed.items()},
                }
                for t in self.tallies.values()
            ],
        }

    def table(self) -> Table:
        return rates_table(self.as_json())

    def benchmark_table(self) -> Table:
        """Per metric and benchmark: false alarms and detections, with the ratios' spans."""
        result = Table(title=f"per benchmark: {self.runs} runs")
        # Whole names and spans: the counts' columns give way when the console is narrow.
        result.add_column("metric", no_wrap=True)
        result.add_column("benchmark", no_wrap=True)
        result.add_column("false alarms", justify="right")
        result.add_column("ratio, same code", justify="right", no_wrap=True)
        for factor in self.factors:
            result.add_column(f"caught +{_percent(factor)}", justify="right")
            result.add_column(f"ratio +{_percent(factor)}", justify="right", no_wrap=True)
        for t in self.tallies.values():
            cells = [
                t.metric,
                t.name,
                f"{t.false_alarms}/{len(t.same)}",
                _span([r for r, _ in t.same]),
            ]
            for factor in self.factors:
                outcomes = t.slowed.get(factor, [])
                cells += [
                    f"{t.detections(factor)}/{len(outcomes)}",
                    _span([r for r, _ in outcomes]),
                ]
            result.add_row(*cells)
        return result

    def summary(self) -> str:
        caught = ", ".join(
            f"+{_percent(f)}: {self.gate_detections.get(f, 0)}/{self.runs}" for f in self.factors
        )
        return (
            f"gate runs: {self.gate_false_alarms}/{self.runs} failed wrongly on the same code; "
            f"slowed runs failed rightly: {caught}"
        )


def rates_table(stored: Mapping[str, Any]) -> Table:
    """The rates of a calibration (as stored): per metric, false alarms, then each factor's
    detections, beside the metric's goal."""
    result = Table(
        title=f"bench gate calibration: {stored.get('runs', 0)} runs of HEAD against itself"
    )
    for column in (
        "metric",
        "injected slowdown",
        "comparisons",
        "judged slower",
        "rate",
        "goal",
        "met",
    ):
        result.add_column(
            column,
            justify="right" if column in {"comparisons", "judged slower", "rate"} else "left",
        )
    for rate in stored.get("rates", []):
        metric, factor = rate["metric"], rate["factor"]
        goal = GOALS.get(metric)
        if factor is None:
            what, target = "none (false alarms)", f"<= {goal.false_alarms:.0%}" if goal else ""
        else:
            what = f"+{_percent(factor)}"
            target = f">= {goal.detection:.0%}" if goal and abs(factor - goal.factor) < 1e-9 else ""
        met = {True: "yes", False: "NO", None: ""}[rate.get("goal_met")]
        result.add_row(
            metric,
            what,
            str(rate["judged"]),
            str(rate["slower"]),
            f"{rate['share']:.1%}" if rate["judged"] else "-",
            target,
            met,
        )
    return result


def latest(root: Path) -> tuple[str, dict[str, Any]] | None:
    """The newest stored calibration of the current format: its run id and contents."""
    for path in sorted((root / CALIBRATION_DIR).glob(f"*/{RESULTS_FILE}"), reverse=True):
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(stored, dict) and stored.get("version") == 2 and stored.get("runs"):
            return path.parent.name, stored
    return None


def _span(ratios: Sequence[float]) -> str:
    return f"{min(ratios):.4f} to {max(ratios):.4f}" if ratios else "-"


def parse_factors(text: str) -> tuple[float, ...]:
    """`1.05,1.1,1.25` → (1.05, 1.1, 1.25); each above 1 and at most 10."""
    try:
        factors = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise CalibrationError(
            "--factors takes slowdown factors separated by commas, e.g. 1.05,1.1,1.25; "
            f"got {text!r}"
        ) from None
    if not factors or any(not 1 < f <= 10 for f in factors):
        raise CalibrationError(
            f"every --factors value must be above 1 and at most 10, got {text!r}"
        )
    return tuple(sorted(set(factors)))


def calibrate(
    root: Path,
    *,
    runs: int,
    factors: Sequence[float],
    settings: BenchSettings,
    results: Path,
    log: Path,
    metrics: Sequence[Metric] = METRICS,
    selection: Sequence[str] = DEFAULT_SELECTION,
    shell: Shell = real_shell,
    environ: Mapping[str, str] | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> Calibration:
    """Run `runs` times: a comparison of HEAD with itself, then one per factor with every
    benchmark slowed by it. `metrics` without "wall" runs no timed rounds (only the callgrind
    runs of the cpu_bound benchmarks); without "instructions", no callgrind run."""
    if not settings.slowdown_env:
        raise CalibrationError(
            "[tool.gates.bench] slowdown_env is not set: name the environment variable through "
            'which the benchmarks slow themselves down (NAME=FACTOR,...), e.g. "MY_BENCH_SLOWDOWN"'
        )
    if runs < 1:
        raise CalibrationError(f"--runs must be at least 1, got {runs}")
    if not factors or any(not 1 < f <= 10 for f in factors):
        raise CalibrationError(f"every factor must be above 1 and at most 10, got {list(factors)}")
    unknown = sorted(set(metrics) - set(METRICS))
    if not metrics or unknown:
        raise CalibrationError(f"--metric must be one of {', '.join(METRICS)} or both")
    if Repository(root).state().dirty:
        raise CalibrationError(
            "the working tree differs from HEAD; calibration compares HEAD with itself, so commit "
            "or stash your changes first"
        )
    environ = dict(os.environ if environ is None else environ)
    environ.pop(settings.slowdown_env, None)
    measured = settings if "wall" in metrics else replace(settings, rounds=0)
    calibration = Calibration(tuple(factors), tuple(metrics))
    names: list[str] = []

    def compare(number: int, kind: str, candidate: dict[str, str]) -> BenchReport:
        return run_comparison(
            root,
            "HEAD",
            shell=shell,
            results=results / f"{number:02d}-{kind}",
            log=log,
            environ=environ,
            settings=measured,
            selection=selection,
            candidate_environ=candidate,
            run_id=f"calibration-{number}",
            instructions="instructions" in metrics,
        )

    for number in range(1, runs + 1):
        same = compare(number, "same", {})
        every = [c.name for c in same.comparisons] + [c.name for c in same.instructions]
        names = names or sorted({name.rsplit("::", 1)[-1] for name in every})
        if not names:
            raise CalibrationError(
                f"no benchmark ran on both sides of {list(selection)}"
                + ("" if "wall" in metrics else " (the instruction metric needs cpu_bound ones)")
            )
        slowed = {
            factor: compare(
                number,
                f"slowed-{factor:g}",
                {settings.slowdown_env: ",".join(f"{name}={factor:g}" for name in names)},
            )
            for factor in factors
        }
        calibration.add(same, slowed)
        (results / RESULTS_FILE).write_text(json.dumps(calibration.as_json(), indent=2) + "\n")
        progress(f"run {number}/{runs}: {calibration.summary()}")
    return calibration


def gate_selection(root: Path) -> list[str]:
    """The arguments of the pipeline's bench gate: calibrate what the gate compares."""
    for phase in Pipeline.load(root).phases:
        for gate in phase.gates:
            if gate.kind == "check" and gate.target == "bench":
                return list(gate.args or BenchSettings.load(root).selection)
    return list(BenchSettings.load(root).selection)
