"""Built-in checks: provisioning, test collection, tier categorization, parallel speedup and the
benchmark comparison."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable

from gates import bench as benchmarks
from gates.baseline import BaselineError
from gates.baseline import choose as choose_baseline
from gates.collection import REPORT_VARIABLE
from gates.execution import Collection, GateContext, GateResult, tail
from gates.history import History
from gates.pipeline import SPEEDUP_RUNS, Gate, Pipeline
from gates.plugins import plugin
from gates.provision import ProvisionSpec, ensure, is_ci
from gates.repository import Repository
from gates.speedup import SuiteTiming, TimingError, advise, read_timing
from gates.tiers import Tiers

Check = Callable[[Gate, GateContext], GateResult]


def pytest_command(groups: Iterable[str], *args: str) -> list[str]:
    """pytest through uv, in the project environment with the given dependency groups."""
    return [
        "uv",
        "run",
        "--locked",
        *(f"--group={group}" for group in dict.fromkeys(groups)),
        "pytest",
        *args,
    ]


def _groups(gate: Gate, ctx: GateContext) -> list[str]:
    """The gate's `groups`, else those of every tier with tests ([tool.gates.tiers])."""
    return list(gate.options.get("groups") or Tiers.load(ctx.root).groups())


def _dirs(gate: Gate, ctx: GateContext) -> list[str]:
    """The gate's `dirs` (else every tier's) that exist: a tier may have no tests yet."""
    dirs = gate.options.get("dirs") or Tiers.load(ctx.root).dirs()
    return [d for d in dirs if (ctx.root / d).exists()]


def provision(gate: Gate, ctx: GateContext) -> GateResult:
    """Install what the tiers need; record tool versions; name each tier that will skip or fail."""
    spec = ProvisionSpec.load(ctx.root)
    tiers = gate.options.get("tiers") or list(spec.tiers)
    verdict = "fail (CI=true)" if is_ci(ctx.environ) else "be skipped"
    metrics: dict[str, object] = {}
    lines: list[str] = []
    short: list[str] = []
    for tier in tiers:
        report = ctx.provisioner(tier) if ctx.provisioner else ensure(tier, spec=spec)
        metrics[tier] = report.as_metrics()
        for tool in report.tools.values():
            lines.append(
                f"{tier}: {tool.name} {tool.version or '(version unknown)'} at {tool.path}"
            )
        if not report.ok:
            short.append(tier)
            lines.append(f"tier {tier} will {verdict}: {report.reason('missing')}")
    summary = (
        f"tiers short of tools: {', '.join(short)}"
        if short
        else f"all tools found for {', '.join(tiers)}"
    )
    return GateResult("passed", summary=summary, metrics=metrics, key_output=lines)


def _collect(gate: Gate, ctx: GateContext) -> Collection:
    """Collect the gate's directories once per run: `collect` and `categorization` share it."""
    dirs, groups = _dirs(gate, ctx), _groups(gate, ctx)
    key = (tuple(dict.fromkeys(groups)), tuple(dirs))
    if key in ctx.collections:
        return ctx.collections[key]
    report = ctx.run_dir / (gate.key.replace("/", "-") + ".collection.json")
    log = ctx.log_for(gate.key)
    load, env = plugin("gates_collection", ctx.run_dir, ctx.environ)
    argv = pytest_command(groups, "--collect-only", "-q", "--strict-markers", *load, *dirs)
    env[REPORT_VARIABLE] = str(report)
    status = ctx.shell(argv, cwd=ctx.root, log=log, env=env, timeout=gate.timeout or 600)
    try:
        items: dict[str, list[str]] = json.loads(report.read_text())
    except (OSError, ValueError):
        items = {}
    ctx.collections[key] = Collection(status, items, log)
    return ctx.collections[key]


def collect(gate: Gate, ctx: GateContext) -> GateResult:
    """Every test collects under --strict-markers."""
    found = _collect(gate, ctx)
    if found.status != 0:
        return GateResult(
            "failed",
            summary=f"collection failed (pytest exit status {found.status})",
            key_output=tail(found.log),
            metrics={"collected": len(found.items)},
        )
    return GateResult(
        "passed",
        summary=f"{len(found.items)} tests collect",
        metrics={"collected": len(found.items)},
    )


