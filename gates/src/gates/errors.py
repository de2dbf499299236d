"""Errors of the gate engine: each says what was wrong and what a person can do about it."""

from __future__ import annotations


class GatesError(Exception):
    """Base of every error the gate engine raises on purpose; its message is for a person."""


class ConfigError(GatesError):
    """`[tool.gates]` in pyproject.toml is missing or malformed."""


class ToolsMissingError(GatesError):
    """System tools that a tier needs are missing (raised under CI=true, or without pytest)."""


class GitError(GatesError):
    """A git command failed; the message carries the command and git's own words."""


class RollbackRefusedError(GatesError):
    """Rollback would be unsafe or has no target; nothing was touched."""


class UpgradeError(GatesError):
    """The dependency upgrade could not run; pyproject.toml and uv.lock are as they were."""
