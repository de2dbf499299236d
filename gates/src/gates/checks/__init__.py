"""The built-in checks a gate may name (`check = "…"`), one module each; `CHECKS` is the
registry the CLI hands to the engine's runner."""

from __future__ import annotations

from gates.checks.audit import audit
from gates.checks.bench import bench
from gates.checks.collect import categorization, collect
from gates.checks.coverage import coverage
from gates.checks.provision import provision
from gates.checks.speedup import speedup
from gates.engine.runner import Check

CHECKS: dict[str, Check] = {
    "provision": provision,
    "collect": collect,
    "categorization": categorization,
    "speedup": speedup,
    "bench": bench,
    "audit": audit,
    "coverage": coverage,
}
