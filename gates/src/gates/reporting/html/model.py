"""What the report shows, read from the gate history: runs, the outcome grid, phase times,
the bench and speedup trends and the latest skips. No drawing and no HTML here."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from gates.bench.instructions import InstructionComparison
from gates.bench.statistics import Comparison
from gates.engine.history import OUTCOMES, Record


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
    """The records of one `gates run`, in the order its gates ran."""

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
    # The cpu_bound benchmarks' instruction counts, when the run had any.
    instructions: dict[str, InstructionComparison] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return run_label(self.record)


def _instructions(raw: object) -> dict[str, InstructionComparison]:
    """Stored instruction counts, their verdicts judged again from the counts and threshold."""
    found: dict[str, InstructionComparison] = {}
    if not isinstance(raw, Mapping):
        return found
    for name, figures in raw.items():
        if not isinstance(figures, Mapping):
            continue
        baseline, candidate = _integer(figures.get("baseline")), _integer(figures.get("candidate"))
        threshold = _number(figures.get("threshold"))
        if baseline and candidate is not None and threshold is not None:
            found[str(name)] = InstructionComparison(str(name), baseline, candidate, threshold)
    return found


def _benchmark(name: str, raw: object) -> Comparison | None:
    """A stored comparison, its verdict judged again from its figures as the gate judged it."""
    if not isinstance(raw, Mapping):
        return None
    keys = ("baseline_s", "candidate_s", "ratio", "low", "high", "threshold")
    values = [_number(raw.get(key)) for key in keys]
    numbers = [v for v in values if v is not None]
    if len(numbers) != len(keys):
        return None
    baseline_s, candidate_s, ratio, low, high, threshold = numbers
    rounds = _number(raw.get("rounds"))  # absent from records made before it was stored
    return Comparison(name, baseline_s, candidate_s, ratio, low, high, threshold, int(rounds or 0))


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
                instructions=_instructions(record.metrics.get("instructions")),
            )
        )
    return found


@dataclass(frozen=True)
class SpeedupRun:
    """One measurement of the speedup check."""

    record: Record
    speedup: float
    min_speedup: float | None  # None: the suite cannot gain, so nothing was required
    serial_s: float | None
    parallel_s: float | None
    cores: int | None
    best_workers: int | None
    bound: float | None = None  # what the suite's durations allow with those workers
    recommended_workers: int | None = None  # 0: run serially
    phase_cost: float | None = None  # the phase's time over the two pytest runs it needs

    @property
    def label(self) -> str:
        return run_label(self.record)


def _integer(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def speedup_runs(records: Sequence[Record], keys: set[tuple[str, str]]) -> list[SpeedupRun]:
    """The speedup check's measurements, oldest first (skips and crashes measured nothing)."""
    found = []
    for record in records:
        if (record.phase, record.gate) not in keys:
            continue
        metrics = record.metrics
        measured = _number(metrics.get("speedup"))
        needed = _number(metrics.get("min_speedup"))
        if measured is None:
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
                bound=_number(metrics.get("bound")),
                recommended_workers=_integer(metrics.get("recommended_workers")),
                phase_cost=_number(metrics.get("phase_cost")),
            )
        )
    return found


@dataclass(frozen=True)
class CoverageRun:
    """One judgement of the coverage check: the combined total and each package's figure."""

    record: Record
    total: float
    packages: dict[str, float]
    floor: float | None
    baseline: str  # the green commit it was judged against; "" when only against the floor

    @property
    def label(self) -> str:
        return run_label(self.record)


def coverage_runs(records: Sequence[Record], keys: set[tuple[str, str]]) -> list[CoverageRun]:
    """The coverage check's figures, oldest first (a skip or a failure to combine has none)."""
    found = []
    for record in records:
        if (record.phase, record.gate) not in keys:
            continue
        total = _number(record.metrics.get("total"))
        if total is None:
            continue
        raw = record.metrics.get("packages")
        packages = {}
        for name, value in raw.items() if isinstance(raw, Mapping) else []:
            number = _number(value)
            if number is not None:
                packages[str(name)] = number
        found.append(
            CoverageRun(
                record,
                total,
                packages,
                floor=_number(record.metrics.get("floor")),
                baseline=str(record.metrics.get("baseline", "")),
            )
        )
    return found


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
