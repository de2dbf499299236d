"""The gate history as a static HTML report: charts and tables in one directory, offline.

`write_report(root)` reads the history (`.gates/history.jsonl`, through `History`) and the stored
soaks (`.gates/soak/*.json`), draws each chart with matplotlib (Agg, SVG with text as paths, so
no font is needed to view it) and writes `index.html` beside the charts. The page loads nothing
from elsewhere and has no JavaScript. Every string from the history reaches the page through
jinja2's autoescaping and a chart as plain text (mathtext is off), so a test name such as
`<script>` or `$x$` shows as itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from gates.bench import Comparison
from gates.errors import GatesError
from gates.files import write_atomic
from gates.history import OUTCOMES, History, Record
from gates.pipeline import Pipeline
from gates.project import load_pyproject
from gates.soak import SOAK_DIR

matplotlib.use("Agg")  # never a window: the report is rendered headless, to files

DEFAULT_OUTPUT = Path(".gates") / "report"
INDEX = "index.html"
CHART_PREFIX = "chart-"  # every chart file starts so; stale ones are removed on each write
DEFAULT_COMMITS = 20
MAX_RUNS = 30  # runs shown in the trend charts (benchmarks, speedup)
MAX_SOAKS = 10
MIN_TIME_WINDOW = timedelta(hours=1)  # the narrowest time axis: one run is not drawn across years

COLORS = {
    "passed": "#2e7d32",
    "failed": "#c62828",
    "skipped": "#9e9e9e",
    "not run": "#ffffff",
    "faster": "#2e7d32",
    "same": "#1565c0",
    "slower": "#c62828",
    "flaky": "#ef6c00",
    "always": "#c62828",
}


class ReportError(GatesError):
    """The report cannot be written as asked (a bad option)."""


# ---------------------------------------------------------------------------------- the data
def when(text: str) -> datetime | None:
    """A record's ISO time as an aware datetime (UTC when it names no zone); None if unreadable."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def stamp(text: str) -> str:
    """A record's time as people read it, in UTC; the text itself when it is no time."""
    moment = when(text)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment else text


def short(commit: str, dirty: bool = False) -> str:
    """A commit as people read it: 7 hex digits, `+` for a run on a dirty tree."""
    return (commit[:7] or "no commit") + ("+" if dirty else "")


def short_test(name: str) -> str:
    """The test's own name: what follows the last `::` of its id."""
    return name.rsplit("::", 1)[-1]


def run_label(record: Record) -> str:
    """A run on a trend chart's axis: its time (UTC) over its commit."""
    moment = when(record.time)
    stamp = moment.astimezone(timezone.utc).strftime("%m-%d %H:%M") if moment else "?"
    return f"{stamp}\n{short(record.commit, record.dirty)}"


def _number(value: object) -> float | None:
    """A finite number from the metrics, else None (history may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Run:
    """The records of one `invoke gates`, in the order its gates ran."""

    run_id: str
    records: tuple[Record, ...]

    @property
    def first(self) -> Record:
        return self.records[0]

    @property
    def time(self) -> datetime | None:
        return when(self.first.time)

    def counts(self) -> dict[str, int]:
        return {o: sum(1 for r in self.records if r.outcome == o) for o in OUTCOMES}


def group_runs(records: Iterable[Record]) -> list[Run]:
    """Records grouped by run id, runs in the order they started."""
    grouped: dict[str, list[Record]] = {}
    for record in records:
        grouped.setdefault(record.run_id, []).append(record)
    return [Run(run_id, tuple(items)) for run_id, items in grouped.items()]


@dataclass(frozen=True)
class Column:
    """One column of the outcome grid: a commit, run on a clean or on a dirty tree."""

    commit: str
    dirty: bool
    time: str  # of the column's latest record

    @property
    def label(self) -> str:
        return short(self.commit, self.dirty)


@dataclass(frozen=True)
class OutcomeGrid:
    """The latest outcome of each gate (rows) on each of the last commits (columns)."""

    columns: list[Column]
    gates: list[str]
    cells: dict[tuple[str, int], Record]

    def cell(self, gate: str, column: int) -> Record | None:
        return self.cells.get((gate, column))


def outcome_grid(records: Sequence[Record], gate_order: Sequence[str], commits: int) -> OutcomeGrid:
    """The last `commits` commits that have records, oldest first; a commit's dirty-tree runs
    get a column of their own, right after its clean runs. Gates in pipeline order, then any
    gate the history knows that the pipeline no longer declares."""
    first_seen = list(dict.fromkeys(record.commit for record in records))
    present = {(record.commit, record.dirty) for record in records}
    keys = [(c, d) for c in first_seen[-commits:] for d in (False, True) if (c, d) in present]
    index = {key: i for i, key in enumerate(keys)}
    cells: dict[tuple[str, int], Record] = {}
    latest: dict[int, str] = {}
    extra: list[str] = []
    for record in records:
        column = index.get((record.commit, record.dirty))
        if column is None:
            continue
        gate = f"{record.phase}/{record.gate}"
        cells[(gate, column)] = record  # later records replace earlier ones
        latest[column] = record.time
        if gate not in gate_order and gate not in extra:
            extra.append(gate)
    columns = [Column(c, d, latest.get(i, "")) for (c, d), i in index.items()]
    return OutcomeGrid(columns, [*gate_order, *extra], cells)


@dataclass(frozen=True)
class PhaseTime:
    """The summed duration of one phase's gates in one run."""

    time: datetime
    phase: str
    seconds: float
    outcome: str


