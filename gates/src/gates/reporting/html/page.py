"""The gate history as a static HTML report: charts and tables in one directory, offline.

`write_report(root)` reads the history (`.gates/history.jsonl`, through `History`) and the stored
soaks (`.gates/soak/*.json`), draws each chart with matplotlib (Agg, SVG with text as paths, so
no font is needed to view it) and writes `index.html` beside the charts. The page loads nothing
from elsewhere and has no JavaScript. Every string from the history reaches the page through
jinja2's autoescaping and a chart as plain text (mathtext is off), so a test name such as
`<script>` or `$x$` shows as itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from gates.bench.calibration import latest as latest_calibration
from gates.engine.history import History
from gates.engine.pipeline import Pipeline
from gates.errors import GatesError
from gates.files import write_atomic
from gates.project import load_pyproject
from gates.reporting.html.charts import (
    CHART_PREFIX,
    COLORS,
    Chart,
    bench_chart,
    coverage_chart,
    duration_chart,
    outcome_chart,
    soak_chart,
    speedup_chart,
)
from gates.reporting.html.model import (
    BenchRun,
    CoverageRun,
    OutcomeGrid,
    PhaseTime,
    Run,
    Skip,
    SpeedupRun,
    bench_runs,
    coverage_runs,
    group_runs,
    latest_skips,
    outcome_grid,
    phase_times,
    short,
    short_test,
    speedup_runs,
    stamp,
)
from gates.soak import SOAK_DIR, StoredSoak, stored_soaks

DEFAULT_OUTPUT = Path(".gates") / "report"
INDEX = "index.html"
DEFAULT_COMMITS = 20
MAX_RUNS = 30  # runs shown in the trend charts (benchmarks, speedup)
MAX_SOAKS = 10


class ReportError(GatesError):
    """The report cannot be written as asked (a bad option)."""


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
    coverage: list[CoverageRun]
    soaks: list[StoredSoak]
    skips: list[Skip]
    # The newest `gates calibrate` results: (run id, calibration.json), None before the first.
    calibration: tuple[str, dict[str, Any]] | None = None
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
        coverage=coverage_runs(records, keys("coverage", ("coverage", "ratchet")))[-MAX_RUNS:],
        soaks=stored_soaks(root / SOAK_DIR, MAX_SOAKS),
        skips=latest_skips(records, gate_order),
        calibration=latest_calibration(root),
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
        if report.coverage:
            charts["coverage"] = coverage_chart(report.coverage, directory)
        for soak in report.soaks:
            if soak.failing:
                charts[f"soak:{soak.run_id}"] = soak_chart(soak, directory)
    return charts


@functools.cache
def _environment() -> Environment:
    """One environment per process: it compiles the page's template once and keeps it."""
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["stamp"] = stamp
    return environment


def render_html(report: Report) -> str:
    """The page, every string from the history escaped by jinja2."""
    return (
        _environment()
        .get_template("report.html")
        .render(report=report, colors=COLORS, short=short, short_test=short_test)
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
