"""Reading machines, operations, disks, snapshots and events; nothing here changes a row."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hangar.db.models import Disk, Event, Machine, Operation, Snapshot
from hangar.service.errors import NotFoundError
from hangar.service.events import EventRecord


@dataclass(frozen=True)
class MachinePage:
    items: list[Machine]
    total: int


class MachineQueries:
    """The read side of MachineService (which extends it with the commands)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def get_machine(self, machine_id: str) -> Machine:
        async with self._sessionmaker() as session:
            machine = await session.get(Machine, machine_id)
        if machine is None:
            raise NotFoundError(f"no machine with id {machine_id!r}")
        return machine

    async def list_machines(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        provider: str | None = None,
        state: str | None = None,
        name: str | None = None,
    ) -> MachinePage:
        query = select(Machine)
        if provider:
            query = query.where(Machine.provider == provider)
        if state:
            query = query.where(Machine.state == state)
        if name:
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(Machine.name.like(f"%{escaped}%", escape="\\"))
        async with self._sessionmaker() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = await session.scalars(
                query.order_by(Machine.created_at, Machine.id).limit(limit).offset(offset)
            )
            return MachinePage(items=list(rows), total=total or 0)

    async def machine_counts(self) -> dict[tuple[str, str], int]:
        """Number of machines by (state, provider), for the metrics."""
        query = select(Machine.state, Machine.provider, func.count()).group_by(
            Machine.state, Machine.provider
        )
        async with self._sessionmaker() as session:
            rows = (await session.execute(query)).all()
        return {(state, provider): count for state, provider, count in rows}

    async def get_operation(self, operation_id: str) -> Operation:
        async with self._sessionmaker() as session:
            operation = await session.get(Operation, operation_id)
        if operation is None:
            raise NotFoundError(f"no operation with id {operation_id!r}")
        return operation

    async def list_operations(self, *, machine_id: str | None, limit: int) -> list[Operation]:
        query = select(Operation).order_by(Operation.created_at.desc(), Operation.id).limit(limit)
        if machine_id:
            query = query.where(Operation.machine_id == machine_id)
        async with self._sessionmaker() as session:
            return list(await session.scalars(query))

    async def list_disks(self, machine_id: str) -> list[Disk]:
        await self.get_machine(machine_id)
        async with self._sessionmaker() as session:
            query = select(Disk).where(Disk.machine_id == machine_id).order_by(Disk.created_at)
            return list(await session.scalars(query))

    async def list_snapshots(self, machine_id: str) -> list[Snapshot]:
        await self.get_machine(machine_id)
        async with self._sessionmaker() as session:
            query = select(Snapshot).where(Snapshot.machine_id == machine_id)
            return list(await session.scalars(query.order_by(Snapshot.created_at)))

    async def list_events(
        self,
        *,
        limit: int = 50,
        before: int | None = None,
        after: int | None = None,
        machine_id: str | None = None,
        newest_first: bool = True,
    ) -> list[EventRecord]:
        """Stored events, filtered; newest first unless `newest_first` is False."""
        query = select(Event)
        if before is not None:
            query = query.where(Event.id < before)
        if after is not None:
            query = query.where(Event.id > after)
        if machine_id:
            query = query.where(Event.machine_id == machine_id)
        query = query.order_by(Event.id.desc() if newest_first else Event.id).limit(limit)
        async with self._sessionmaker() as session:
            return [EventRecord.of(row) for row in await session.scalars(query)]