def phase_times(runs: Sequence[Run]) -> list[PhaseTime]:
    """Per run and phase: the gates' summed duration and the phase's outcome."""
    points = []
    for run in runs:
        moment = run.time
        if moment is None:
            continue
        phases: dict[str, list[Record]] = {}
        for record in run.records:
            phases.setdefault(record.phase, []).append(record)
        for phase, records in phases.items():
            outcomes = {r.outcome for r in records}
            outcome = next(o for o in ("failed", "passed", "skipped") if o in outcomes)
            seconds = sum(r.duration_s for r in records)
            points.append(PhaseTime(moment, phase, seconds, outcome))
    return points


@dataclass(frozen=True)
class BenchRun:
    """One run of the bench gate that compared benchmarks."""

    record: Record
    baseline: str
    rounds: int | None
    benchmarks: dict[str, Comparison]
    only_one_side: list[str]

    @property
    def label(self) -> str:
        return run_label(self.record)


def _benchmark(name: str, raw: object) -> Comparison | None:
    """A stored comparison, its verdict judged again from its figures as the gate judged it."""
    if not isinstance(raw, Mapping):
        return None
    keys = ("baseline_s", "candidate_s", "ratio", "low", "high", "threshold")
    values = [_number(raw.get(key)) for key in keys]
    numbers = [v for v in values if v is not None]
    if len(numbers) != len(keys):
        return None
    return Comparison(name, *numbers)


def bench_runs(records: Sequence[Record], keys: set[tuple[str, str]]) -> list[BenchRun]:
    """The bench gate's records that hold compared benchmarks, oldest first."""
    found = []
    for record in records:
        if (record.phase, record.gate) not in keys:
            continue
        raw = record.metrics.get("benchmarks")
        if not isinstance(raw, Mapping):
            continue
        benchmarks = {}
        for name, figures in raw.items():
            parsed = _benchmark(str(name), figures)
            if parsed is not None:
                benchmarks[str(name)] = parsed
        if not benchmarks:
            continue
        rounds = _number(record.metrics.get("rounds"))
        only = record.metrics.get("only_one_side")
        found.append(
            BenchRun(
                record,
                baseline=str(record.metrics.get("baseline", "")),
                rounds=int(rounds) if rounds is not None else None,
                benchmarks=benchmarks,
                only_one_side=[str(o) for o in only] if isinstance(only, list) else [],
            )
        )
    return found


@dataclass(frozen=True)
class SpeedupRun:
    """One measurement of the speedup check."""

    record: Record
    speedup: float
    min_speedup: float
    serial_s: float | None
    parallel_s: float | None
    cores: int | None
    best_workers: int | None

    @property
    def label(self) -> str:
        return run_label(self.record)


