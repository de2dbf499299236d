"""Machines: the commands (create, start, stop, restart, delete, clone, disks, snapshots) and what
each asks of its machine's provider. Operations run on the runner (`service/operations.py`).

What callers rely on:
- A command checks the transition table under the machine's lock, records the operation and the
  new state (with an event) in one transaction, and returns the pending operation at once; the
  provider work happens in the background.
- Only one operation runs per machine; a second command raises BusyError.
- A command the machine's provider lacks the capability for raises UnsupportedError before
  anything is locked or written.
- A failing operation leaves the machine in `error` with the provider's message; a disk or
  snapshot whose creation failed leaves no row behind.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hangar.db.models import Disk, Machine, Operation, Snapshot, new_id, utcnow
from hangar.metrics import Metrics
from hangar.providers.base import (
    Capability,
    FaultInjection,
    MachineSpec,
    Placement,
    Provider,
    ProviderError,
    UnknownFaultActionError,
)
from hangar.service.errors import (
    ConflictError,
    DiskAttachedError,
    InvalidInputError,
    NotFoundError,
    UnsupportedError,
)
from hangar.service.events import EventBus
from hangar.service.operations import Apply, OperationRunner, Tx, Undo
from hangar.service.queries import MachineQueries
from hangar.service.states import Action, MachineState, check

log = logging.getLogger(__name__)

T = TypeVar("T")

CAPABILITY_OF: dict[Action, Capability] = {
    Action.CLONE: Capability.CLONE,
    Action.CREATE_DISK: Capability.DISKS,
    Action.ATTACH_DISK: Capability.DISKS,
    Action.DETACH_DISK: Capability.DISKS,
    Action.DELETE_DISK: Capability.DISKS,
    Action.CREATE_SNAPSHOT: Capability.SNAPSHOTS,
    Action.ROLLBACK_SNAPSHOT: Capability.SNAPSHOTS,
    Action.DELETE_SNAPSHOT: Capability.SNAPSHOTS,
}

# The rows that a creation records before its provider work, which recovery takes back.
TAKEN_BACK: dict[str, type[Disk] | type[Snapshot]] = {
    Action.CREATE_DISK.value: Disk,
    Action.CREATE_SNAPSHOT.value: Snapshot,
}

Prepare = Callable[[Tx, Machine], Awaitable[T]]
"""A command's own checks and rows, written with the operation; gets the machine as stored."""


async def _nothing(tx: Tx, machine: Machine) -> None:
    """The `Prepare` of a command that checks and adds nothing beyond the transition table."""


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    capabilities: list[str]
    images: list[str]


