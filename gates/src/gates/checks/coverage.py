"""The `coverage` check: the run's coverage, combined over every gate that measured, is not
under the floor and has not fallen below the last green commit's figures (gates.ratchet)."""

from __future__ import annotations

from gates.coverage.figures import data_files
from gates.engine.execution import GateContext, GateResult
from gates.engine.history import History
from gates.engine.pipeline import Gate, Pipeline
from gates.ratchet import Ratchet, judge


def coverage(gate: Gate, ctx: GateContext) -> GateResult:
    """Combine this run's coverage data and judge it (a shard's part is judged by the merge)."""
    pipeline = Pipeline.load(ctx.root)
    if pipeline.coverage is None:
        return GateResult(
            "failed",
            summary="the coverage check needs a [tool.gates.coverage] table (packages = [...])",
        )
    if ctx.shard is not None:
        return GateResult(
            "skipped", summary="a shard measures its part; `gates merge` judges every shard's data"
        )
    return judge(
        gate,
        Ratchet(ctx.root, pipeline.coverage, History(ctx.root / pipeline.history)),
        data_files([ctx.run_dir]),
        required=pipeline.green_gates(),
        shell=ctx.shell,
        log=ctx.log_for(gate.key),
        environ=ctx.environ,
    )