def speedup_runs(records: Sequence[Record], keys: set[tuple[str, str]]) -> list[SpeedupRun]:
    """The speedup check's measurements, oldest first (skips and crashes measured nothing)."""
    found = []
    for record in records:
        if (record.phase, record.gate) not in keys:
            continue
        metrics = record.metrics
        measured = _number(metrics.get("speedup"))
        needed = _number(metrics.get("min_speedup"))
        if measured is None or needed is None:
            continue
        best = _number(metrics.get("best_workers"))
        parallel = metrics.get("parallel_s")
        best_parallel = (
            _number(parallel.get(str(int(best))))
            if isinstance(parallel, Mapping) and best is not None
            else None
        )
        cores = _number(metrics.get("cores"))
        found.append(
            SpeedupRun(
                record,
                measured,
                needed,
                serial_s=_number(metrics.get("serial_s")),
                parallel_s=best_parallel,
                cores=int(cores) if cores is not None else None,
                best_workers=int(best) if best is not None else None,
            )
        )
    return found


@dataclass(frozen=True)
class SoakRun:
    number: int
    exit_status: int
    seconds: float
    crashed: bool
    counts: dict[str, int]


@dataclass(frozen=True)
class FailingTest:
    test: str
    failures: int
    runs: int
    last_message: str

    @property
    def verdict(self) -> str:
        return "always" if self.failures >= self.runs else "flaky"


@dataclass(frozen=True)
class StoredSoak:
    """One soak as `invoke soak` stored it."""

    run_id: str
    time: str
    tier: str
    commit: str
    dirty: bool
    pytest_args: list[str]
    runs: list[SoakRun]
    failing: list[FailingTest]

    @property
    def crashed(self) -> list[int]:
        return [run.number for run in self.runs if run.crashed]


def _soak(data: Mapping[str, Any]) -> StoredSoak:
    runs = [
        SoakRun(
            number=int(run["number"]),
            exit_status=int(run["exit_status"]),
            seconds=float(run["seconds"]),
            crashed=bool(run.get("crashed", False)),
            counts={str(k): int(v) for k, v in dict(run.get("counts") or {}).items()},
        )
        for run in data["runs"]
    ]
    failing = [
        FailingTest(
            test=str(item["test"]),
            failures=int(item["failures"]),
            runs=int(item["runs"]),
            last_message=str(item.get("last_message", "")),
        )
        for item in data.get("failing") or []
    ]
    return StoredSoak(
        run_id=str(data["run_id"]),
        time=str(data.get("time", "")),
        tier=str(data["tier"]),
        commit=str(data.get("commit", "")),
        dirty=bool(data.get("dirty", False)),
        pytest_args=[str(a) for a in data.get("pytest_args") or []],
        runs=runs,
        failing=failing,
    )


def stored_soaks(directory: Path, limit: int = MAX_SOAKS) -> list[StoredSoak]:
    """The latest stored soaks, newest first; unreadable or foreign files are skipped."""
    soaks = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            soaks.append(_soak(data))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    soaks.sort(key=lambda s: s.run_id)
    return list(reversed(soaks[-limit:]))


@dataclass(frozen=True)
class Skip:
    gate: str
    record: Record
    test: str
    reason: str


def latest_skips(records: Sequence[Record], gate_order: Sequence[str]) -> list[Skip]:
    """The skipped tests of each gate's latest run, gates in pipeline order."""
    latest: dict[str, Record] = {}
    for record in records:
        latest[f"{record.phase}/{record.gate}"] = record
    order = [*gate_order, *(g for g in latest if g not in gate_order)]
    rows = []
    for gate in order:
        last = latest.get(gate)
        if last is None:
            continue
        skips: list[object] = list(last.skips)  # as read: anything a foreign writer put there
        for skip in skips:
            if isinstance(skip, Mapping):
                rows.append(
                    Skip(gate, last, str(skip.get("test", "")), str(skip.get("reason", "")))
                )
    return rows


# ---------------------------------------------------------------------------------- charts
@dataclass(frozen=True)
class Chart:
    file: str
    alt: str


def _save(figure: Figure, directory: Path, name: str) -> str:
    """Write the figure as SVG (atomically: a reader never sees half a chart)."""
    file = f"{CHART_PREFIX}{name}.svg"
    write_atomic(directory / file, lambda handle: figure.savefig(handle, format="svg"))
    return file


