"""The one protocol every machine provider implements.

Providers do side effects only: they never touch the database and never decide whether an action
is allowed (that is the service's state machine). A provider that lacks a capability raises
`UnsupportedError`; the service checks `capabilities` first so users get a clear 409/422 instead.
What only some providers offer beyond the protocol is an optional interface (`DiskInventory`,
`FaultInjection`, `Placement`, `KeepAlive`) that the service finds with `isinstance`, never by
importing a provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Capability(StrEnum):
    DISKS = "disks"
    SNAPSHOTS = "snapshots"
    CLONE = "clone"
    EXEC = "exec"
    ENDPOINT = "endpoint"
    CONSOLE = "console"


class ProviderError(Exception):
    """An action failed in the provider; the message is shown to the user as the operation error."""


class UnsupportedError(ProviderError):
    """The provider does not offer this capability."""


class NotFoundError(ProviderError):
    """The provider knows no such machine, disk or snapshot."""


class UnknownFaultActionError(ValueError):
    """A fault was requested for an action the provider cannot fail on demand."""


@dataclass(frozen=True, slots=True)
class MachineSpec:
    """What the provider needs to build a machine. `key` is unique and stable (the service's id)."""

    key: str
    name: str
    image: str
    cpus: int
    memory_mb: int
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a provider reports about one machine it knows."""

    key: str
    running: bool
    endpoint: str | None = None  # e.g. http://127.0.0.1:41234 for the guest's port 80
    pid: int | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_status: int
    output: str


@runtime_checkable
class Provider(Protocol):
    """A place where machines run. All methods are coroutines and may raise ProviderError."""

    name: str
    capabilities: frozenset[Capability]

    async def images(self) -> Sequence[str]:
        """Image names this provider can create machines from."""
        ...

    async def create(self, spec: MachineSpec) -> None:
        """Provision the machine (stopped). Must leave nothing behind when it raises."""
        ...

    async def start(self, key: str) -> Runtime:
        """Boot the machine and return once it is ready to use."""
        ...

    async def stop(self, key: str) -> None:
        """Power the machine off; always leaves it stopped, even if the guest ignores it."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the machine and everything it owns (disks, snapshots, files). Idempotent."""
        ...

    async def runtime(self, key: str) -> Runtime | None:
        """Current runtime of one machine, or None when the provider does not know it."""
        ...

    async def inventory(self) -> Sequence[Runtime]:
        """Every machine this provider manages, for the observer's drift report."""
        ...

    # -- capability DISKS ---------------------------------------------------------------
    async def create_disk(self, key: str, disk_key: str, size_mb: int) -> None: ...
    async def attach_disk(self, key: str, disk_key: str) -> None: ...
    async def detach_disk(self, key: str, disk_key: str) -> None: ...
    async def delete_disk(self, key: str, disk_key: str) -> None: ...

    # -- capability SNAPSHOTS -----------------------------------------------------------
    async def create_snapshot(self, key: str, name: str) -> None: ...
    async def rollback_snapshot(self, key: str, name: str) -> None: ...
    async def delete_snapshot(self, key: str, name: str) -> None: ...

    # -- capability CLONE ---------------------------------------------------------------
    async def clone(self, source_key: str, spec: MachineSpec) -> None: ...

    # -- capability EXEC / CONSOLE ------------------------------------------------------
    async def exec(self, key: str, command: str, timeout: float = 30.0) -> ExecResult: ...  # noqa: ASYNC109
    async def console(self, key: str, lines: int = 100) -> str: ...

    async def close(self) -> None:
        """Release connections; machines keep running (they outlive the API server)."""
        ...


@runtime_checkable
class DiskInventory(Protocol):
    """An optional addition to `Provider` for providers with `Capability.DISKS` whose disks are
    files: which disk files exist, so the observer can report a disk row whose file is missing
    and a file that no row names. A provider without it is simply not checked for disk drift."""

    async def disk_inventory(self) -> Mapping[str, Set[str]]:
        """Machine key -> the disk keys whose files exist, for every machine the provider has."""
        ...


@runtime_checkable
class FaultInjection(Protocol):
    """An optional addition to `Provider` for doubles that fail on demand, so tests (and a person
    trying the web UI) can see every action fail the way a real provider's would. Real providers
    do not offer it; the service lets the API reach it on any enabled provider that does."""

    def inject_fault(self, action: str, message: str, times: int = 1) -> None:
        """Make the next `times` calls of the protocol method named `action` raise
        `ProviderError(message)`. `UnknownFaultActionError`, naming the actions that can fail, for
        any other name; then no fault is armed."""
        ...

    def clear_faults(self) -> None:
        """Disarm every injected fault; the next calls behave normally."""
        ...


@runtime_checkable
class Placement(Protocol):
    """An optional addition to `Provider` for providers whose machines live somewhere a person
    needs to find them by another name: a Proxmox guest's kind, node and VMID, an E2B sandbox's
    id. The service asks once a machine exists (after create and clone), stores the answer with
    the machine and serves it as `details`; the web UI shows it on the machine's page."""

    async def placement(self, key: str) -> Mapping[str, str]:
        """Short labelled facts about where machine `key` lives, e.g. `{"kind": "lxc", "node":
        "pve1", "vmid": "9123"}`. `NotFoundError` when the provider knows no such machine."""
        ...


@runtime_checkable
class KeepAlive(Protocol):
    """An optional addition to `Provider` for providers whose machines expire unless something
    keeps extending their lifetime. E2B sandboxes live for a fixed time unless extended: a
    dead-man switch, so the machines of a server that died expire on their own. The observer
    keeps alive the machines whose rows say running; a provider without it is never asked."""

    async def keep_alive(self, keys: Sequence[str]) -> None:
        """Extend the lifetime of the running machines `keys` (the service's machine ids) by the
        provider's configured lifetime, from now. A key without a running machine is skipped:
        the observer's reconcile reports it. `ProviderError` when the provider cannot be asked."""
        ...
