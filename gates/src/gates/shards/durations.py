"""The stored test durations that balance the shards: one pytest-split file per tier, kept in
the repository and refreshed by `gates durations` (a full serial run of the tier)."""

from __future__ import annotations

from pathlib import Path

from gates.engine.execution import nox_command
from gates.errors import ConfigError
from gates.tiers import Tier


def durations_file(root: Path, directory: str, name: str) -> Path:
    return root / directory / f"{name}.json"


def refresh_command(tier: Tier, target: Path) -> list[str]:
    """The tier's nox session over all its tests, storing every test's duration in `target`
    (tests that no longer exist are dropped: --clean-durations)."""
    if not tier.session or not tier.dirs:
        raise ConfigError(f"tier {tier.name!r} has no tests or no session: nothing to time")
    store = ["--store-durations", "--clean-durations", f"--durations-path={target}"]
    return [*nox_command(), "-s", tier.session, "--", *store, *tier.dirs]
