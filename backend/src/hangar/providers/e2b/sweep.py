"""Sweeping: kill the sandboxes hangar left behind, by their metadata `run`.

`hangar e2b sweep` is a thin wrapper of `sweep`, and the integration tier's session sweeper
calls it too, with its own idea of which runs are gone (whose test process ended).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hangar.providers.e2b.config import HANGAR_MARK, MACHINE_LABEL, RUN_LABEL, E2BConfig
from hangar.providers.e2b.control import ControlPlane, Sleep


@dataclass(frozen=True, slots=True)
class SweptSandbox:
    """One sandbox of hangar that a sweep found of a gone run. `killed` is False for a dry run
    and for one that was gone by the time it was killed."""

    sandbox_id: str
    run: str
    machine: str
    state: str
    killed: bool


async def sweep(
    config: E2BConfig,
    gone: Callable[[str], bool],
    *,
    dry_run: bool = False,
    sleep: Sleep | None = None,
) -> list[SweptSandbox]:
    """Kill every sandbox of hangar (metadata `hangar=1`, running or paused) whose run `gone`
    says is gone, and return them. Sandboxes without hangar's mark are never looked at; one
    without a `run` is reported under run "" (`gone("")` decides).

    Only the caller can tell which runs are gone: E2B knows no owner. `hangar e2b sweep --run
    ID` passes `run == ID`; without `--run`, every run but the service's own; the integration
    tier, runs whose test process has ended. `ProviderError` when E2B cannot be asked."""
    control = ControlPlane(config) if sleep is None else ControlPlane(config, sleep=sleep)
    swept: list[SweptSandbox] = []
    for info in await control.find(HANGAR_MARK, "list hangar's sandboxes"):
        run = info.metadata.get(RUN_LABEL, "")
        if not gone(run):
            continue
        killed = not dry_run and await control.kill(
            info.sandbox_id, f"kill sandbox {info.sandbox_id} of run {run or '(none)'}"
        )
        swept.append(
            SweptSandbox(
                sandbox_id=info.sandbox_id,
                run=run,
                machine=info.metadata.get(MACHINE_LABEL, ""),
                state=str(info.state),
                killed=killed,
            )
        )
    return swept