def _run_ticks(axes: Axes, labels: Sequence[str]) -> None:
    """Categorical run labels on the x axis, at most about 12 of them, so they stay legible."""
    step = max(1, math.ceil(len(labels) / 12))
    ticks = list(range(0, len(labels), step))
    axes.set_xticks(ticks, [labels[i] for i in ticks], fontsize=8)
    axes.set_xlim(-0.6, len(labels) - 0.4)


def outcome_chart(grid: OutcomeGrid, directory: Path) -> Chart:
    """Gates (rows) by commits (columns), coloured by outcome; dirty-tree columns hatched."""
    columns, gates = grid.columns, grid.gates
    width = min(max(3.2 + 0.5 * len(columns), 7.0), 18.0)
    height = min(max(1.8 + 0.34 * len(gates), 3.0), 14.0)
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.add_subplot()
    for row, gate in enumerate(gates):
        for col, column in enumerate(columns):
            record = grid.cell(gate, col)
            outcome = record.outcome if record else "not run"
            axes.add_patch(
                Rectangle(
                    (col - 0.45, row - 0.45),
                    0.9,
                    0.9,
                    facecolor=COLORS[outcome],
                    edgecolor="#bdbdbd" if record is None else "white",
                    hatch="///" if column.dirty and record is not None else None,
                    linewidth=0.8 if record is None else 0.0,
                )
            )
    axes.set_xlim(-0.5, len(columns) - 0.5)
    axes.set_ylim(len(gates) - 0.5, -0.5)
    axes.set_xticks(range(len(columns)), [c.label for c in columns], rotation=60, ha="right")
    axes.set_yticks(range(len(gates)), gates)
    axes.tick_params(length=0)
    axes.grid(False)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.set_xlabel("commit, oldest → newest (+ = run on a dirty tree)")
    axes.set_ylabel("phase/gate")
    commits = len({c.commit for c in columns})
    axes.set_title(f"Latest outcome of each gate on the last {commits} commits")
    handles = [
        Patch(facecolor=COLORS[o], edgecolor="#bdbdbd", label=o)
        for o in ("passed", "failed", "skipped", "not run")
    ]
    handles.append(Patch(facecolor="#757575", edgecolor="white", hatch="///", label="dirty tree"))
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    file = _save(figure, directory, "outcomes")
    return Chart(file, "Grid of gate outcomes per commit")


def time_window(times: Iterable[datetime]) -> tuple[datetime, datetime]:
    """The span of a time axis that fits the runs shown: first to last with 5 % room on each side,
    widened (around its middle) to at least MIN_TIME_WINDOW, so one run or a burst of runs gets a
    small window instead of matplotlib's default of two years around a single date."""
    moments = sorted(times)
    if not moments:
        raise ValueError("a time window needs at least one time")
    first, last = moments[0], moments[-1]
    room = (last - first) * 0.05
    start, end = first - room, last + room
    if end - start < MIN_TIME_WINDOW:
        middle = first + (last - first) / 2
        start, end = middle - MIN_TIME_WINDOW / 2, middle + MIN_TIME_WINDOW / 2
    return start, end


def duration_figure(points: Sequence[PhaseTime], phase_order: Sequence[str]) -> Figure:
    """Each phase's summed gate time per run against the run's time; failed runs marked x."""
    figure = Figure(figsize=(11, 4.6), layout="constrained")
    axes = figure.add_subplot()
    phases = [*phase_order, *sorted({p.phase for p in points} - set(phase_order))]
    for phase in phases:
        mine = sorted((p for p in points if p.phase == phase), key=lambda p: p.time)
        if not mine:
            continue
        xs = [_day(p.time) for p in mine]
        axes.plot(xs, [p.seconds for p in mine], marker="o", markersize=4, label=phase)
    failed = [p for p in points if p.outcome == "failed"]
    if failed:
        axes.plot(
            [_day(p.time) for p in failed],
            [p.seconds for p in failed],
            linestyle="none",
            marker="x",
            markersize=9,
            markeredgewidth=2,
            color=COLORS["failed"],
            label="phase failed",
        )
    if points:
        start, end = time_window(p.time for p in points)
        axes.set_xlim(_day(start), _day(end))
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.set_ylim(bottom=0)
    axes.set_xlabel("time of the run (UTC)")
    axes.set_ylabel("seconds (sum of the phase's gates)")
    axes.set_title("Time per phase, per gate run")
    figure.legend(loc="outside right upper", frameon=False)
    return figure


