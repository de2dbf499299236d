"""Built-in checks: provisioning, test collection, tier categorization, parallel speedup and the
benchmark comparison."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence

from gates import bench as benchmarks
from gates.baseline import BaselineError
from gates.baseline import choose as choose_baseline
from gates.collection import REPORT_VARIABLE
from gates.execution import Collection, GateContext, GateResult, tail
from gates.history import History, Outcome
from gates.pipeline import Gate, Pipeline
from gates.provision import ProvisionSpec, ensure, is_ci
from gates.repository import Repository

TIERS = ("unit", "e2e", "integration", "bench")
Check = Callable[[Gate, GateContext], GateResult]


def min_speedup_for(cores: int) -> float:
    """The speedup that `cores` cores must reach: 1 + 0.2 per extra core, at most 4."""
    return round(min(1.0 + 0.2 * (cores - 1), 4.0), 2)


def worker_counts(cores: int) -> list[int]:
    """Worker counts to measure: all cores, and half of them when that is at least 2."""
    return sorted({n for n in (cores // 2, cores) if n >= 2})


def pytest_command(gate: Gate, *args: str) -> list[str]:
    """pytest through uv, in the project environment with the test group and the gate's groups."""
    groups = ["test", *gate.options.get("groups", [])]
    return [
        "uv",
        "run",
        "--locked",
        *(f"--group={group}" for group in dict.fromkeys(groups)),
        "pytest",
        *args,
    ]


def _dirs(gate: Gate, ctx: GateContext) -> list[str]:
    """The gate's test directories that exist (a tier may have no tests yet)."""
    return [d for d in gate.options.get("dirs", []) if (ctx.root / d).exists()]


def provision(gate: Gate, ctx: GateContext) -> GateResult:
    """Install what the tiers need; record tool versions; name each tier that will skip or fail."""
    spec = ProvisionSpec.load(ctx.root)
    tiers = gate.options.get("tiers") or sorted(spec.tiers)
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
    dirs = _dirs(gate, ctx)
    key = (tuple(dict.fromkeys(["test", *gate.options.get("groups", [])])), tuple(dirs))
    if key in ctx.collections:
        return ctx.collections[key]
    report = ctx.run_dir / (gate.key.replace("/", "-") + ".collection.json")
    log = ctx.log_for(gate.key)
    argv = pytest_command(
        gate, "--collect-only", "-q", "--strict-markers", "-p", "gates.collection", *dirs
    )
    env = {**ctx.environ, REPORT_VARIABLE: str(report)}
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
    tiers = tuple(gate.options.get("tiers") or TIERS)
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
    """The tests under xdist are at least `min_speedup` times faster than serially."""
    cores = ctx.cpu_count
    raw = gate.options.get("min_speedup", "auto")
    threshold = min_speedup_for(cores) if raw == "auto" else float(raw)
    workers: Sequence[int] = gate.options.get("workers") or worker_counts(cores)
    if cores < 2 or not workers:
        return GateResult("skipped", summary=f"{cores} core: nothing to run in parallel")
    dirs = _dirs(gate, ctx)
    log = ctx.log_for(gate.key)

    def timed(*args: str) -> tuple[int, float]:
        started = ctx.clock()
        status = ctx.shell(
            pytest_command(gate, "-q", "-p", "no:randomly", *args, *dirs),
            cwd=ctx.root,
            log=log,
            env=dict(ctx.environ),
            timeout=gate.timeout or 1800,
        )
        return status, ctx.clock() - started

    status, serial = timed()
    if status != 0:
        return GateResult(
            "failed", summary=f"the serial run failed (exit status {status})", key_output=tail(log)
        )
    parallel: dict[str, float] = {}
    for count in workers:
        status, seconds = timed("-n", str(count))
        if status != 0:
            return GateResult(
                "failed",
                summary=f"the run with {count} workers failed (exit status {status})",
                key_output=tail(log),
            )
        parallel[str(count)] = round(seconds, 3)
    best = min(parallel, key=lambda k: parallel[k])
    measured = round(serial / parallel[best], 2) if parallel[best] > 0 else 0.0
    metrics = {
        "cores": cores,
        "serial_s": round(serial, 3),
        "parallel_s": parallel,
        "speedup": measured,
        "best_workers": int(best),
        "min_speedup": threshold,
    }
    summary = f"speedup {measured}x with {best} workers (need {threshold}x on {cores} cores)"
    outcome: Outcome = "passed" if measured >= threshold else "failed"
    key = [] if outcome == "passed" else [summary, f"serial {serial:.1f} s, parallel {parallel} s"]
    return GateResult(outcome, summary=summary, metrics=metrics, key_output=key)


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
    settings = benchmarks.BenchSettings.load(ctx.root)
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
            selection=gate.args or benchmarks.DEFAULT_SELECTION,
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
