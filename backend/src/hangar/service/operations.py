"""The operation runner: write transactions, per-machine locks, and operations run to their end.

What callers rely on:
- `transaction()` is the one way to write: one writer at a time, and the events stored in a
  transaction are published to subscribers after its commit, in id order.
- A machine has one lock. `begin()` takes it (and the lock of a machine the operation creates)
  or raises BusyError naming what holds it; it never waits for another operation. `holding()`
  takes the same lock for work outside an operation (the observer's checks).
- `begin()` records the operation as pending in the same transaction as the caller's checks and
  row changes: either all of it is committed, or nothing is and no lock stays held.
- `run()` finishes every begun operation: `succeeded` with the caller's changes applied, or
  `failed` with the machine in `error` and the provider's message; either way its locks are
  released and an `operation` event says how it ended. While the database does not answer
  (stopped, locked), the operation's own writes are tried again until it does: what the provider
  did is recorded late, never lost, and the operation does not stay `running` in the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hangar.db.engine import DATABASE_DOWN
from hangar.db.models import Event, Machine, Operation, OperationStatus, new_id, utcnow
from hangar.metrics import Metrics
from hangar.providers.base import ProviderError
from hangar.service.errors import BusyError
from hangar.service.events import EventBus, EventRecord
from hangar.service.states import STABLE_STATES, Action, MachineState

log = logging.getLogger(__name__)

T = TypeVar("T")

# Waits between tries of an operation's write while the database does not answer.
FIRST_RETRY_S = 0.1
LAST_RETRY_S = 5.0


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
"""What an operation writes once its provider work succeeded; gets the machine the outcome
belongs to, or None when that row is gone."""
Undo = Callable[[Tx], Awaitable[None]]
"""What a failed operation takes back of the rows it recorded up front."""
TakeBack = Callable[[Tx, Operation], Awaitable[None]]
"""What recovery removes of the rows an interrupted operation recorded up front."""
Work = Callable[[], Awaitable[Apply]]
"""The provider calls of an operation; returns what to write when they succeeded."""


class OperationRunner:
    """Runs operations one per machine, each in the background from pending to its end."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventBus,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.bus = bus
        self._metrics = metrics
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, str] = {}  # machine id -> what holds its lock, for BusyError
        self._held: dict[str, tuple[str, ...]] = {}  # operation id -> machine ids it locked
        # One writer at a time, so events are committed and published in id order.
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ transactions
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """One write transaction; its events are published after the commit."""
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Tx]:
        async with self._write_lock:
            async with self._sessionmaker() as session:
                tx = Tx(session)
                async with session.begin():
                    yield tx
                    await session.flush()
                records = [EventRecord.of(row) for row in tx.events]
            for record in records:
                self.bus.publish(record)

    # ------------------------------------------------------------------ per-machine locks
    def busy(self, machine_id: str) -> bool:
        """Whether an operation (or an observer check) holds the machine's lock right now."""
        lock = self._locks.get(machine_id)
        return lock is not None and lock.locked()

    async def _claim(self, machine_id: str, name: str, holder: str) -> None:
        """Take the machine's lock or raise BusyError; never waits for another operation."""
        lock = self._locks.setdefault(machine_id, asyncio.Lock())
        if lock.locked():
            running = self._holders.get(machine_id, "an operation")
            raise BusyError(
                f"machine {name!r} is busy: {running} is running; try again when it finished",
                {"running": running},
            )
        # Acquiring an unlocked asyncio.Lock does not yield to other tasks, so checking and
        # taking it is atomic: two commands can never both pass the check.
        await lock.acquire()
        self._holders[machine_id] = holder

    def _release(self, machine_id: str) -> None:
        self._holders.pop(machine_id, None)
        lock = self._locks.pop(machine_id, None)
        if lock is not None and lock.locked():
            lock.release()

    @asynccontextmanager
    async def holding(self, machine: Machine) -> AsyncIterator[None]:
        """Hold the machine's lock outside an operation; BusyError when an operation runs.

        The observer changes rows under it, so it follows the same rules as a command: the
        machine's lock first, then one write transaction."""
        await self._claim(machine.id, machine.name, "an observer check")
        try:
            yield
        finally:
            self._release(machine.id)

    # ------------------------------------------------------------------ operations
    async def begin(
        self,
        action: Action,
        machine: Machine,
        write: Callable[[Tx], Awaitable[T]],
        *,
        creates: str | None = None,
    ) -> tuple[Operation, T]:
        """Lock `machine` (and the machine id `creates`, for a clone), then in one transaction
        record `action` as a pending operation of `machine` and let `write` check and change
        rows. Returns the operation and what `write` returned.

        Raises BusyError, or whatever `write` raises; then nothing was written and no lock is
        held. Otherwise the locks stay held until the operation handed to `run()` ends, so every
        begun operation must be run."""
        locked = (machine.id,) if creates is None else (machine.id, creates)
        await self._claim(machine.id, machine.name, action.value)
        try:
            if creates is not None:
                await self._claim(creates, machine.name, action.value)
            async with self.transaction() as tx:
                operation = Operation(
                    id=new_id(),
                    machine_id=machine.id,
                    kind=action.value,
                    status=OperationStatus.PENDING,
                    created_at=utcnow(),
                )
                tx.session.add(operation)
                written = await write(tx)
        except BaseException:
            for machine_id in locked:
                self._release(machine_id)
            raise
        self._held[operation.id] = locked
        return operation, written

    def run(
        self,
        operation: Operation,
        work: Work,
        *,
        outcome_of: str | None = None,
        undo: Undo | None = None,
    ) -> None:
        """Run a begun operation in the background to its end (see the module docstring).

        The outcome belongs to the machine `outcome_of` (default: the operation's machine): it
        is the one `Apply` gets, and the one that goes to `error` when the work fails."""
        target = outcome_of or operation.machine_id
        task = asyncio.get_running_loop().create_task(self._run(operation, work, target, undo))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, operation: Operation, work: Work, target: str, undo: Undo | None) -> None:
        kind = operation.kind
        try:
            whose = f"operation {operation.id} ({kind})"
            await self.persist(
                whose, partial(self._set_status, operation.id, OperationStatus.RUNNING)
            )
            try:
                apply = await work()
            except Exception as exc:
                if isinstance(exc, ProviderError):
                    message = str(exc) or type(exc).__name__
                else:
                    log.exception("operation %s (%s) failed unexpectedly", operation.id, kind)
                    message = f"unexpected error: {exc!r}"
                await self.persist(
                    whose, partial(self._fail, operation.id, target, kind, message, undo)
                )
                self._finished(kind, OperationStatus.FAILED)
                return
            await self.persist(whose, partial(self._succeed, operation.id, target, kind, apply))
            self._finished(kind, OperationStatus.SUCCEEDED)
        finally:
            for machine_id in self._held.pop(operation.id, ()):
                self._release(machine_id)

    async def persist(self, whose: str, write: Callable[[], Awaitable[None]]) -> None:
        """Run `write` (one transaction) until the database takes it; a database that does not
        answer is waited for (with growing pauses), anything else is raised. For every write of
        a running operation (the work's own, such as a create's `starting`, too)."""
        pause = FIRST_RETRY_S
        while True:
            try:
                await write()
            except DATABASE_DOWN as exc:
                log.warning(
                    "%s: the database does not answer (%s); writing again in %.1fs",
                    whose,
                    str(getattr(exc, "orig", exc)).strip().split("\n", 1)[0],
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, LAST_RETRY_S)
            else:
                return

    async def _succeed(self, operation_id: str, target: str, kind: str, apply: Apply) -> None:
        async with self.transaction() as tx:
            current = await tx.session.get(Machine, target)
            await apply(tx, current)
            if current is not None and current in tx.session.deleted:
                current = None
            row = await tx.session.get(Operation, operation_id)
            assert row is not None
            row.status, row.finished_at = OperationStatus.SUCCEEDED, utcnow()
            tx.event(current, "operation", f"{kind} succeeded", machine_id=target)

    async def _set_status(self, operation_id: str, status: OperationStatus) -> None:
        async with self.transaction() as tx:
            row = await tx.session.get(Operation, operation_id)
            assert row is not None
            row.status = status

    async def _fail(
        self, operation_id: str, machine_id: str, kind: str, message: str, undo: Undo | None
    ) -> None:
        async with self.transaction() as tx:
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
            operation.status, operation.error = OperationStatus.FAILED, message
            operation.finished_at = utcnow()
            tx.event(machine, "operation", f"{kind} failed: {message}", machine_id=machine_id)

    def _finished(self, kind: str, outcome: OperationStatus) -> None:
        if self._metrics is not None:
            self._metrics.operation_finished(kind, outcome.value)

    async def recover_interrupted(self, take_back: TakeBack | None = None) -> int:
        """At startup: operations a previous process left unfinished are failed (each with an
        `operation` event saying so), `take_back` removes in the same transaction what each one
        recorded up front, and machines stuck in a transient state go to `error`. Returns how
        many operations were failed."""
        message = "interrupted: the server stopped while this operation ran"
        unfinished = (OperationStatus.PENDING, OperationStatus.RUNNING)
        async with self.transaction() as tx:
            operations = list(
                await tx.session.scalars(select(Operation).where(Operation.status.in_(unfinished)))
            )
            for operation in operations:
                operation.status, operation.error = OperationStatus.FAILED, message
                operation.finished_at = utcnow()
                if take_back is not None:
                    await take_back(tx, operation)
                tx.event(
                    None,
                    "operation",
                    f"{operation.kind} failed: {message}",
                    machine_id=operation.machine_id,
                )
            stuck = await tx.session.scalars(
                select(Machine).where(Machine.state.not_in([s.value for s in STABLE_STATES]))
            )
            for machine in stuck:
                machine.error = message
                tx.set_state(machine, MachineState.ERROR, f"{machine.name}: {message}")
        return len(operations)

    # ------------------------------------------------------------------ shutdown
    async def wait_idle(self, seconds: float = 10.0) -> None:
        """Wait until no operation runs (tests, shutdown); TimeoutError after `seconds`.

        A finished task leaves `_tasks` in its done callback, which the loop runs later: until
        then only the loop may run. (Awaiting `gather` of finished tasks never yields on Python
        3.12+, so waiting on them again would spin without end, past the timeout too.)"""
        async with asyncio.timeout(seconds):
            while self._tasks:
                running = [task for task in self._tasks if not task.done()]
                if running:
                    await asyncio.wait(running)
                else:
                    await asyncio.sleep(0)  # the done callbacks run

    async def close(self, grace: float = 5.0) -> None:
        """Let running operations finish for `grace` seconds, then cancel them; then end every
        event subscription. A cancelled operation stays `pending` or `running` in the database
        until the next start's `recover_interrupted()` fails it."""
        try:
            await self.wait_idle(grace)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.bus.close()