def duration_chart(
    points: Sequence[PhaseTime], phase_order: Sequence[str], directory: Path
) -> Chart:
    """The durations chart (see `duration_figure`) written into `directory`."""
    figure = duration_figure(points, phase_order)
    return Chart(_save(figure, directory, "durations"), "Line chart of each phase's duration")


def _day(moment: datetime) -> float:
    """A time as matplotlib's date axis counts it (matplotlib.dates ships no type hints)."""
    return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]


def _unit(seconds: Iterable[float]) -> tuple[float, str]:
    largest = max(seconds, default=1.0)
    if largest >= 1:
        return 1.0, "s"
    if largest >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def _level(axes: Axes, xs: Sequence[int], levels: Sequence[float], **style: Any) -> None:
    """A reference line: straight across when it never changed, else a step per run."""
    if len(set(levels)) == 1:
        axes.axhline(levels[0], **style)
    else:
        axes.plot(xs, levels, drawstyle="steps-mid", **style)


def _pad(axes: Axes, low: float, high: float, floor: float | None = None) -> None:
    """Y limits that show everything from `low` to `high` with room around it."""
    room = max(high - low, abs(high) * 0.02, 1e-9) * 0.12
    axes.set_ylim(low - room if floor is None else floor, high + room)


def bench_chart(runs: Sequence[BenchRun], directory: Path) -> Chart:
    """Per benchmark: the ratio with its interval against 1.0 and 1 + threshold, and both times."""
    names = sorted({name for run in runs for name in run.benchmarks}, key=short_test)
    labels = [run.label for run in runs]
    figure = Figure(figsize=(12, 1.0 + 2.9 * len(names)), layout="constrained")
    grid = figure.subplots(len(names), 2, squeeze=False)
    verdicts: set[str] = set()
    equal: dict[str, Any] = {"color": "#616161", "linestyle": "--", "linewidth": 1}
    limit: dict[str, Any] = {"color": COLORS["slower"], "linestyle": ":", "linewidth": 1.5}
    baseline: dict[str, Any] = {"color": "#757575", "marker": "s"}
    candidate: dict[str, Any] = {"color": "#1565c0", "marker": "o"}
    for row, name in enumerate(names):
        ratio_axes: Axes = grid[row][0]
        time_axes: Axes = grid[row][1]
        points = [(i, run.benchmarks[name]) for i, run in enumerate(runs) if name in run.benchmarks]
        xs = [i for i, _ in points]
        figures = [b for _, b in points]
        for verdict in ("faster", "same", "slower"):
            chosen = [(i, b) for i, b in points if b.verdict == verdict]
            if not chosen:
                continue
            verdicts.add(verdict)
            ratio_axes.errorbar(
                [i for i, _ in chosen],
                [b.ratio for _, b in chosen],
                yerr=[[b.ratio - b.low for _, b in chosen], [b.high - b.ratio for _, b in chosen]],
                fmt="o",
                capsize=4,
                color=COLORS[verdict],
            )
        _level(ratio_axes, xs, [1.0] * len(xs), **equal)
        _level(ratio_axes, xs, [1 + b.threshold for b in figures], **limit)
        _pad(
            ratio_axes,
            min(1.0, *(b.low for b in figures)),
            max(1 + max(b.threshold for b in figures), *(b.high for b in figures)),
        )
        ratio_axes.set_title(f"{short_test(name)}: candidate / baseline")
        ratio_axes.set_ylabel("ratio")
        scale, unit = _unit(v for b in figures for v in (b.candidate_s, b.baseline_s))
        time_axes.plot(xs, [b.baseline_s * scale for b in figures], **baseline)
        time_axes.plot(xs, [b.candidate_s * scale for b in figures], **candidate)
        _pad(
            time_axes,
            0.0,
            max(max(b.candidate_s, b.baseline_s) for b in figures) * scale,
            floor=0.0,
        )
        time_axes.set_title(f"{short_test(name)}: time")
        time_axes.set_ylabel(unit)
        for axes in (ratio_axes, time_axes):
            _run_ticks(axes, labels)
    handles = [
        Line2D([], [], linestyle="none", marker="o", color=COLORS[v], label=f"ratio, {v}")
        for v in ("faster", "same", "slower")
        if v in verdicts
    ]
    handles += [
        Line2D([], [], label="1.0: as fast as the baseline", **equal),
        Line2D([], [], label="1 + threshold: slower beyond", **limit),
        Line2D([], [], label="baseline time", **baseline),
        Line2D([], [], label="candidate (working tree) time", **candidate),
    ]
    for axes in grid[-1]:
        axes.set_xlabel("bench gate run (time UTC, candidate commit)")
    figure.legend(handles=handles, loc="outside upper center", ncols=3, frameon=False)
    return Chart(
        _save(figure, directory, "bench"), "Benchmark ratios with intervals and times per run"
    )


