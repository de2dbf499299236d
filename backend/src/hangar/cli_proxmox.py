"""`hangar proxmox sweep` and `doctor_proxmox`: leftovers and the health of a configured Proxmox VE.

Registered into the main CLI by `hangar.cli` (this module does not import it). Both read the
`HANGAR_PROXMOX_*` settings; a missing or malformed one is one line naming its variable.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hangar import cli_support
from hangar.providers.base import ProviderError
from hangar.settings import Settings

if TYPE_CHECKING:  # imported when used: proxmoxer comes with the optional `proxmox` extra
    from hangar.providers.proxmox.client import Deadline, ProxmoxClient
    from hangar.providers.proxmox.config import ProxmoxConfig
    from hangar.providers.proxmox.guests import Guest
    from hangar.providers.proxmox.provider import ProxmoxProvider

# What the provider's API token needs, and where (a privilege on a path holds below it too).
VM_PRIVILEGES = (
    "VM.Allocate",  # create, delete
    "VM.Audit",
    "VM.Clone",
    "VM.Config.CPU",
    "VM.Config.Disk",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",  # tags, description
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
)
# The guest agent's exec: PVE 9 split VM.GuestAgent.* out of VM.Monitor.
AGENT_PRIVILEGE = "VM.GuestAgent.Unrestricted"
AGENT_PRIVILEGE_BEFORE_9 = "VM.Monitor"
STORAGE_PRIVILEGES = (
    "Datastore.AllocateSpace",  # disks of new guests
    "Datastore.Audit",  # listing volumes
    "Datastore.Allocate",  # deleting a detached disk's volume
)
COLUMN = 26

proxmox_app = typer.Typer(help="Guests of the proxmox provider.", no_args_is_help=True)


@proxmox_app.callback()
def proxmox() -> None:
    """Guests of the proxmox provider (HANGAR_PROXMOX_* settings)."""
    # With a callback `sweep` stays a subcommand: typer runs a lone command without its name.


def _provider(settings: Settings) -> ProxmoxProvider:
    """The provider from the settings; a wrong setting ends the command with one line."""
    from hangar.providers.proxmox.provider import ProxmoxProvider

    try:
        return ProxmoxProvider(settings.proxmox_config(), settings.resolved_run_id())
    except ValueError as exc:
        raise cli_support.fail(str(exc)) from None


@proxmox_app.command("sweep")
def sweep(
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="Only this run's guests (a run id). Default: every run's but this service's.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be deleted.")
    ] = False,
) -> None:
    """Delete leftover guests: those in HANGAR_PROXMOX_VMID_RANGE tagged `hangar` and `run-<id>`,
    or with no run tag but a description naming the run (a clone never tagged).

    Other untagged guests, guests outside the range and templates are never touched."""
    settings = cli_support.settings()
    provider = _provider(settings)
    own = provider.run_id
    which: str | Callable[[str], bool] = run if run is not None else (lambda found: found != own)

    async def work() -> tuple[list[Guest], list[tuple[Guest, str]]]:
        try:
            if dry_run:
                return await provider.leftovers(which), []
            report = await provider.sweep(which)
            return report.removed, report.failed
        finally:
            await provider.close()

    try:
        done, failed = asyncio.run(work())
    except ProviderError as exc:
        raise cli_support.fail(str(exc)) from None
    verb = "would delete" if dry_run else "deleted"
    for guest in done:
        typer.echo(f"{verb} {guest} of run {guest.run}")
    for guest, reason in failed:
        typer.secho(f"could not delete {guest}: {reason}", err=True, fg=typer.colors.RED)
    if not done and not failed:
        typer.echo("no leftover guests")
    if failed:
        raise typer.Exit(code=1)


def doctor_proxmox(settings: Settings) -> int:
    """Check the configured Proxmox VE: settings, API version, node, storage, the token's
    privileges. Prints one line per check; returns the number of problems found."""
    from hangar.providers.proxmox.config import ProxmoxConfigError

    try:
        config = settings.proxmox_config()
    except ProxmoxConfigError as exc:
        _line("proxmox settings", f"PROBLEM: {exc}")
        return 1
    return asyncio.run(_doctor(config))


def _line(check: str, verdict: str) -> None:
    typer.echo(f"{check:<{COLUMN}} {verdict}")


async def _doctor(config: ProxmoxConfig) -> int:
    from hangar.providers.proxmox.client import Deadline, ProxmoxClient

    # One attempt per check: a doctor reports what it sees; a check that needs a retry to pass
    # is worth a person's look.
    client = ProxmoxClient(dataclasses.replace(config, attempts=1))
    problems = 0

    def deadline() -> Deadline:
        return Deadline.after(config.request_timeout * 2, "checking Proxmox")

    try:
        try:
            version = await client.get_object("version", deadline=deadline())
        except ProviderError as exc:
            _line("proxmox api", f"PROBLEM: {exc}")
            return 1  # nothing else can be checked
        release = str(version.get("version", "unknown"))
        _line("proxmox api", f"{config.url} (Proxmox VE {release})")

        nodes = {
            str(node.get("node")): str(node.get("status"))
            for node in await client.get_list("nodes", deadline=deadline())
        }
        if nodes.get(config.node) == "online":
            _line(f"proxmox node {config.node}", "online")
        else:
            problems += 1
            state = nodes.get(config.node, "not in the cluster")
            known = ", ".join(sorted(nodes)) or "none visible to the token"
            _line(f"proxmox node {config.node}", f"PROBLEM: {state} (nodes: {known})")

        problems += await _check_storage(client, config, deadline())
        problems += await _check_privileges(client, config, release, deadline())
    except ProviderError as exc:
        _line("proxmox", f"PROBLEM: {exc}")
        problems += 1
    finally:
        client.close()
    return problems


async def _check_storage(client: ProxmoxClient, config: ProxmoxConfig, deadline: Deadline) -> int:
    check = f"proxmox storage {config.storage}"
    try:
        status = await client.get_object(
            f"nodes/{config.node}/storage/{config.storage}/status", deadline=deadline
        )
    except ProviderError as exc:
        _line(check, f"PROBLEM: {exc}")
        return 1
    content = {part.strip() for part in str(status.get("content", "")).split(",") if part}
    if not status.get("active", 0):
        _line(check, "PROBLEM: not active on the node")
        return 1
    if not {"images", "rootdir"} & content:
        shown = ", ".join(sorted(content)) or "nothing"
        _line(check, f"PROBLEM: holds neither VM disks (images) nor containers (rootdir): {shown}")
        return 1
    kinds = [
        kind for kind, held in (("VMs", "images"), ("containers", "rootdir")) if held in content
    ]
    _line(check, f"active ({status.get('type', 'unknown type')}, for {' and '.join(kinds)})")
    return 0


async def _check_privileges(
    client: ProxmoxClient, config: ProxmoxConfig, release: str, deadline: Deadline
) -> int:
    """The token's privileges on /vms and on the storage (from /access/permissions)."""
    granted = await client.get_object("access/permissions", deadline=deadline)
    major = int(release.split(".", 1)[0]) if release.split(".", 1)[0].isdigit() else 0
    needs = {
        "/vms": (*VM_PRIVILEGES, AGENT_PRIVILEGE_BEFORE_9 if 0 < major < 9 else AGENT_PRIVILEGE),
        f"/storage/{config.storage}": STORAGE_PRIVILEGES,
    }
    problems = 0
    for path, privileges in needs.items():
        held = _held(granted, path)
        missing = [privilege for privilege in privileges if privilege not in held]
        check = f"proxmox token on {path}"
        if missing:
            problems += 1
            _line(check, f"PROBLEM: {config.token_id} lacks {', '.join(missing)}")
        else:
            _line(check, "ok")
    return problems


def _held(granted: Mapping[str, Any], path: str) -> set[str]:
    """Privileges held on `path`: granted on it, or on a path above it with propagation (the
    value of each privilege in /access/permissions is its propagate flag)."""
    held: set[str] = set()
    for granted_path, privileges in granted.items():
        if not isinstance(privileges, dict):
            continue
        if granted_path == path:
            held.update(privileges)
        elif granted_path == "/" or path.startswith(granted_path.rstrip("/") + "/"):
            held.update(name for name, propagate in privileges.items() if propagate)
    return held
