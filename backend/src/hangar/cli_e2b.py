"""`hangar e2b sweep` and the E2B part of `hangar doctor`: the e2b provider's sandboxes and key.

Registered into the main CLI by `hangar.cli` (this module does not import it). The e2b SDK is
imported only when a command runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated

import typer

from hangar import cli_support
from hangar.providers.base import ProviderError
from hangar.providers.e2b.config import (
    HANGAR_MARK,
    KEY_VARIABLE,
    RUN_LABEL,
    SDK_KEY_VARIABLE,
    E2BSettingsError,
)
from hangar.settings import Settings

e2b_app = typer.Typer(help="E2B cloud sandboxes of the e2b provider.", no_args_is_help=True)


@e2b_app.callback()
def e2b_group() -> None:
    """E2B cloud sandboxes of the e2b provider (a group, so `hangar e2b sweep` keeps its name)."""


@e2b_app.command("sweep")
def sweep_command(
    run: Annotated[
        str | None,
        typer.Option(help="Kill the sandboxes of this run id.", show_default=False),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be killed.")
    ] = False,
) -> None:
    """Kill hangar's sandboxes of run ID, or without --run those of every run but this
    service's own (HANGAR_RUN_ID, else the one kept in the data dir).

    E2B cannot tell whether another run's service still lives: without --run, do not sweep
    while another hangar service uses the same E2B team. Running sandboxes of gone runs also
    expire on their own (HANGAR_E2B_TIMEOUT_S); paused ones stay until swept.
    """
    from hangar.providers.e2b.sweep import sweep

    settings = cli_support.settings()
    try:
        config = settings.e2b_config()
    except E2BSettingsError as exc:
        raise cli_support.fail(str(exc)) from None
    own = settings.resolved_run_id() if run is None else ""
    described = f"run {run}" if run is not None else f"every run but this service's own ({own})"

    def gone(candidate: str) -> bool:
        return candidate == run if run is not None else candidate != own

    try:
        swept = asyncio.run(sweep(config, gone, dry_run=dry_run))
    except ProviderError as exc:
        raise cli_support.fail(str(exc)) from None
    verb = "would kill" if dry_run else "killed"
    for sandbox in swept:
        outcome = verb if sandbox.killed or dry_run else "already gone"
        typer.echo(
            f"{outcome:<12} {sandbox.sandbox_id}  run {sandbox.run or '(none)'}  "
            f"machine {sandbox.machine or '(none)'}  ({sandbox.state})"
        )
    typer.echo(f"{len(swept)} sandbox(es) of {described}")


def doctor_e2b(settings: Settings) -> int:
    """Check the E2B key with one request (list hangar's sandboxes); print one line per check
    and return the number of problems. No key is a problem only when the e2b provider is
    enabled (HANGAR_PROVIDERS)."""
    from hangar.providers.e2b.control import ControlPlane, KeyRejectedError

    label = f"{'e2b api key':<20}"
    try:
        config = settings.e2b_config()
    except E2BSettingsError:
        if "e2b" in settings.providers:
            typer.echo(f"{label} MISSING: set {KEY_VARIABLE} (or {SDK_KEY_VARIABLE})")
            return 1
        typer.echo(f"{label} not set (the e2b provider is not enabled)")
        return 0
    once = ControlPlane(dataclasses.replace(config, backoff_s=()))  # a refusal is reported
    try:
        found = asyncio.run(once.find(HANGAR_MARK, "list hangar's sandboxes"))
    except KeyRejectedError:
        typer.echo(f"{label} {config.key_variable} is not accepted (401)")
        return 1
    except ProviderError as exc:
        typer.echo(f"{label} cannot check it: {exc}")
        return 1
    own = settings.resolved_run_id()
    mine = sum(1 for info in found if info.metadata.get(RUN_LABEL) == own)
    typer.echo(
        f"{label} ok ({config.key_variable}; {len(found)} hangar sandbox(es), {mine} of run {own})"
    )
    return 0