def speedup_chart(runs: Sequence[SpeedupRun], directory: Path) -> Chart:
    """The parallel speedup per run against the required one; the wall times beside it."""
    figure = Figure(figsize=(12, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    xs = list(range(len(runs)))
    left.plot(xs, [r.speedup for r in runs], color="#1565c0", linewidth=1, zorder=1)
    for outcome in ("passed", "failed"):
        chosen = [(i, r) for i, r in enumerate(runs) if r.record.outcome == outcome]
        if chosen:
            left.scatter(
                [i for i, _ in chosen],
                [r.speedup for _, r in chosen],
                color=COLORS[outcome],
                zorder=2,
                label=f"speedup, gate {outcome}",
            )
    _level(
        left,
        xs,
        [r.min_speedup for r in runs],
        color=COLORS["failed"],
        linestyle="--",
        label="min_speedup (required)",
    )
    _pad(left, 0.0, max(max(r.speedup, r.min_speedup) for r in runs), floor=0.0)
    left.set_ylabel("speedup (serial / best parallel)")
    left.set_title("Parallel speedup")
    left.legend(fontsize=8, loc="lower left", frameon=True)
    serial = [(i, r.serial_s) for i, r in enumerate(runs) if r.serial_s is not None]
    parallel = [(i, r.parallel_s) for i, r in enumerate(runs) if r.parallel_s is not None]
    right.plot([i for i, _ in serial], [s for _, s in serial], marker="s", color="#757575",
               label="serial")  # fmt: skip
    right.plot([i for i, _ in parallel], [s for _, s in parallel], marker="o", color="#1565c0",
               label="parallel (best worker count)")  # fmt: skip
    _pad(right, 0.0, max([s for _, s in serial + parallel], default=1.0), floor=0.0)
    right.set_ylabel("seconds")
    right.set_title("Wall time of the unit tests")
    right.legend(fontsize=8, loc="lower left", frameon=True)
    for axes in (left, right):
        _run_ticks(axes, [r.label for r in runs])
    figure.supxlabel("speedup gate run (time UTC, commit)")
    return Chart(_save(figure, directory, "speedup"), "Parallel speedup per run")


def soak_chart(soak: StoredSoak, directory: Path) -> Chart:
    """Failures per test of one soak: red when it failed every run it ran in, orange when flaky."""
    failing = soak.failing[:30]
    names = [short_test(f.test) for f in failing]
    if len(set(names)) != len(names):
        names = [f.test for f in failing]
    figure = Figure(figsize=(10, 1.6 + 0.38 * len(failing)), layout="constrained")
    axes = figure.add_subplot()
    rows = list(range(len(failing)))
    axes.barh(rows, [f.failures for f in failing], color=[COLORS[f.verdict] for f in failing])
    for row, item in zip(rows, failing, strict=True):
        axes.text(item.failures, row, f"  {item.failures}/{item.runs}", va="center", fontsize=9)
    axes.set_yticks(rows, names)
    axes.invert_yaxis()
    axes.set_xlim(0, max(len(soak.runs), max((f.failures for f in failing), default=1)) * 1.12)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="y", visible=False)
    axes.set_xlabel(f"runs failed (of {len(soak.runs)})")
    axes.set_title(f"Soak of tier {soak.tier}: failures per test")
    figure.legend(
        handles=[
            Patch(color=COLORS["flaky"], label="flaky (failed some runs)"),
            Patch(color=COLORS["always"], label="failed every run it ran in"),
        ],
        loc="outside lower center",
        ncols=2,
        frameon=False,
    )
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in soak.run_id)
    return Chart(_save(figure, directory, f"soak-{safe}"), f"Failures per test, soak {soak.tier}")


