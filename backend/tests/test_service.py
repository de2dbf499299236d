"""The service layer directly: recovery after a crash, shutdown, capabilities, provider config."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from hangar.api.context import Hangar
from hangar.db.engine import create_engine, create_sessionmaker
from hangar.db.models import Machine, Operation, new_id, utcnow
from hangar.metrics import Metrics
from hangar.providers.base import Capability, Runtime
from hangar.providers.fake import FakeProvider
from hangar.service.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    UnsupportedError,
)
from hangar.service.events import EventBus
from hangar.service.machines import MachineService
from hangar.service.users import UserService
from hangar.settings import Settings

pytestmark = pytest.mark.asyncio


@dataclass
class Stack:
    engine: AsyncEngine
    service: MachineService
    fake: FakeProvider


@pytest_asyncio.fixture
async def stack(migrated: Settings) -> AsyncIterator[Stack]:
    engine = create_engine(migrated.database_url)
    fake = FakeProvider()
    service = MachineService(create_sessionmaker(engine), {"fake": fake}, EventBus(), Metrics())
    try:
        yield Stack(engine, service, fake)
    finally:
        await service.close(5)
        await engine.dispose()


async def create(stack: Stack, name: str = "web-1", start: bool = True) -> Machine:
    machine, _ = await stack.service.create_machine(
        name=name, provider="fake", image="debian-12", cpus=1, memory_mb=64, start=start
    )
    await stack.service.wait_idle(10)
    return await stack.service.get_machine(machine.id)


async def test_interrupted_operations_are_failed_at_startup(stack: Stack) -> None:
    machine_id, operation_id = new_id(), new_id()
    async with create_sessionmaker(stack.engine)() as session, session.begin():
        now = utcnow()
        session.add(
            Machine(
                id=machine_id, name="stuck", provider="fake", image="debian-12", cpus=1,
                memory_mb=64, state="starting", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        session.add(
            Operation(
                id=operation_id, machine_id=machine_id, kind="start", status="running",
                created_at=now,
            )
        )  # fmt: skip
    assert await stack.service.recover_interrupted() == 1
    machine = await stack.service.get_machine(machine_id)
    assert machine.state == "error"
    assert machine.error is not None
    assert "interrupted" in machine.error
    operation = await stack.service.get_operation(operation_id)
    assert (operation.status, operation.finished_at is not None) == ("failed", True)
    assert await stack.service.recover_interrupted() == 0


class HangingFake(FakeProvider):
    """A start that never returns, to see shutdown cancel it."""

    async def start(self, key: str) -> Runtime:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def create_disk(self, key: str, disk_key: str, size_mb: int) -> None:
        await asyncio.Event().wait()

    async def create_snapshot(self, key: str, name: str) -> None:
        await asyncio.Event().wait()


async def test_an_interrupted_disk_or_snapshot_creation_leaves_no_row(stack: Stack) -> None:
    """As after a crash: the creations are cut off (shutdown cancels them), a new service on the
    same database recovers; the rows recorded up front go, as after a failed creation, and the
    machines stay usable."""
    snapshotted = await create(stack, "snap", start=False)
    disked = await create(stack, "disk", start=False)
    await stack.service.create_snapshot(snapshotted.id, "before")
    await stack.service.wait_idle(5)
    stack.service.providers["fake"] = HangingFake()
    stack.fake = FakeProvider()  # what the next process's provider has: nothing of these
    _, snapshot_op = await stack.service.create_snapshot(snapshotted.id, "cut-off")
    _, disk_op = await stack.service.create_disk(disked.id, "data", 64)
    await stack.service.close(0.05)
    assert (await stack.service.get_operation(snapshot_op.id)).status == "running"

    after = MachineService(
        create_sessionmaker(stack.engine), {"fake": stack.fake}, EventBus(), Metrics()
    )
    try:
        assert await after.recover_interrupted() == 2
        for operation in (snapshot_op, disk_op):
            recovered = await after.get_operation(operation.id)
            assert recovered.status == "failed"
            assert "interrupted" in (recovered.error or "")
        assert [s.name for s in await after.list_snapshots(snapshotted.id)] == ["before"]
        assert await after.list_disks(disked.id) == []
        for machine_id in (snapshotted.id, disked.id):
            assert (await after.get_machine(machine_id)).state == "stopped"
        kinds = [(e.kind, e.message) for e in await after.list_events(limit=50)]
        assert ("operation", "create_snapshot failed: interrupted: the server stopped while "
                "this operation ran") in kinds  # fmt: skip
    finally:
        await after.close(5)


async def test_close_cancels_operations_that_outlast_the_grace(stack: Stack) -> None:
    stack.service.providers["fake"] = HangingFake()
    machine, _ = await stack.service.create_machine(
        name="web-1", provider="fake", image="debian-12", cpus=1, memory_mb=64
    )
    with pytest.raises(TimeoutError):
        await stack.service.wait_idle(0.05)
    await stack.service.close(0.05)
    assert not stack.service.busy(machine.id)
    assert stack.service.bus.closed


class Minimal(FakeProvider):
    """A provider without disks, snapshots, clone or console."""

    name = "minimal"
    capabilities = frozenset[Capability]()


async def test_missing_capabilities_are_refused(stack: Stack) -> None:
    stack.service.providers["minimal"] = Minimal()
    machine, _ = await stack.service.create_machine(
        name="web-1", provider="minimal", image="debian-12", cpus=1, memory_mb=64, start=False
    )
    await stack.service.wait_idle(10)
    with pytest.raises(UnsupportedError, match="disks"):
        await stack.service.create_disk(machine.id, "data", 1)
    with pytest.raises(UnsupportedError, match="snapshots"):
        await stack.service.create_snapshot(machine.id, "s1")
    with pytest.raises(UnsupportedError, match="console"):
        await stack.service.console(machine.id, 10)
    assert not stack.service.busy(machine.id)


async def test_machine_of_a_disabled_provider(stack: Stack) -> None:
    machine = await create(stack, start=False)
    del stack.service.providers["fake"]
    with pytest.raises(ConflictError, match="HANGAR_PROVIDERS"):
        await stack.service.start(machine.id)
    with pytest.raises(NotFoundError, match="fake provider is not enabled"):
        stack.service.inject_fault("start", "x", 1)
    with pytest.raises(InvalidInputError, match="enabled: "):
        await stack.service.create_machine(
            name="web-2", provider="fake", image="debian-12", cpus=1, memory_mb=64
        )


async def test_unknown_fault_action_is_invalid_input(stack: Stack) -> None:
    with pytest.raises(InvalidInputError) as error:
        stack.service.inject_fault("explode", "x", 1)
    assert error.value.details["fields"][0]["field"] == "action"


async def test_clone_with_a_taken_name_releases_every_lock(stack: Stack) -> None:
    source = await create(stack, "web-1", start=False)
    await create(stack, "web-2", start=False)
    with pytest.raises(ConflictError):
        await stack.service.clone(source.id, "web-2")
    assert not stack.service.busy(source.id)
    _, operation = await stack.service.clone(source.id, "web-3")
    await stack.service.wait_idle(10)
    assert (await stack.service.get_operation(operation.id)).status == "succeeded"


async def test_machine_deleted_between_read_and_lock(stack: Stack) -> None:
    machine = await create(stack)
    await stack.service.delete(machine.id)
    await stack.service.wait_idle(10)
    with pytest.raises(NotFoundError):
        await stack.service.stop(machine.id)


async def test_hangar_stops_when_startup_fails_after_connecting(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: UserService, password: str, username: str = "admin") -> bool:
        raise RuntimeError("disk full")

    monkeypatch.setattr(UserService, "ensure_admin", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        await Hangar.start(migrated, Metrics())


async def test_startup_reports_recovered_operations(
    migrated: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(migrated.database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            session.add(
                Operation(
                    id=new_id(), machine_id="gone", kind="delete", status="pending",
                    created_at=utcnow(),
                )
            )  # fmt: skip
    finally:
        await engine.dispose()
    hangar = await Hangar.start(migrated, Metrics())
    try:
        assert "1 interrupted operation" in caplog.text
    finally:
        await hangar.stop()


async def test_users_service_rules(migrated: Settings, tmp_path: Path) -> None:
    engine = create_engine(migrated.database_url)
    users = UserService(create_sessionmaker(engine), "k")
    try:
        with pytest.raises(InvalidInputError, match="unknown role"):
            await users.create_user("alice", "long-password", role="root")
        with pytest.raises(NotFoundError):
            await users.get_user("nobody")
        with pytest.raises(NotFoundError):
            await users.change_password("nobody", "x", "long-password")
        assert await users.token_user("not-a-token") is None
        assert await users.ensure_admin("long-password") is True
        assert await users.ensure_admin("long-password") is False
    finally:
        await engine.dispose()


@pytest.mark.timeout(15)  # the bug this guards against spun the loop until a timeout like this
async def test_wait_idle_returns_when_a_finished_operation_is_still_listed(stack: Stack) -> None:
    """Between an operation task's end and its done callback (which the loop runs later), the
    task is finished but still listed as running. Waiting must let the loop run that callback:
    on Python 3.12+, awaiting `gather` of finished tasks never yields, so a wait that gathered
    them again and again spun without end, past its own timeout too."""

    async def work() -> None:
        return None

    finished = asyncio.get_running_loop().create_task(work())
    await finished
    runner = stack.service.runner
    runner._tasks.add(finished)  # as `run` lists a task: the callback is only scheduled now
    finished.add_done_callback(runner._tasks.discard)

    await stack.service.wait_idle(5)

    assert not runner._tasks
