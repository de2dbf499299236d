"""The fake provider: a real, in-memory implementation of the provider protocol.

It is called a fake everywhere. It has configurable latency (so a person sees the transient states)
and fault injection (so tests can make any action fail on demand). Nothing outlives the process.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

from hangar.providers.base import (
    Capability,
    ExecResult,
    MachineSpec,
    NotFoundError,
    ProviderError,
    Runtime,
    UnknownFaultActionError,
)

FAKE_IMAGES = ("alpine-3.20", "debian-12", "ubuntu-24.04")

# Actions a fault can be injected into: the protocol methods that change something or read a guest.
FAULT_ACTIONS = frozenset(
    {
        "create",
        "start",
        "stop",
        "delete",
        "create_disk",
        "attach_disk",
        "detach_disk",
        "delete_disk",
        "create_snapshot",
        "rollback_snapshot",
        "delete_snapshot",
        "clone",
        "exec",
        "console",
    }
)

CONSOLE_LINES_KEPT = 1000


@dataclass
class Fault:
    message: str
    remaining: int


@dataclass
class FakeMachine:
    spec: MachineSpec
    running: bool = False
    disks: dict[str, bool] = field(default_factory=dict)  # disk key -> attached
    snapshots: set[str] = field(default_factory=set)
    console: deque[str] = field(default_factory=lambda: deque(maxlen=CONSOLE_LINES_KEPT))

    def log(self, line: str) -> None:
        self.console.append(line)


class FakeProvider:
    """In-memory machines with latency and injectable faults (`FaultInjection`)."""

    name = "fake"
    capabilities = frozenset(
        {
            Capability.DISKS,
            Capability.SNAPSHOTS,
            Capability.CLONE,
            Capability.EXEC,
            Capability.CONSOLE,
        }
    )

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self._machines: dict[str, FakeMachine] = {}
        self._faults: dict[str, Fault] = {}

    # -- fault injection (the optional `FaultInjection` interface) ------------------------
    def inject_fault(self, action: str, message: str, times: int = 1) -> None:
        """Make the next `times` calls of `action` raise ProviderError(message); an action in
        `FAULT_ACTIONS` only, else UnknownFaultActionError."""
        if action not in FAULT_ACTIONS:
            allowed = ", ".join(sorted(FAULT_ACTIONS))
            raise UnknownFaultActionError(f"unknown action {action!r}; one of: {allowed}")
        self._faults[action] = Fault(message=message, remaining=times)

    def clear_faults(self) -> None:
        """Disarm every injected fault."""
        self._faults.clear()

    def faults(self) -> dict[str, Fault]:
        return dict(self._faults)

    async def _act(self, action: str) -> None:
        """Wait the configured latency, then fail if a fault is armed for this action."""
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        fault = self._faults.get(action)
        if fault is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._faults[action]
            raise ProviderError(fault.message)

    def _get(self, key: str) -> FakeMachine:
        try:
            return self._machines[key]
        except KeyError:
            raise NotFoundError(f"the fake provider has no machine {key!r}") from None

    # -- drift simulation (fake only, not part of the protocol) --------------------------
    # Things that happen to real machines behind the service's back, so tests can make the
    # observer see each kind of drift.
    def crash(self, key: str) -> None:
        """The machine's process dies (like `kill -9` of a QEMU): it no longer runs."""
        machine = self._get(key)
        machine.running = False
        machine.log(f"[fake] {machine.spec.name} crashed")

    def forget(self, key: str) -> None:
        """The provider loses the machine entirely (like its directory being removed)."""
        self._get(key)
        del self._machines[key]

    def lose_disk_file(self, key: str, disk_key: str) -> None:
        """A disk's file vanishes while the service still has its row."""
        self._disk(key, disk_key)
        del self._machines[key].disks[disk_key]

    def add_stray_disk_file(self, key: str, disk_key: str) -> None:
        """A disk file appears that no operation of the service created."""
        self._get(key).disks[disk_key] = False

    # -- protocol -----------------------------------------------------------------------
    async def images(self) -> Sequence[str]:
        return FAKE_IMAGES

    async def create(self, spec: MachineSpec) -> None:
        await self._act("create")
        if spec.image not in FAKE_IMAGES:
            raise ProviderError(f"the fake provider has no image {spec.image!r}")
        machine = FakeMachine(spec=spec)
        machine.log(f"[fake] created {spec.name} from {spec.image}")
        self._machines[spec.key] = machine

    async def start(self, key: str) -> Runtime:
        await self._act("start")
        machine = self._get(key)
        machine.running = True
        machine.log(f"[fake] {machine.spec.name} booted ({machine.spec.cpus} cpus)")
        return Runtime(key=key, running=True, labels=dict(machine.spec.labels))

    async def stop(self, key: str) -> None:
        await self._act("stop")
        machine = self._get(key)
        machine.running = False
        machine.log(f"[fake] {machine.spec.name} powered off")

    async def delete(self, key: str) -> None:
        await self._act("delete")
        self._machines.pop(key, None)

    async def runtime(self, key: str) -> Runtime | None:
        machine = self._machines.get(key)
        if machine is None:
            return None
        return Runtime(key=key, running=machine.running, labels=dict(machine.spec.labels))

    async def inventory(self) -> Sequence[Runtime]:
        return [
            Runtime(key=key, running=m.running, labels=dict(m.spec.labels))
            for key, m in self._machines.items()
        ]

    async def disk_inventory(self) -> Mapping[str, Set[str]]:
        """The optional `DiskInventory` addition: every machine's disk keys."""
        return {key: frozenset(m.disks) for key, m in self._machines.items()}

    async def create_disk(self, key: str, disk_key: str, size_mb: int) -> None:
        await self._act("create_disk")
        machine = self._get(key)
        machine.disks[disk_key] = False
        machine.log(f"[fake] disk {disk_key} created ({size_mb} MB)")

    async def attach_disk(self, key: str, disk_key: str) -> None:
        await self._act("attach_disk")
        self._disk(key, disk_key)
        self._machines[key].disks[disk_key] = True

    async def detach_disk(self, key: str, disk_key: str) -> None:
        await self._act("detach_disk")
        self._disk(key, disk_key)
        self._machines[key].disks[disk_key] = False

    async def delete_disk(self, key: str, disk_key: str) -> None:
        await self._act("delete_disk")
        self._disk(key, disk_key)
        del self._machines[key].disks[disk_key]

    def _disk(self, key: str, disk_key: str) -> None:
        if disk_key not in self._get(key).disks:
            raise NotFoundError(f"machine {key!r} has no disk {disk_key!r}")

    async def create_snapshot(self, key: str, name: str) -> None:
        await self._act("create_snapshot")
        self._get(key).snapshots.add(name)

    async def rollback_snapshot(self, key: str, name: str) -> None:
        await self._act("rollback_snapshot")
        machine = self._get(key)
        if name not in machine.snapshots:
            raise NotFoundError(f"machine {key!r} has no snapshot {name!r}")
        machine.log(f"[fake] rolled back to snapshot {name}")

    async def delete_snapshot(self, key: str, name: str) -> None:
        await self._act("delete_snapshot")
        self._get(key).snapshots.discard(name)

    async def clone(self, source_key: str, spec: MachineSpec) -> None:
        await self._act("clone")
        source = self._get(source_key)
        clone = FakeMachine(spec=spec, snapshots=set())
        clone.log(f"[fake] cloned from {source.spec.name}")
        self._machines[spec.key] = clone

    async def exec(self, key: str, command: str, timeout: float = 30.0) -> ExecResult:  # noqa: ASYNC109
        await self._act("exec")
        machine = self._get(key)
        if not machine.running:
            raise ProviderError(f"machine {machine.spec.name} is not running")
        return ExecResult(exit_status=0, output=f"fake: {command}\n")

    async def console(self, key: str, lines: int = 100) -> str:
        await self._act("console")
        machine = self._get(key)
        tail = list(machine.console)[-lines:] if lines > 0 else []
        return "\n".join(tail) + ("\n" if tail else "")

    async def close(self) -> None:
        """Nothing to release: the machines live in this object."""