# ---------------------------------------------------------------------------------- the page
@dataclass
class Report:
    """Everything the page shows; `charts` name the SVG files written beside it."""

    project: str
    phases: list[str]
    generated: str
    history_path: str
    records: int
    last_green: str | None
    last_run: Run | None
    grid: OutcomeGrid
    phase_times: list[PhaseTime]
    bench: list[BenchRun]
    speedup: list[SpeedupRun]
    soaks: list[StoredSoak]
    skips: list[Skip]
    charts: dict[str, Chart] = field(default_factory=dict)


def collect(root: Path, *, commits: int = DEFAULT_COMMITS, now: datetime | None = None) -> Report:
    """Read the history and the stored soaks of the project at `root`."""
    if commits < 1:
        raise ReportError(f"--commits must be at least 1, got {commits}")
    pipeline = Pipeline.load(root)
    history = History(root / pipeline.history)
    records = list(history.records())
    gate_order = [f"{p.name}/{g.name}" for p in pipeline.phases for g in p.gates]

    def keys(check: str, default: tuple[str, str]) -> set[tuple[str, str]]:
        found = {
            (p.name, g.name)
            for p in pipeline.phases
            for g in p.gates
            if g.kind == "check" and g.target == check
        }
        return found | {default}

    runs = group_runs(records)
    project = load_pyproject(root).get("project", {}).get("name") or root.name
    return Report(
        project=str(project),
        phases=[p.name for p in pipeline.phases],
        generated=(now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC"),
        history_path=str(history.path),
        records=len(records),
        last_green=history.last_green_commit(pipeline.green_gates()),
        last_run=runs[-1] if runs else None,
        grid=outcome_grid(records, gate_order, commits),
        phase_times=phase_times(runs),
        bench=bench_runs(records, keys("bench", ("bench", "compare")))[-MAX_RUNS:],
        speedup=speedup_runs(records, keys("speedup", ("unit", "speedup")))[-MAX_RUNS:],
        soaks=stored_soaks(root / SOAK_DIR),
        skips=latest_skips(records, gate_order),
    )


def draw(report: Report, directory: Path) -> dict[str, Chart]:
    """Render every chart that has data into `directory`."""
    charts: dict[str, Chart] = {}
    # Text as paths: the SVG shows the same everywhere; a fixed salt keeps its ids reproducible.
    with matplotlib.rc_context(
        {
            "svg.fonttype": "path",
            "svg.hashsalt": "gates-report",
            "text.parse_math": False,
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.titleweight": "bold",
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        if report.grid.columns:
            charts["outcomes"] = outcome_chart(report.grid, directory)
        if report.phase_times:
            charts["durations"] = duration_chart(report.phase_times, report.phases, directory)
        if report.bench:
            charts["bench"] = bench_chart(report.bench, directory)
        if report.speedup:
            charts["speedup"] = speedup_chart(report.speedup, directory)
        for soak in report.soaks:
            if soak.failing:
                charts[f"soak:{soak.run_id}"] = soak_chart(soak, directory)
    return charts


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(report: Report) -> str:
    """The page, every string from the history escaped by jinja2."""
    environment = _environment()
    environment.filters["stamp"] = stamp
    return environment.get_template("report.html").render(
        report=report, colors=COLORS, short=short, short_test=short_test
    )


def write_report(
    root: Path,
    output: Path | None = None,
    *,
    commits: int = DEFAULT_COMMITS,
    now: datetime | None = None,
) -> Path:
    """Write `index.html` and its charts into `output` (default `.gates/report`); return its path.

    Charts of an earlier report that this one no longer draws are removed (only `chart-*.svg`)."""
    report = collect(root, commits=commits, now=now)
    directory = output if output is not None else root / DEFAULT_OUTPUT
    directory.mkdir(parents=True, exist_ok=True)
    report.charts = draw(report, directory)
    wanted = {chart.file for chart in report.charts.values()}
    for stale in directory.glob(f"{CHART_PREFIX}*.svg"):
        if stale.name not in wanted:
            stale.unlink(missing_ok=True)
    index = directory / INDEX
    page = render_html(report).encode()
    write_atomic(index, lambda handle: handle.write(page))
    return index
