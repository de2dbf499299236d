"""What every module of the `hangar` command shares: ending a command with a message, and reading
the settings so that a wrong one is a line naming its variable (no traceback)."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from hangar.settings import Settings, explain


def fail(message: str) -> typer.Exit:
    """Print `message` in red on stderr; raise the result to end the command with exit code 1."""
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def settings() -> Settings:
    """The settings from the environment; a wrong one ends the command with a line naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        raise fail(explain(exc)) from None
