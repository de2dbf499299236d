"""Machines: the state machine applied to database rows, operations run as background tasks.

What callers rely on:
- A command checks the transition table under the machine's lock, records the operation and the
  new state (with an event) in one transaction, and returns the pending operation at once; the
  provider work happens in a background task.
- Only one operation runs per machine; a second command raises BusyError.
- Every state change is stored as an event in the same transaction, and events are published to
  subscribers in id order (one writer at a time).
- A failing operation leaves the machine in `error` with the provider's message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hangar.db.models import Disk, Event, Machine, Operation, Snapshot, new_id, utcnow
from hangar.metrics import Metrics
from hangar.providers.base import Capability, MachineSpec, Provider, ProviderError
from hangar.providers.fake import FakeProvider, UnknownFaultActionError
from hangar.service.errors import (
    BusyError,
    ConflictError,
    DiskAttachedError,
    InvalidInputError,
    NotFoundError,
    UnsupportedError,
)
from hangar.service.events import EventBus, EventRecord
from hangar.service.queries import MachineQueries
from hangar.service.states import STABLE_STATES, Action, MachineState, check

log = logging.getLogger(__name__)

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"

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


@dataclass
class Tx:
    """One write transaction; `event()` stores an event that is published after commit."""

    session: AsyncSession
    events: list[Event] = field(default_factory=list)

    def event(
        self, machine: Machine | None, kind: str, message: str, *, machine_id: str = ""
    ) -> None:
        row = Event(
            machine_id=machine.id if machine is not None else (machine_id or None),
            kind=kind,
            state=machine.state if machine is not None else None,
            message=message,
            created_at=utcnow(),
        )
        self.session.add(row)
        self.events.append(row)

    def set_state(self, machine: Machine, state: MachineState, message: str = "") -> None:
        machine.state = state.value
        machine.updated_at = utcnow()
        self.event(machine, "state", message or f"{machine.name} is {state.value}")


Apply = Callable[[Tx, Machine | None], Awaitable[None]]
Undo = Callable[[Tx], Awaitable[None]]


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    capabilities: list[str]
    images: list[str]


class MachineService(MachineQueries):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        providers: dict[str, Provider],
        bus: EventBus,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(sessionmaker)
        self.providers = providers
        self.bus = bus
        self._metrics = metrics
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: dict[str, str] = {}  # machine id -> kind of its running operation
        # One writer at a time, so events are committed and published in id order.
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ plumbing
    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Tx]:
        async with self._write_lock:
            async with self._sessionmaker() as session:
                tx = Tx(session)
                async with session.begin():
                    yield tx
                    await session.flush()
                records = [EventRecord.of(row) for row in tx.events]
            for record in records:
                self.bus.publish(record)

    async def _claim(self, machine: Machine) -> None:
        """Take the machine's lock or raise BusyError; never waits for another operation."""
        lock = self._locks.setdefault(machine.id, asyncio.Lock())
        if lock.locked():
            kind = self._running.get(machine.id, "an operation")
            raise BusyError(
                f"machine {machine.name!r} is busy: {kind} is running; try again when it finished",
                {"running": kind},
            )
        # Acquiring an unlocked asyncio.Lock does not yield to other tasks, so checking and
        # taking it is atomic: two commands can never both pass the check.
        await lock.acquire()
        self._running[machine.id] = "an operation"

    def _release(self, machine_id: str) -> None:
        self._running.pop(machine_id, None)
        lock = self._locks.pop(machine_id, None)
        if lock is not None and lock.locked():
            lock.release()

    def busy(self, machine_id: str) -> bool:
        lock = self._locks.get(machine_id)
        return lock is not None and lock.locked()

    # The observer (service/observer.py) changes rows outside an operation; these two keep it on
    # the same rules as a command: the machine's lock first, then one write transaction.
    @asynccontextmanager
    async def holding(self, machine: Machine) -> AsyncIterator[None]:
        """Hold the machine's lock outside an operation; BusyError when an operation runs."""
        await self._claim(machine)
        self._running[machine.id] = "an observer check"
        try:
            yield
        finally:
            self._release(machine.id)

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """One write transaction; its events are published after the commit."""
        return self._tx()

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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self, seconds: float = 10.0) -> None:
        """Wait until no operation runs (tests, shutdown); TimeoutError after `seconds`."""
        async with asyncio.timeout(seconds):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 5.0) -> None:
        """Let running operations finish for `grace` seconds, then cancel them."""
        try:
            await self.wait_idle(grace)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.bus.close()

    async def console(self, machine_id: str, lines: int) -> str:
        machine = await self.get_machine(machine_id)
        provider = self._provider(machine)
        if Capability.CONSOLE not in provider.capabilities:
            raise UnsupportedError(f"provider {provider.name!r} has no console")
        try:
            return await provider.console(machine.id, lines)
        except ProviderError as exc:
            raise ConflictError(f"console of {machine.name!r} is not available: {exc}") from exc

    async def provider_info(self) -> list[ProviderInfo]:
        return [
            ProviderInfo(
                name=name,
                capabilities=sorted(c.value for c in provider.capabilities),
                images=list(await provider.images()),
            )
            for name, provider in self.providers.items()
        ]

    # ------------------------------------------------------------------ fake faults
    def _fake(self) -> FakeProvider:
        provider = self.providers.get("fake")
        if not isinstance(provider, FakeProvider):
            raise NotFoundError("the fake provider is not enabled (HANGAR_PROVIDERS)")
        return provider

    def inject_fault(self, action: str, message: str, times: int) -> None:
        try:
            self._fake().inject_fault(action, message, times)
        except UnknownFaultActionError as exc:
            raise InvalidInputError("action", str(exc)) from exc

    def clear_faults(self) -> None:
        self._fake().clear_faults()

    # ------------------------------------------------------------------ commands
    async def recover_interrupted(self) -> int:
        """At startup: operations a previous process left unfinished are failed, and machines
        stuck in a transient state go to `error`. Returns how many operations were failed."""
        message = "interrupted: the server stopped while this operation ran"
        async with self._tx() as tx:
            operations = list(
                await tx.session.scalars(
                    select(Operation).where(Operation.status.in_([PENDING, RUNNING]))
                )
            )
            for operation in operations:
                operation.status, operation.error = FAILED, message
                operation.finished_at = utcnow()
            stuck = await tx.session.scalars(
                select(Machine).where(Machine.state.not_in([s.value for s in STABLE_STATES]))
            )
            for machine in stuck:
                machine.error = message
                tx.set_state(machine, MachineState.ERROR, f"{machine.name}: {message}")
        return len(operations)

    async def _validate_spec(self, provider_name: str, image: str) -> Provider:
        provider = self.providers.get(provider_name)
        if provider is None:
            enabled = ", ".join(self.providers)
            raise InvalidInputError(
                "provider", f"unknown or disabled provider {provider_name!r}; enabled: {enabled}"
            )
        images = list(await provider.images())
        if image not in images:
            raise InvalidInputError(
                "image",
                f"provider {provider_name!r} has no image {image!r}; one of: {', '.join(images)}",
            )
        return provider

    @staticmethod
    async def _name_taken(session: AsyncSession, name: str) -> bool:
        return (await session.scalar(select(Machine.id).where(Machine.name == name))) is not None

    def _new_operation(self, tx: Tx, machine_id: str, action: Action) -> Operation:
        operation = Operation(
            id=new_id(),
            machine_id=machine_id,
            kind=action.value,
            status=PENDING,
            created_at=utcnow(),
        )
        tx.session.add(operation)
        self._running[machine_id] = action.value
        return operation

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
        await self._claim(machine)
        try:
            async with self._tx() as tx:
                if await self._name_taken(tx.session, name):
                    raise ConflictError(
                        f"a machine named {name!r} already exists; pick another name"
                    )
                tx.session.add(machine)
                tx.event(machine, "state", f"{name} is provisioning")
                operation = self._new_operation(tx, machine.id, Action.CREATE)
        except BaseException:
            self._release(machine.id)
            raise
        self._spawn(self._run(operation, machine, partial(self._do_create, machine, start)))
        return machine, operation

    @staticmethod
    def _spec(machine: Machine) -> MachineSpec:
        return MachineSpec(
            key=machine.id,
            name=machine.name,
            image=machine.image,
            cpus=machine.cpus,
            memory_mb=machine.memory_mb,
            labels={"hangar.machine": machine.name},
        )

    async def _command(
        self,
        machine_id: str,
        action: Action,
        prepare: Callable[[Tx, Machine], Awaitable[None]] | None = None,
    ) -> tuple[Machine, Operation]:
        """Check `action` against the table under the machine's lock and record it as pending."""
        machine = await self.get_machine(machine_id)
        self._provider(machine, action)
        await self._claim(machine)
        try:
            async with self._tx() as tx:
                current = await tx.session.get(Machine, machine_id)
                if current is None:
                    raise NotFoundError(f"no machine with id {machine_id!r}")
                transition = check(action, current.state, current.name)
                if prepare is not None:
                    await prepare(tx, current)
                operation = self._new_operation(tx, current.id, action)
                if transition.during is not None:
                    tx.set_state(current, transition.during)
                else:
                    tx.event(current, "operation", f"{action.value} of {current.name} started")
        except BaseException:
            self._release(machine_id)
            raise
        return current, operation

    async def start(self, machine_id: str) -> Operation:
        machine, operation = await self._command(machine_id, Action.START)
        self._spawn(self._run(operation, machine, partial(self._do_start, machine)))
        return operation

    async def stop(self, machine_id: str) -> Operation:
        machine, operation = await self._command(machine_id, Action.STOP)
        self._spawn(self._run(operation, machine, partial(self._do_stop, machine)))
        return operation

    async def restart(self, machine_id: str) -> Operation:
        machine, operation = await self._command(machine_id, Action.RESTART)
        self._spawn(self._run(operation, machine, partial(self._do_restart, machine)))
        return operation

    async def delete(self, machine_id: str) -> Operation:
        machine, operation = await self._command(machine_id, Action.DELETE)
        self._spawn(self._run(operation, machine, partial(self._do_delete, machine)))
        return operation

    async def clone(self, machine_id: str, name: str) -> tuple[Machine, Operation]:
        now = utcnow()
        holder: list[Machine] = []

        async def prepare(tx: Tx, source: Machine) -> None:
            if await self._name_taken(tx.session, name):
                raise ConflictError(f"a machine named {name!r} already exists; pick another name")
            clone = Machine(
                id=new_id(),
                name=name,
                provider=source.provider,
                image=source.image,
                cpus=source.cpus,
                memory_mb=source.memory_mb,
                state=MachineState.PROVISIONING.value,
                created_at=now,
                updated_at=now,
            )
            await self._claim(clone)
            holder.append(clone)
            tx.session.add(clone)
            tx.event(clone, "state", f"{name} is provisioning (clone of {source.name})")

        try:
            source, operation = await self._command(machine_id, Action.CLONE, prepare)
        except BaseException:
            for clone in holder:
                self._release(clone.id)
            raise
        clone = holder[0]
        self._running[clone.id] = Action.CLONE.value
        self._spawn(
            self._run(operation, source, partial(self._do_clone, source, clone), also=clone)
        )
        return clone, operation

    async def _disk(self, tx: Tx, machine: Machine, disk_id: str) -> Disk:
        disk = await tx.session.get(Disk, disk_id)
        if disk is None or disk.machine_id != machine.id:
            raise NotFoundError(f"machine {machine.name!r} has no disk with id {disk_id!r}")
        return disk

    async def create_disk(self, machine_id: str, name: str, size_mb: int) -> tuple[Disk, Operation]:
        holder: list[Disk] = []

        async def prepare(tx: Tx, machine: Machine) -> None:
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
            holder.append(disk)

        machine, operation = await self._command(machine_id, Action.CREATE_DISK, prepare)
        disk = holder[0]
        work = partial(self._do_create_disk, machine, disk)
        self._spawn(self._run(operation, machine, work, undo=_remove(Disk, disk.id)))
        return disk, operation

    async def attach_disk(self, machine_id: str, disk_id: str) -> Operation:
        return await self._disk_command(machine_id, disk_id, Action.ATTACH_DISK)

    async def detach_disk(self, machine_id: str, disk_id: str) -> Operation:
        return await self._disk_command(machine_id, disk_id, Action.DETACH_DISK)

    async def delete_disk(self, machine_id: str, disk_id: str) -> Operation:
        return await self._disk_command(machine_id, disk_id, Action.DELETE_DISK)

    async def _disk_command(self, machine_id: str, disk_id: str, action: Action) -> Operation:
        holder: list[Disk] = []

        async def prepare(tx: Tx, machine: Machine) -> None:
            disk = await self._disk(tx, machine, disk_id)
            if action is Action.DELETE_DISK and disk.attached:
                raise DiskAttachedError(
                    f"disk {disk.name!r} is attached to {machine.name!r}; detach it first"
                )
            if action is Action.ATTACH_DISK and disk.attached:
                raise ConflictError(f"disk {disk.name!r} is already attached")
            if action is Action.DETACH_DISK and not disk.attached:
                raise ConflictError(f"disk {disk.name!r} is not attached")
            holder.append(disk)

        machine, operation = await self._command(machine_id, action, prepare)
        disk = holder[0]
        self._spawn(self._run(operation, machine, partial(self._do_disk, machine, disk, action)))
        return operation

    async def _snapshot(self, tx: Tx, machine: Machine, snapshot_id: str) -> Snapshot:
        snapshot = await tx.session.get(Snapshot, snapshot_id)
        if snapshot is None or snapshot.machine_id != machine.id:
            raise NotFoundError(f"machine {machine.name!r} has no snapshot with id {snapshot_id!r}")
        return snapshot

    async def create_snapshot(self, machine_id: str, name: str) -> tuple[Snapshot, Operation]:
        holder: list[Snapshot] = []

        async def prepare(tx: Tx, machine: Machine) -> None:
            taken = await tx.session.scalar(
                select(Snapshot.id).where(Snapshot.machine_id == machine.id, Snapshot.name == name)
            )
            if taken is not None:
                raise ConflictError(
                    f"machine {machine.name!r} already has a snapshot named {name!r}"
                )
            snapshot = Snapshot(id=new_id(), machine_id=machine.id, name=name, created_at=utcnow())
            tx.session.add(snapshot)
            holder.append(snapshot)

        machine, operation = await self._command(machine_id, Action.CREATE_SNAPSHOT, prepare)
        snapshot = holder[0]
        work = partial(self._do_snapshot, machine, snapshot, Action.CREATE_SNAPSHOT)
        self._spawn(self._run(operation, machine, work, undo=_remove(Snapshot, snapshot.id)))
        return snapshot, operation

    async def rollback_snapshot(self, machine_id: str, snapshot_id: str) -> Operation:
        return await self._snapshot_command(machine_id, snapshot_id, Action.ROLLBACK_SNAPSHOT)

    async def delete_snapshot(self, machine_id: str, snapshot_id: str) -> Operation:
        return await self._snapshot_command(machine_id, snapshot_id, Action.DELETE_SNAPSHOT)

    async def _snapshot_command(
        self, machine_id: str, snapshot_id: str, action: Action
    ) -> Operation:
        holder: list[Snapshot] = []

        async def prepare(tx: Tx, machine: Machine) -> None:
            holder.append(await self._snapshot(tx, machine, snapshot_id))

        machine, operation = await self._command(machine_id, action, prepare)
        self._spawn(
            self._run(operation, machine, partial(self._do_snapshot, machine, holder[0], action))
        )
        return operation

    # ------------------------------------------------------------------ background work
    # Each `_do_*` makes the provider calls and returns what to write once they succeeded.

    async def _run(
        self,
        operation: Operation,
        machine: Machine,
        work: Callable[[], Awaitable[Apply]],
        *,
        also: Machine | None = None,
        undo: Undo | None = None,
    ) -> None:
        """Run one operation to its end; always finishes the record and releases the locks."""
        kind = operation.kind
        target = also or machine  # a clone's outcome belongs to the new machine
        try:
            async with self._tx() as tx:
                row = await tx.session.get(Operation, operation.id)
                assert row is not None
                row.status = RUNNING
            try:
                apply = await work()
            except Exception as exc:
                if isinstance(exc, ProviderError):
                    message = str(exc) or type(exc).__name__
                else:
                    log.exception("operation %s (%s) failed unexpectedly", operation.id, kind)
                    message = f"unexpected error: {exc!r}"
                await self._fail(operation.id, target.id, kind, message, undo)
                return
            async with self._tx() as tx:
                current = await tx.session.get(Machine, target.id)
                await apply(tx, current)
                if current is not None and current in tx.session.deleted:
                    current = None
                row = await tx.session.get(Operation, operation.id)
                assert row is not None
                row.status, row.finished_at = SUCCEEDED, utcnow()
                tx.event(
                    current,
                    "operation",
                    f"{kind} succeeded",
                    machine_id=target.id,
                )
            self._finished(kind, SUCCEEDED)
        finally:
            self._release(machine.id)
            if also is not None:
                self._release(also.id)

    def _finished(self, kind: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.operation_finished(kind, outcome)

    async def _fail(
        self, operation_id: str, machine_id: str, kind: str, message: str, undo: Undo | None
    ) -> None:
        async with self._tx() as tx:
            if undo is not None:
                await undo(tx)
            machine = await tx.session.get(Machine, machine_id)
            if machine is not None:
                machine.error = message
                tx.set_state(
                    machine, MachineState.ERROR, f"{machine.name}: {kind} failed: {message}"
                )
            operation = await tx.session.get(Operation, operation_id)
            assert operation is not None
            operation.status, operation.error, operation.finished_at = FAILED, message, utcnow()
            tx.event(machine, "operation", f"{kind} failed: {message}", machine_id=machine_id)
        self._finished(kind, FAILED)

    @staticmethod
    def _becomes(state: MachineState, *, endpoint: str | None = None) -> Apply:
        async def apply(tx: Tx, machine: Machine | None) -> None:
            if machine is not None:
                machine.endpoint = endpoint
                machine.error = None
                tx.set_state(machine, state)

        return apply

    @staticmethod
    async def _unchanged(tx: Tx, machine: Machine | None) -> None:
        """Success that changes no machine field (disk and snapshot work)."""

    async def _do_create(self, machine: Machine, start: bool) -> Apply:
        provider = self._provider(machine)
        await provider.create(self._spec(machine))
        if not start:
            return self._becomes(MachineState.STOPPED)
        async with self._tx() as tx:
            row = await tx.session.get(Machine, machine.id)
            assert row is not None
            tx.set_state(row, MachineState.STARTING)
        runtime = await provider.start(machine.id)
        return self._becomes(MachineState.RUNNING, endpoint=runtime.endpoint)

    async def _do_start(self, machine: Machine) -> Apply:
        runtime = await self._provider(machine).start(machine.id)
        return self._becomes(MachineState.RUNNING, endpoint=runtime.endpoint)

    async def _do_stop(self, machine: Machine) -> Apply:
        await self._provider(machine).stop(machine.id)
        return self._becomes(MachineState.STOPPED)

    async def _do_restart(self, machine: Machine) -> Apply:
        provider = self._provider(machine)
        await provider.stop(machine.id)
        runtime = await provider.start(machine.id)
        return self._becomes(MachineState.RUNNING, endpoint=runtime.endpoint)

    async def _do_delete(self, machine: Machine) -> Apply:
        await self._provider(machine).delete(machine.id)

        async def apply(tx: Tx, row: Machine | None) -> None:
            if row is not None:
                name = row.name
                await tx.session.delete(row)
                tx.event(None, "deleted", f"{name} was deleted", machine_id=machine.id)

        return apply

    async def _do_clone(self, source: Machine, clone: Machine) -> Apply:
        await self._provider(source).clone(source.id, self._spec(clone))
        return self._becomes(MachineState.STOPPED)

    async def _do_create_disk(self, machine: Machine, disk: Disk) -> Apply:
        await self._provider(machine).create_disk(machine.id, disk.id, disk.size_mb)
        return self._unchanged

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


def _remove(model: type[Disk] | type[Snapshot], row_id: str) -> Undo:
    """Undo for a failed create: the row recorded up front goes (the provider left nothing)."""

    async def undo(tx: Tx) -> None:
        row = await tx.session.get(model, row_id)
        if row is not None:
            await tx.session.delete(row)

    return undo
