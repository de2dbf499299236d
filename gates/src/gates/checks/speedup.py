"""The `speedup` check: what xdist gains over the serial run, with advice when it gains little."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gates.engine.execution import GateContext, GateResult
from gates.engine.pipeline import SPEEDUP_RUNS, Gate
from gates.parallel.speedup import SuiteTiming, TimingError, advise, read_timing


def speedup(gate: Gate, ctx: GateContext) -> GateResult:
    """How much xdist gains, judged against what the suite's own durations allow, with advice.

    Reads the per-test timings of two earlier gates of the phase (`serial`, default "serial",
    and `parallel`, default "isolation"; both junit = true, so the runner gave them the timing
    plugin): the tests never run a third time to be timed. gates.parallel.speedup has the
    analysis."""
    cores = ctx.cpu_count
    if cores < 2:
        return GateResult("skipped", summary=f"{cores} core: nothing to run in parallel")
    runs: dict[str, SuiteTiming] = {}
    for role, default in SPEEDUP_RUNS.items():
        key = f"{gate.phase}/{gate.options.get(role, default)}"
        path = ctx.timing_for(key)
        if not path.exists():
            return GateResult(
                "failed",
                summary=f"no timings of gate {key} in this run: the speedup check reads them "
                f"from the {role} run, which must run first in the same phase with junit = true",
            )
        try:
            runs[role] = read_timing(path)
        except TimingError as error:
            return GateResult("failed", summary=str(error))
    busy = _busy_machine(runs)
    if busy:
        return GateResult("skipped", summary=busy)
    raw = gate.options.get("min_speedup", "auto")
    advice = advise(
        runs["serial"],
        runs["parallel"],
        cores=cores,
        min_speedup="auto" if raw == "auto" else float(raw),
    )
    metrics = dict(advice.metrics)
    workers = runs["parallel"].workers
    # The history keeps `parallel_s` per worker count, as it always has.
    metrics["parallel_s"] = {str(workers): metrics.get("parallel_s")}
    metrics["best_workers"] = workers
    metrics["min_speedup"] = metrics.get("required")
    lines = list(advice.lines)
    cost = _phase_cost(gate, ctx, runs.values())
    if cost is not None:
        metrics["phase_cost"] = cost
        lines.append(
            f"the {gate.phase} phase so far took {cost:.2f}x the wall time of the two pytest "
            "runs it needs (the rest: nox, environment sync, coverage reports)"
        )
    return GateResult(advice.outcome, summary=advice.summary, metrics=metrics, key_output=lines)


def _phase_cost(gate: Gate, ctx: GateContext, runs: Iterable[SuiteTiming]) -> float | None:
    """The phase's gates so far, in seconds, over the pytest sessions' own wall time."""
    spent = sum(
        result.duration_s for key, result in ctx.results.items() if key.startswith(f"{gate.phase}/")
    )
    needed = sum(run.wall for run in runs)
    return round(spent / needed, 2) if spent and needed > 0 else None


# Other work may take this share of the machine's CPU capacity during a timed run before a
# wall-clock speedup stops meaning anything about the suite.
BUSY_SHARE = 0.25


def _busy_machine(runs: Mapping[str, SuiteTiming]) -> str:
    """Why the speedup cannot be judged (other processes took much of the CPU while one of the
    runs was timed), else ''."""
    for role, run in runs.items():
        share = run.others_share()
        if share is not None and share > BUSY_SHARE:
            return (
                f"not judged: other work took {share:.0%} of the machine's {run.cores} cores "
                f"during the {role} run (more than {BUSY_SHARE:.0%}), so its wall time says "
                "little about the suite; run the phase again on a quiet machine"
            )
    return ""
