"""Give every collected test exactly one tier marker, decided by where the test lives.

The tiers and their directories are declared once, in `[tool.gates.tiers]` of pyproject.toml.
Tiers are never set by hand: a test that carries a tier marker of its own fails collection, so
`pytest -m unit` and the gate engine's categorization check can trust the markers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gates.tiers import Tier, Tiers

# A test stuck past its timeout, where the timeout's exception is swallowed, ends the run.
pytest_plugins = ["testkit.backstop"]

ROOT = Path(__file__).parent
TIERS = Tiers.load(ROOT).tested
TIER_NAMES = frozenset(tier.name for tier in TIERS)


def tier_for(path: Path) -> Tier | None:
    """Return the tier of a test file (first declared wins), or None outside every tier."""
    try:
        relative = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return None
    return next((tier for tier in TIERS if tier.owns(relative)), None)


def pytest_configure(config: pytest.Config) -> None:
    for tier in TIERS:
        about = tier.description or f"the {tier.name} tier"
        config.addinivalue_line(
            "markers", f"{tier.name}: {about} ({', '.join(tier.dirs)}); set from the path"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    errors: list[str] = []
    for item in items:
        manual = sorted({m.name for m in item.iter_markers() if m.name in TIER_NAMES})
        if manual:
            errors.append(
                f"{item.nodeid}: tier marker {manual} set by hand; tiers come from the path"
            )
            continue
        tier = tier_for(item.path)
        if tier is None:
            dirs = [d for t in TIERS for d in t.dirs]
            errors.append(f"{item.nodeid}: lives outside every tier directory {dirs}")
            continue
        item.add_marker(getattr(pytest.mark, tier.name))
    if errors:
        raise pytest.UsageError("tests without exactly one tier:\n  " + "\n  ".join(errors))
