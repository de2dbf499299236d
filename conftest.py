"""Give every collected test exactly one tier marker, decided by where the test lives.

Tiers are never set by hand: a test that carries a tier marker of its own fails collection,
so `pytest -m unit` and the gate engine's categorization check can trust the markers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).parent

# First match wins; paths are relative to the repository root.
TIER_BY_PATH: tuple[tuple[str, str], ...] = (
    ("backend/tests", "unit"),
    ("gates/tests", "unit"),
    ("e2e", "e2e"),
    ("integration", "integration"),
    ("bench", "bench"),
)
TIERS = frozenset(tier for _, tier in TIER_BY_PATH)


def tier_for(path: Path) -> str | None:
    """Return the tier of a test file, or None when it lives outside every tier's directory."""
    try:
        relative = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return None
    for prefix, tier in TIER_BY_PATH:
        if relative == prefix or relative.startswith(prefix + "/"):
            return tier
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    errors: list[str] = []
    for item in items:
        manual = sorted({m.name for m in item.iter_markers() if m.name in TIERS})
        if manual:
            errors.append(
                f"{item.nodeid}: tier marker {manual} set by hand; tiers come from the path"
            )
            continue
        tier = tier_for(item.path)
        if tier is None:
            errors.append(
                f"{item.nodeid}: lives outside every tier directory {list(dict(TIER_BY_PATH))}"
            )
            continue
        item.add_marker(getattr(pytest.mark, tier))
    if errors:
        raise pytest.UsageError("tests without exactly one tier:\n  " + "\n  ".join(errors))