def categorization(gate: Gate, ctx: GateContext) -> GateResult:
    """Every collected test carries exactly one tier marker; reports the count per tier."""
    tiers = tuple(gate.options.get("tiers") or [t.name for t in Tiers.load(ctx.root).tested])
    found = _collect(gate, ctx)
    if found.status != 0:
        return GateResult(
            "failed",
            summary=f"collection failed (pytest exit status {found.status})",
            key_output=tail(found.log),
        )
    counts: Counter[str] = Counter()
    wrong: list[str] = []
    for test, markers in found.items.items():
        mine = [m for m in markers if m in tiers]
        if len(mine) == 1:
            counts[mine[0]] += 1
        else:
            wrong.append(
                f"{test}: tier markers {mine or 'none'} (need exactly one of {list(tiers)})"
            )
    per_tier = {tier: counts.get(tier, 0) for tier in tiers}
    summary = ", ".join(f"{tier} {n}" for tier, n in per_tier.items())
    if wrong:
        return GateResult(
            "failed",
            summary=f"{len(wrong)} tests without exactly one tier",
            metrics={"per_tier": per_tier},
            key_output=wrong[:30],
        )
    return GateResult(
        "passed", summary=summary, metrics={"per_tier": per_tier, "tests": len(found.items)}
    )


def speedup(gate: Gate, ctx: GateContext) -> GateResult:
    """How much xdist gains, judged against what the suite's own durations allow, with advice.

    Reads the per-test timings of two earlier gates of the phase (`serial`, default "serial",
    and `parallel`, default "isolation"; both junit = true, so the runner gave them the timing
    plugin): the tests never run a third time to be timed. gates.speedup has the analysis."""
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


def bench(gate: Gate, ctx: GateContext) -> GateResult:
    """No benchmark is surely slower than on the baseline by more than its threshold.

    The baseline is never the candidate (gates.baseline says how it is chosen); without one the
    gate is skipped with the reason. The results are stored under `.gates/bench/<run>/`."""
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
    settings = benchmarks.BenchSettings.load(ctx.root, gate.options.get("tier"))
    log = ctx.log_for(gate.key)
    try:
        outcome = benchmarks.run_comparison(
            ctx.root,
            baseline,
            shell=ctx.shell,
            results=ctx.root / ".gates" / "bench" / ctx.run_dir.name,
            log=log,
            environ=ctx.environ,
            settings=settings,
            selection=gate.args or settings.selection,
            timeout=gate.timeout or 1800,
            run_id=ctx.run_dir.name,  # names the scratch dir, so leftovers show their run
        )
    except benchmarks.BenchError as error:
        return GateResult("failed", summary=str(error), key_output=tail(log))
    text = benchmarks.render(
        benchmarks.table(outcome.comparisons, settings.confidence, settings.quantile)
    )
    lines = text.rstrip("\n").splitlines()
    if outcome.only_one_side:
        lines.append(f"only on one side (not compared): {', '.join(outcome.only_one_side)}")
    if outcome.swept:
        lines.append(
            f"removed leftovers of killed comparisons: {', '.join(map(str, outcome.swept))}"
        )
    slower = [c.name.rsplit("::", 1)[-1] for c in outcome.regressions]
    summary = f"{sides}: {len(outcome.comparisons)} benchmarks, {settings.rounds} rounds: " + (
        f"{len(slower)} slower ({', '.join(slower)})" if slower else "no regression"
    )
    if not outcome.comparisons:
        return GateResult("failed", summary="no benchmark ran on both sides", key_output=lines)
    return GateResult(
        "failed" if slower else "passed",
        summary=summary,
        metrics={**outcome.metrics(), "candidate": chosen.candidate, "source": chosen.source},
        key_output=lines,
    )


CHECKS: dict[str, Check] = {
    "provision": provision,
    "collect": collect,
    "categorization": categorization,
    "speedup": speedup,
    "bench": bench,
}
