"""The `collect` and `categorization` checks: every test collects under --strict-markers and
carries exactly one tier marker. Both read one collection per run (the collection plugin)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

from gates.engine.execution import Collection, GateContext, GateResult, tail
from gates.engine.pipeline import Gate
from gates.pytest_plugins import plugin
from gates.pytest_plugins.collection import REPORT_VARIABLE
from gates.tiers import Tiers


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


def _failed(found: Collection) -> GateResult:
    return GateResult(
        "failed",
        summary=f"collection failed (pytest exit status {found.status})",
        key_output=tail(found.log),
        metrics={"collected": len(found.items)},
    )


def collect(gate: Gate, ctx: GateContext) -> GateResult:
    """Every test collects under --strict-markers."""
    found = _collect(gate, ctx)
    if found.status != 0:
        return _failed(found)
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
        return _failed(found)
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
