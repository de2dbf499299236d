"""The report's charts: matplotlib figures saved as SVG files beside the page (Agg, headless)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from gates.files import write_atomic
from gates.reporting.html.model import (
    BenchRun,
    CoverageRun,
    OutcomeGrid,
    PhaseTime,
    SpeedupRun,
    short_test,
)
from gates.soak import StoredSoak

matplotlib.use("Agg")  # never a window: the report is rendered headless, to files

CHART_PREFIX = "chart-"  # every chart file starts so; stale ones are removed on each write
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
    "by tree": "#1565c0",
}


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
    required = [(i, r.min_speedup) for i, r in enumerate(runs) if r.min_speedup is not None]
    if required:
        _level(
            left,
            [i for i, _ in required],
            [level for _, level in required],
            color=COLORS["failed"],
            linestyle="--",
            label="required",
        )
    allowed = [(i, r.bound) for i, r in enumerate(runs) if r.bound is not None]
    if allowed:
        left.plot([i for i, _ in allowed], [b for _, b in allowed], color="#757575",
                  linestyle=":", marker=".", label="what the suite allows")  # fmt: skip
    top = max(max(r.speedup, r.min_speedup or 0.0, r.bound or 0.0) for r in runs)
    _pad(left, 0.0, top, floor=0.0)
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
    """Failures per test of one soak: red when it failed every run it ran in, orange when flaky
    (passed and failed on one tree), blue when it changed with the tree."""
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
    soaked = "all tiers" if soak.tier == "all" else f"tier {soak.tier}"
    axes.set_title(f"Soak of {soaked}: failures per test")
    labels = {
        "flaky": "flaky (passed and failed on one tree)",
        "always": "failed every run it ran in",
        "by tree": "failed on one tree, passed on another",
    }
    shown = [v for v in labels if v in {f.verdict for f in failing} or v != "by tree"]
    figure.legend(
        handles=[Patch(color=COLORS[v], label=labels[v]) for v in shown],
        loc="outside lower center",
        ncols=len(shown),
        frameon=False,
    )
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in soak.run_id)
    return Chart(_save(figure, directory, f"soak-{safe}"), f"Failures per test, soak {soak.tier}")


def coverage_chart(runs: Sequence[CoverageRun], directory: Path) -> Chart:
    """The combined total and each package's coverage per run, with the floor."""
    figure = Figure(figsize=(12, 4.2), layout="constrained")
    axes = figure.subplots()
    xs = list(range(len(runs)))
    axes.plot(xs, [r.total for r in runs], color="#212121", linewidth=2, marker="o", label="total")
    packages = list(dict.fromkeys(name for r in runs for name in r.packages))
    for name in packages:
        points = [(i, r.packages[name]) for i, r in enumerate(runs) if name in r.packages]
        axes.plot([i for i, _ in points], [v for _, v in points], marker=".", linewidth=1,
                  label=name)  # fmt: skip
    floors = [(i, r.floor) for i, r in enumerate(runs) if r.floor is not None]
    if floors:
        _level(axes, [i for i, _ in floors], [f for _, f in floors], color=COLORS["failed"],
               linestyle="--", label="floor")  # fmt: skip
    failed = [(i, r.total) for i, r in enumerate(runs) if r.record.outcome == "failed"]
    if failed:
        axes.scatter([i for i, _ in failed], [v for _, v in failed], color=COLORS["failed"],
                     zorder=3, label="gate failed")  # fmt: skip
    values = [r.total for r in runs] + [v for r in runs for v in r.packages.values()]
    _pad(axes, min(values + [f for _, f in floors]), 100.0)
    axes.set_ylabel("covered lines and branches, %")
    axes.set_title("Coverage, all tiers combined")
    axes.legend(fontsize=8, loc="lower left", frameon=True)
    _run_ticks(axes, [r.label for r in runs])
    figure.supxlabel("coverage gate run (time UTC, commit)")
    return Chart(_save(figure, directory, "coverage"), "Coverage per run: total and per package")
