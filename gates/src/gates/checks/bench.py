"""The `bench` check: no benchmark is surely slower than on the baseline commit."""

from __future__ import annotations

from gates.bench import affected
from gates.bench import compare as benchmarks
from gates.bench.baseline import BaselineError
from gates.bench.baseline import choose as choose_baseline
from gates.bench.instructions import InstructionError
from gates.bench.settings import BenchSettings
from gates.engine.execution import GateContext, GateResult, tail
from gates.engine.history import History
from gates.engine.pipeline import Gate, Pipeline
from gates.git.repository import Repository


def bench(gate: Gate, ctx: GateContext) -> GateResult:
    """No benchmark is surely slower than on the baseline by more than its threshold.

    The baseline is never the candidate (gates.bench.baseline says how it is chosen); without
    one the gate is skipped with the reason. Only the benchmarks the change can affect run
    (gates.bench.affected; all of them with `--all-benchmarks`), and none at all passes with the
    reason. The results are stored under `.gates/bench/<run>/`."""
    pipeline = Pipeline.load(ctx.root)
    repository = Repository(ctx.root)
    try:
        chosen = choose_baseline(
            repository,
            history=History(ctx.root / pipeline.history),
            required=pipeline.green_gates(),
            environ=ctx.environ,
            explicit=ctx.baseline,
        )
    except BaselineError as error:
        return GateResult("failed", summary=str(error))
    sides = chosen.describe(repository)
    baseline = chosen.commit
    if baseline is None:
        return GateResult("skipped", summary=sides, metrics={"candidate": chosen.candidate})
    settings = BenchSettings.load(ctx.root, gate.options.get("tier"))
    log = ctx.log_for(gate.key)
    selection = list(gate.args or settings.selection)
    choice: dict[str, object] = {"run_all": True, "reason": "--all-benchmarks"}
    chose: list[str] = ["running all benchmarks: --all-benchmarks"]
    unmeasured_only = False
    if not ctx.all_benchmarks:
        plan = affected.plan(
            ctx.root,
            baseline,
            selection,
            settings,
            shell=ctx.shell,
            log=log,
            environ=ctx.environ,
            timeout=gate.timeout or 1800,
            run_id=ctx.run_dir.name,
        )
        choice, chose = plan.metrics(), plan.lines()
        unmeasured_only = bool(plan.selected) and plan.selected == plan.unmeasured
        if plan.selection is None:
            return GateResult(
                "passed",
                summary=f"{sides}: no benchmark affected: {plan.reason}",
                metrics={
                    "affected": choice,
                    "candidate": chosen.candidate,
                    "source": chosen.source,
                },
                key_output=chose,
            )
        selection = plan.selection
    try:
        outcome = benchmarks.run_comparison(
            ctx.root,
            baseline,
            shell=ctx.shell,
            results=ctx.root / ".gates" / "bench" / ctx.run_dir.name,
            log=log,
            environ=ctx.environ,
            settings=settings,
            selection=selection,
            timeout=gate.timeout or 1800,
            run_id=ctx.run_dir.name,  # names the scratch dir, so leftovers show their run
        )
    except (benchmarks.BenchError, InstructionError) as error:
        return GateResult(
            "failed",
            summary=str(error),
            metrics={"affected": choice},
            key_output=[*chose, *tail(log)],
        )
    lines = [*chose, *outcome.text(settings).rstrip("\n").splitlines()]
    if outcome.only_one_side:
        lines.append(f"only on one side (not compared): {', '.join(outcome.only_one_side)}")
    if outcome.instructions_one_side:
        lines.append(
            "instructions counted on one side only (not compared): "
            + ", ".join(outcome.instructions_one_side)
        )
    if outcome.swept:
        lines.append(
            f"removed leftovers of killed comparisons: {', '.join(map(str, outcome.swept))}"
        )
    slower = [c.name.rsplit("::", 1)[-1] for c in outcome.comparisons if c.regressed]
    slower += [
        f"{c.name.rsplit('::', 1)[-1]} (instructions)" for c in outcome.instructions if c.regressed
    ]
    counted = f", {len(outcome.instructions)} instruction counts" if outcome.instructions else ""
    again = [c for c in outcome.comparisons if c.rounds > settings.rounds]
    more = f" (up to {max(c.rounds for c in again)} for {len(again)} in doubt)" if again else ""
    summary = (
        f"{sides}: {len(outcome.comparisons)} benchmarks, {settings.rounds} rounds{more}"
        f"{counted}: "
        + (f"{len(slower)} slower ({', '.join(slower)})" if slower else "no regression")
    )
    if not outcome.comparisons and unmeasured_only:
        # Only benchmarks the baseline skipped when its map was made (a missing tool, say) were
        # affected, and they were skipped again: nothing the change touches was measurable here.
        return GateResult(
            "passed",
            summary=f"{sides}: the only benchmarks that could be affected were skipped on both "
            "sides, as when the baseline's coverage map was made",
            metrics={"affected": choice, "candidate": chosen.candidate, "source": chosen.source},
            key_output=lines,
        )
    if not outcome.comparisons:
        return GateResult("failed", summary="no benchmark ran on both sides", key_output=lines)
    return GateResult(
        "failed" if slower else "passed",
        summary=summary,
        metrics={
            **outcome.metrics(),
            "affected": choice,
            "candidate": chosen.candidate,
            "source": chosen.source,
        },
        key_output=lines,
    )