class MachineService(MachineQueries):
    """The machine commands; reads come from MachineQueries, operations run on `runner`."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        providers: dict[str, Provider],
        bus: EventBus,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(sessionmaker)
        self.providers = providers
        self.runner = OperationRunner(sessionmaker, bus, metrics)

    # ------------------------------------------------------------------ the runner's, for
    # callers that hold the service (the app, the observer's callers, tests, benchmarks)
    @property
    def bus(self) -> EventBus:
        return self.runner.bus

    def busy(self, machine_id: str) -> bool:
        """See `OperationRunner.busy`."""
        return self.runner.busy(machine_id)

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """See `OperationRunner.transaction`."""
        return self.runner.transaction()

    async def recover_interrupted(self) -> int:
        """See `OperationRunner.recover_interrupted`. A disk or snapshot whose creation was
        interrupted goes, as after a failed creation (its row, and what the provider may have
        made of it): the row alone would name a file or snapshot that may not exist."""
        return await self.runner.recover_interrupted(self._take_back)

    async def _take_back(self, tx: Tx, operation: Operation) -> None:
        model = TAKEN_BACK.get(operation.kind)
        if model is None:
            return
        # The operation held its machine's lock from the transaction that recorded the row until
        # the server stopped, so the machine's rows made since are exactly that one.
        rows = await tx.session.scalars(
            select(model).where(
                model.machine_id == operation.machine_id,
                model.created_at >= operation.created_at,
            )
        )
        machine = await tx.session.get(Machine, operation.machine_id)
        for row in list(rows):
            assert isinstance(row, Disk | Snapshot)
            if machine is not None:
                await self._forget(machine, row)
            await tx.session.delete(row)

    async def _forget(self, machine: Machine, row: Disk | Snapshot) -> None:
        """Ask the provider to delete what an interrupted creation may have made; it may have
        made nothing, so a refusal is only logged."""
        provider = self.providers.get(machine.provider)
        if provider is None:
            return
        try:
            if isinstance(row, Disk):
                await provider.delete_disk(machine.id, row.id)
            else:
                await provider.delete_snapshot(machine.id, row.name)
        except ProviderError as exc:
            log.info("recovery: %s of %s left nothing to delete: %s", row.name, machine.name, exc)

    async def wait_idle(self, seconds: float = 10.0) -> None:
        """See `OperationRunner.wait_idle`."""
        await self.runner.wait_idle(seconds)

    async def close(self, grace: float = 5.0) -> None:
        """See `OperationRunner.close`."""
        await self.runner.close(grace)

    # ------------------------------------------------------------------ providers
    def _provider(self, machine: Machine, action: Action | None = None) -> Provider:
        provider = self.providers.get(machine.provider)
        if provider is None:
            raise ConflictError(
                f"machine {machine.name!r} belongs to provider {machine.provider!r}, which is not"
                f" enabled; enable it in HANGAR_PROVIDERS"
            )
        capability = CAPABILITY_OF.get(action) if action is not None else None
        if capability is not None and capability not in provider.capabilities:
            raise UnsupportedError(
                f"provider {provider.name!r} does not support {capability.value}"
                f" (needed for {action})"
            )
        return provider

    async def provider_info(self) -> list[ProviderInfo]:
        return [
            ProviderInfo(
                name=name,
                capabilities=sorted(c.value for c in provider.capabilities),
                images=list(await provider.images()),
            )
            for name, provider in self.providers.items()
        ]

    async def console(self, machine_id: str, lines: int) -> str:
        machine = await self.get_machine(machine_id)
        provider = self._provider(machine)
        if Capability.CONSOLE not in provider.capabilities:
            raise UnsupportedError(f"provider {provider.name!r} has no console")
        try:
            return await provider.console(machine.id, lines)
        except ProviderError as exc:
            raise ConflictError(f"console of {machine.name!r} is not available: {exc}") from exc

    def _faults(self, provider: str) -> FaultInjection:
        found = self.providers.get(provider)
        if found is None:
            raise NotFoundError(f"the {provider} provider is not enabled (HANGAR_PROVIDERS)")
        if not isinstance(found, FaultInjection):
            raise UnsupportedError(f"provider {provider!r} does not take injected faults")
        return found

    def inject_fault(
        self, action: str, message: str, times: int, *, provider: str = "fake"
    ) -> None:
        """Make the next `times` calls of `action` on `provider` fail with `message`.

        NotFoundError when the provider is not enabled, UnsupportedError when it cannot fail on
        demand (only doubles can), InvalidInputError naming the allowed actions."""
        try:
            self._faults(provider).inject_fault(action, message, times)
        except UnknownFaultActionError as exc:
            raise InvalidInputError("action", str(exc)) from exc

    def clear_faults(self, *, provider: str = "fake") -> None:
        """Disarm every fault injected into `provider`; errors as for `inject_fault`."""
        self._faults(provider).clear_faults()

    # ------------------------------------------------------------------ commands
    async def create_machine(
        self, *, name: str, provider: str, image: str, cpus: int, memory_mb: int, start: bool = True
    ) -> tuple[Machine, Operation]:
        await self._validate_spec(provider, image)
        now = utcnow()
        machine = Machine(
            id=new_id(),
            name=name,
            provider=provider,
            image=image,
            cpus=cpus,
            memory_mb=memory_mb,
            state=MachineState.PROVISIONING.value,
            created_at=now,
            updated_at=now,
        )

        async def write(tx: Tx) -> None:
            if await _name_taken(tx.session, name):
                raise ConflictError(f"a machine named {name!r} already exists; pick another name")
            tx.session.add(machine)
            tx.event(machine, "state", f"{name} is provisioning")

        operation, _ = await self.runner.begin(Action.CREATE, machine, write)
        self.runner.run(operation, partial(self._do_create, machine, start))
        return machine, operation

    async def start(self, machine_id: str) -> Operation:
        machine, operation, _ = await self._command(machine_id, Action.START, _nothing)
        self.runner.run(operation, partial(self._do_start, machine))
        return operation

    async def stop(self, machine_id: str) -> Operation:
        machine, operation, _ = await self._command(machine_id, Action.STOP, _nothing)
        self.runner.run(operation, partial(self._do_stop, machine))
        return operation

    async def restart(self, machine_id: str) -> Operation:
        machine, operation, _ = await self._command(machine_id, Action.RESTART, _nothing)
        self.runner.run(operation, partial(self._do_restart, machine))
        return operation

    async def delete(self, machine_id: str) -> Operation:
        machine, operation, _ = await self._command(machine_id, Action.DELETE, _nothing)
        self.runner.run(operation, partial(self._do_delete, machine))
        return operation

    async def clone(self, machine_id: str, name: str) -> tuple[Machine, Operation]:
        now = utcnow()
        clone_id = new_id()

        async def prepare(tx: Tx, source: Machine) -> Machine:
            if await _name_taken(tx.session, name):
                raise ConflictError(f"a machine named {name!r} already exists; pick another name")
            clone = Machine(
                id=clone_id,
                name=name,
                provider=source.provider,
                image=source.image,
                cpus=source.cpus,
                memory_mb=source.memory_mb,
                state=MachineState.PROVISIONING.value,
                created_at=now,
                updated_at=now,
            )
            tx.session.add(clone)
            tx.event(clone, "state", f"{name} is provisioning (clone of {source.name})")
            return clone

        source, operation, clone = await self._command(
            machine_id, Action.CLONE, prepare, creates=clone_id
        )
        # The source only lends its disk; success or failure is the clone's.
        work = partial(self._do_clone, source, clone)
        self.runner.run(operation, work, outcome_of=clone.id)
        return clone, operation

    async def create_disk(self, machine_id: str, name: str, size_mb: int) -> tuple[Disk, Operation]:
        async def prepare(tx: Tx, machine: Machine) -> Disk:
            taken = await tx.session.scalar(
                select(Disk.id).where(Disk.machine_id == machine.id, Disk.name == name)
            )
            if taken is not None:
                raise ConflictError(f"machine {machine.name!r} already has a disk named {name!r}")
            disk = Disk(
                id=new_id(),
                machine_id=machine.id,
                name=name,
                size_mb=size_mb,
                attached=False,
                created_at=utcnow(),
            )
            tx.session.add(disk)
            return disk

        machine, operation, disk = await self._command(machine_id, Action.CREATE_DISK, prepare)
        work = partial(self._do_create_disk, machine, disk)
        self.runner.run(operation, work, undo=_remove(Disk, disk.id))
        return disk, operation

    async def attach_disk(self, machine_id: str, disk_id: str) -> Operation:
        return await self._disk_command(machine_id, disk_id, Action.ATTACH_DISK)

    async def detach_disk(self, machine_id: str, disk_id: str) -> Operation:
        return await self._disk_command(machine_id, disk_id, Action.DETACH_DISK)

    async def delete_disk(self, machine_id: str, disk_id: str) -> Operation:
        return await self._disk_command(machine_id, disk_id, Action.DELETE_DISK)

    async def _disk_command(self, machine_id: str, disk_id: str, action: Action) -> Operation:
        async def prepare(tx: Tx, machine: Machine) -> Disk:
            disk = await _disk_of(tx, machine, disk_id)
            if action is Action.DELETE_DISK and disk.attached:
                raise DiskAttachedError(
                    f"disk {disk.name!r} is attached to {machine.name!r}; detach it first"
                )
            if action is Action.ATTACH_DISK and disk.attached:
                raise ConflictError(f"disk {disk.name!r} is already attached")
            if action is Action.DETACH_DISK and not disk.attached:
                raise ConflictError(f"disk {disk.name!r} is not attached")
            return disk

        machine, operation, disk = await self._command(machine_id, action, prepare)
        self.runner.run(operation, partial(self._do_disk, machine, disk, action))
        return operation

    async def create_snapshot(self, machine_id: str, name: str) -> tuple[Snapshot, Operation]:
        async def prepare(tx: Tx, machine: Machine) -> Snapshot:
            taken = await tx.session.scalar(
                select(Snapshot.id).where(Snapshot.machine_id == machine.id, Snapshot.name == name)
            )
            if taken is not None:
                raise ConflictError(
                    f"machine {machine.name!r} already has a snapshot named {name!r}"
                )
            snapshot = Snapshot(id=new_id(), machine_id=machine.id, name=name, created_at=utcnow())
            tx.session.add(snapshot)
            return snapshot

        action = Action.CREATE_SNAPSHOT
        machine, operation, snapshot = await self._command(machine_id, action, prepare)
        work = partial(self._do_snapshot, machine, snapshot, action)
        self.runner.run(operation, work, undo=_remove(Snapshot, snapshot.id))
        return snapshot, operation

    async def rollback_snapshot(self, machine_id: str, snapshot_id: str) -> Operation:
        return await self._snapshot_command(machine_id, snapshot_id, Action.ROLLBACK_SNAPSHOT)

    async def delete_snapshot(self, machine_id: str, snapshot_id: str) -> Operation:
        return await self._snapshot_command(machine_id, snapshot_id, Action.DELETE_SNAPSHOT)

    async def _snapshot_command(
        self, machine_id: str, snapshot_id: str, action: Action
    ) -> Operation:
        async def prepare(tx: Tx, machine: Machine) -> Snapshot:
            return await _snapshot_of(tx, machine, snapshot_id)

        machine, operation, snapshot = await self._command(machine_id, action, prepare)
        self.runner.run(operation, partial(self._do_snapshot, machine, snapshot, action))
        return operation

    async def _command(
        self,
        machine_id: str,
        action: Action,
        prepare: Prepare[T],
        *,
        creates: str | None = None,
    ) -> tuple[Machine, Operation, T]:
        """Check `action` against the table under the machine's lock, let `prepare` check and add
        its rows, and record the operation as pending with the state the action shows meanwhile.

        Returns the machine as committed, the pending operation and what `prepare` returned.
        Raises NotFoundError, UnsupportedError, BusyError, InvalidTransitionError or what
        `prepare` raises; then nothing was written and no lock is held. `creates` is the id of
        a machine the operation makes (a clone): it is locked with the machine."""
        machine = await self.get_machine(machine_id)
        self._provider(machine, action)

        async def write(tx: Tx) -> tuple[Machine, T]:
            # Checked again in the transaction: the row may have changed since it was read.
            current = await tx.session.get(Machine, machine_id)
            if current is None:
                raise NotFoundError(f"no machine with id {machine_id!r}")
            transition = check(action, current.state, current.name)
            prepared = await prepare(tx, current)
            if transition.during is not None:
                tx.set_state(current, transition.during)
            else:
                tx.event(current, "operation", f"{action.value} of {current.name} started")
            return current, prepared

        operation, (current, prepared) = await self.runner.begin(
            action, machine, write, creates=creates
        )
        return current, operation, prepared

    async def _validate_spec(self, provider_name: str, image: str) -> Provider:
        provider = self.providers.get(provider_name)
        if provider is None:
            enabled = ", ".join(self.providers)
            raise InvalidInputError(
                "provider", f"unknown or disabled provider {provider_name!r}; enabled: {enabled}"
            )
        images = list(await provider.images())
        if image not in images:
            # A conflict with what the provider has now (images come and go while the server
            # runs, so the document cannot list them): not a malformed field (422).
            message = (
                f"provider {provider_name!r} has no image {image!r}; one of: {', '.join(images)}"
            )
            raise ConflictError(
                f"image: {message}", {"fields": [{"field": "image", "message": message}]}
            )
        return provider

    # ------------------------------------------------------------------ background work
    # Each `_do_*` makes the provider calls and returns what to write once they succeeded.

    async def _do_create(self, machine: Machine, start: bool) -> Apply:
        provider = self._provider(machine)
        await provider.create(_spec(machine))
        details = await _placement(provider, machine.id)
        if not start:
            return _becomes(MachineState.STOPPED, details=details)

        async def starting() -> None:
            async with self.runner.transaction() as tx:
                row = await tx.session.get(Machine, machine.id)
                assert row is not None
                row.details = details
                tx.set_state(row, MachineState.STARTING)

        await self.runner.persist(f"create of {machine.name}", starting)
        runtime = await provider.start(machine.id)
        return _becomes(MachineState.RUNNING, endpoint=runtime.endpoint)

    async def _do_start(self, machine: Machine) -> Apply:
        runtime = await self._provider(machine).start(machine.id)
        return _becomes(MachineState.RUNNING, endpoint=runtime.endpoint)

    async def _do_stop(self, machine: Machine) -> Apply:
        await self._provider(machine).stop(machine.id)
        return _becomes(MachineState.STOPPED)

    async def _do_restart(self, machine: Machine) -> Apply:
        provider = self._provider(machine)
        await provider.stop(machine.id)
        runtime = await provider.start(machine.id)
        return _becomes(MachineState.RUNNING, endpoint=runtime.endpoint)

    async def _do_delete(self, machine: Machine) -> Apply:
        await self._provider(machine).delete(machine.id)

        async def apply(tx: Tx, row: Machine | None) -> None:
            if row is not None:
                name = row.name
                await tx.session.delete(row)
                tx.event(None, "deleted", f"{name} was deleted", machine_id=machine.id)

        return apply

    async def _do_clone(self, source: Machine, clone: Machine) -> Apply:
        provider = self._provider(source)
        await provider.clone(source.id, _spec(clone))
        return _becomes(MachineState.STOPPED, details=await _placement(provider, clone.id))

    async def _do_create_disk(self, machine: Machine, disk: Disk) -> Apply:
        await self._provider(machine).create_disk(machine.id, disk.id, disk.size_mb)
        return _unchanged

    async def _do_disk(self, machine: Machine, disk: Disk, action: Action) -> Apply:
        provider = self._provider(machine)
        if action is Action.ATTACH_DISK:
            await provider.attach_disk(machine.id, disk.id)
        elif action is Action.DETACH_DISK:
            await provider.detach_disk(machine.id, disk.id)
        else:
            await provider.delete_disk(machine.id, disk.id)

        async def apply(tx: Tx, _machine: Machine | None) -> None:
            row = await tx.session.get(Disk, disk.id)
            if row is None:
                return
            if action is Action.DELETE_DISK:
                await tx.session.delete(row)
            else:
                row.attached = action is Action.ATTACH_DISK

        return apply

    async def _do_snapshot(self, machine: Machine, snapshot: Snapshot, action: Action) -> Apply:
        provider = self._provider(machine)
        if action is Action.CREATE_SNAPSHOT:
            await provider.create_snapshot(machine.id, snapshot.name)
        elif action is Action.ROLLBACK_SNAPSHOT:
            await provider.rollback_snapshot(machine.id, snapshot.name)
        else:
            await provider.delete_snapshot(machine.id, snapshot.name)

        async def apply(tx: Tx, _machine: Machine | None) -> None:
            if action is Action.DELETE_SNAPSHOT:
                row = await tx.session.get(Snapshot, snapshot.id)
                if row is not None:
                    await tx.session.delete(row)

        return apply


# ---------------------------------------------------------------------- rows and specs
async def _name_taken(session: AsyncSession, name: str) -> bool:
    return (await session.scalar(select(Machine.id).where(Machine.name == name))) is not None


async def _disk_of(tx: Tx, machine: Machine, disk_id: str) -> Disk:
    disk = await tx.session.get(Disk, disk_id)
    if disk is None or disk.machine_id != machine.id:
        raise NotFoundError(f"machine {machine.name!r} has no disk with id {disk_id!r}")
    return disk


async def _snapshot_of(tx: Tx, machine: Machine, snapshot_id: str) -> Snapshot:
    snapshot = await tx.session.get(Snapshot, snapshot_id)
    if snapshot is None or snapshot.machine_id != machine.id:
        raise NotFoundError(f"machine {machine.name!r} has no snapshot with id {snapshot_id!r}")
    return snapshot


def _spec(machine: Machine) -> MachineSpec:
    return MachineSpec(
        key=machine.id,
        name=machine.name,
        image=machine.image,
        cpus=machine.cpus,
        memory_mb=machine.memory_mb,
        labels={"hangar.machine": machine.name},
    )


async def _placement(provider: Provider, key: str) -> dict[str, str]:
    """Where the provider put machine `key`, for people (empty when it has no such names). Only
    information: a provider that cannot tell right now does not fail the action that made it."""
    if not isinstance(provider, Placement):
        return {}
    try:
        return {str(label): str(value) for label, value in (await provider.placement(key)).items()}
    except ProviderError:
        log.warning("provider %s could not tell where machine %s lives", provider.name, key)
        return {}


def _becomes(
    state: MachineState, *, endpoint: str | None = None, details: dict[str, str] | None = None
) -> Apply:
    """Success that puts the machine in `state` with `endpoint` (and `details`, when given) and
    clears its error."""

    async def apply(tx: Tx, machine: Machine | None) -> None:
        if machine is not None:
            machine.endpoint = endpoint
            if details is not None:
                machine.details = details
            machine.error = None
            tx.set_state(machine, state)

    return apply


async def _unchanged(tx: Tx, machine: Machine | None) -> None:
    """Success that changes no machine field (disk and snapshot work)."""


def _remove(model: type[Disk] | type[Snapshot], row_id: str) -> Undo:
    """Undo for a failed create: the row recorded up front goes (the provider left nothing)."""

    async def undo(tx: Tx) -> None:
        row = await tx.session.get(model, row_id)
        if row is not None:
            await tx.session.delete(row)

    return undo
