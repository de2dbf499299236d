"""The `provision` check: the tiers' system tools are there (installed when they can be)."""

from __future__ import annotations

from gates.engine.execution import GateContext, GateResult
from gates.engine.pipeline import Gate
from gates.provision import ProvisionSpec, ensure, is_ci


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
