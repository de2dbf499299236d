"""The observer: each kind of drift, one event per new finding, the loop, recovery, the endpoint."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from hangar.api.app import create_app
from hangar.db.engine import create_engine, create_sessionmaker
from hangar.db.models import Machine
from hangar.metrics import Metrics
from hangar.providers.base import MachineSpec, NotFoundError, ProviderError, Runtime
from hangar.providers.fake import FakeProvider
from hangar.service.events import EventBus, EventRecord
from hangar.service.machines import MachineService
from hangar.service.observer import Finding, FindingKind, Observer, Report
from hangar.settings import Settings

from .conftest import ADMIN, Api, client_for, hangar_of, log_in, make_settings

DEADLINE_S = 10.0


@dataclass
class Stack:
    engine: AsyncEngine
    service: MachineService
    fake: FakeProvider
    observer: Observer

    async def machine(self, name: str = "web-1", *, start: bool = True) -> Machine:
        machine, _ = await self.service.create_machine(
            name=name, provider="fake", image="debian-12", cpus=1, memory_mb=64, start=start
        )
        await self.service.wait_idle(DEADLINE_S)
        return await self.service.get_machine(machine.id)

    async def observer_events(self) -> list[EventRecord]:
        events = await self.service.list_events(limit=500, newest_first=False)
        return [event for event in events if event.kind == "observer"]


@pytest_asyncio.fixture
async def stack(migrated: Settings) -> AsyncIterator[Stack]:
    engine = create_engine(migrated.database_url)
    sessionmaker = create_sessionmaker(engine)
    fake = FakeProvider()
    service = MachineService(sessionmaker, {"fake": fake}, EventBus(), Metrics())
    try:
        yield Stack(engine, service, fake, Observer(sessionmaker, service))
    finally:
        await service.close(5)
        await engine.dispose()


def kinds(report: Report) -> list[tuple[FindingKind, str | None, str]]:
    return [(f.kind, f.machine_id, f.key) for f in report.findings]


# ------------------------------------------------------------------ the four drifts
@pytest.mark.asyncio
async def test_a_machine_whose_process_died_is_marked_error_and_start_recovers_it(
    stack: Stack,
) -> None:
    machine = await stack.machine()
    stack.fake.crash(machine.id)

    report = await stack.observer.reconcile()

    assert kinds(report) == [(FindingKind.MACHINE_NOT_RUNNING, machine.id, machine.id)]
    assert "the VM process is gone (observed at " in report.findings[0].message
    marked = await stack.service.get_machine(machine.id)
    assert marked.state == "error"
    assert marked.error is not None
    assert "the VM process is gone (observed at" in marked.error
    [event] = await stack.observer_events()
    assert event.machine_id == machine.id
    assert event.state == "error"
    assert event.message.startswith("machine_not_running: web-1: the VM process is gone")

    await stack.service.start(machine.id)
    await stack.service.wait_idle(DEADLINE_S)
    recovered = await stack.service.get_machine(machine.id)
    assert (recovered.state, recovered.error) == ("running", None)
    assert (await stack.observer.reconcile()).findings == []


@pytest.mark.asyncio
async def test_a_running_machine_the_provider_no_longer_has_is_marked_error(
    stack: Stack,
) -> None:
    machine = await stack.machine()
    stack.fake.forget(machine.id)

    report = await stack.observer.reconcile()

    assert kinds(report) == [(FindingKind.MACHINE_NOT_RUNNING, machine.id, machine.id)]
    assert "no longer has this machine" in report.findings[0].message
    assert (await stack.service.get_machine(machine.id)).state == "error"


@pytest.mark.asyncio
async def test_a_stopped_machine_without_a_process_is_no_drift(stack: Stack) -> None:
    await stack.machine(start=False)
    assert (await stack.observer.reconcile()).findings == []


@pytest.mark.asyncio
async def test_a_stopped_machine_the_provider_no_longer_has_is_marked_error(
    stack: Stack,
) -> None:
    """What a restart of a provider that keeps nothing (the fake) leaves, or a machine directory
    removed by hand: the row must not promise a machine that a start would not find."""
    machine = await stack.machine(start=False)
    stack.fake.forget(machine.id)

    report = await stack.observer.reconcile()

    assert kinds(report) == [(FindingKind.MACHINE_MISSING, machine.id, machine.id)]
    marked = await stack.service.get_machine(machine.id)
    assert marked.state == "error"
    assert "the fake provider no longer has this machine (observed at" in (marked.error or "")
    [event] = await stack.observer_events()
    assert event.message.startswith("machine_missing: web-1: the fake provider no longer has")
    await stack.service.delete(machine.id)
    await stack.service.wait_idle(DEADLINE_S)
    assert (await stack.observer.reconcile()).findings == []


@pytest.mark.asyncio
async def test_a_failed_create_is_no_drift(stack: Stack) -> None:
    """Its `error` row names a machine the provider never made, and says so already."""
    stack.fake.inject_fault("create", "no capacity")
    machine = await stack.machine()
    assert (machine.state, machine.error) == ("error", "no capacity")
    assert (await stack.observer.reconcile()).findings == []
    assert (await stack.service.get_machine(machine.id)).error == "no capacity"


@pytest.mark.asyncio
async def test_an_orphan_machine_is_reported_and_left_running(stack: Stack) -> None:
    await stack.machine()
    await stack.fake.create(MachineSpec("stray-key", "stray", "debian-12", 1, 64))
    await stack.fake.start("stray-key")

    report = await stack.observer.reconcile()

    assert kinds(report) == [(FindingKind.ORPHAN_MACHINE, None, "stray-key")]
    assert "runs machine 'stray-key'" in report.findings[0].message
    runtime = await stack.fake.runtime("stray-key")
    assert runtime is not None
    assert runtime.running  # reported, never killed
    [event] = await stack.observer_events()
    assert event.machine_id is None
    assert event.message.startswith("orphan_machine: ")


@pytest.mark.asyncio
async def test_a_stopped_orphan_machine_is_reported_too(stack: Stack) -> None:
    await stack.fake.create(MachineSpec("stray-key", "stray", "debian-12", 1, 64))
    report = await stack.observer.reconcile()
    assert kinds(report) == [(FindingKind.ORPHAN_MACHINE, None, "stray-key")]
    assert "has machine 'stray-key' (stopped)" in report.findings[0].message


@pytest.mark.asyncio
async def test_a_disk_row_whose_file_is_missing_is_reported(stack: Stack) -> None:
    machine = await stack.machine(start=False)
    disk, _ = await stack.service.create_disk(machine.id, "data", 16)
    await stack.service.wait_idle(DEADLINE_S)
    stack.fake.lose_disk_file(machine.id, disk.id)

    report = await stack.observer.reconcile()

    assert kinds(report) == [(FindingKind.DISK_FILE_MISSING, machine.id, disk.id)]
    assert "the file of disk 'data' is missing" in report.findings[0].message
    [event] = await stack.observer_events()
    assert event.machine_id == machine.id
    assert (await stack.service.get_machine(machine.id)).state == "stopped"  # only reported


@pytest.mark.asyncio
async def test_a_disk_file_without_a_row_is_reported(stack: Stack) -> None:
    machine = await stack.machine(start=False)
    stack.fake.add_stray_disk_file(machine.id, "stray-disk")

    report = await stack.observer.reconcile()

    assert kinds(report) == [(FindingKind.ORPHAN_DISK_FILE, machine.id, "stray-disk")]
    assert "disk file 'stray-disk'" in report.findings[0].message


@pytest.mark.asyncio
async def test_disks_of_an_orphan_machine_are_covered_by_its_own_finding(stack: Stack) -> None:
    await stack.fake.create(MachineSpec("stray-key", "stray", "debian-12", 1, 64))
    await stack.fake.create_disk("stray-key", "stray-disk", 16)
    report = await stack.observer.reconcile()
    assert kinds(report) == [(FindingKind.ORPHAN_MACHINE, None, "stray-key")]


@pytest.mark.asyncio
async def test_drift_is_only_checked_for_disks_when_the_provider_can_list_them(
    migrated: Settings,
) -> None:
    class NoDiskListing(FakeProvider):
        """The fake without the optional `disk_inventory()` (like a provider lacking it)."""

        disk_inventory = None  # type: ignore[assignment]

    engine = create_engine(migrated.database_url)
    sessionmaker = create_sessionmaker(engine)
    fake = NoDiskListing()
    service = MachineService(sessionmaker, {"fake": fake}, EventBus(), Metrics())
    try:
        machine, _ = await service.create_machine(
            name="web-1", provider="fake", image="debian-12", cpus=1, memory_mb=64, start=False
        )
        await service.wait_idle(DEADLINE_S)
        fake.add_stray_disk_file(machine.id, "stray-disk")
        assert (await Observer(sessionmaker, service).reconcile()).findings == []
    finally:
        await service.close(5)
        await engine.dispose()


# ------------------------------------------------------------------ events, races, failures
@pytest.mark.asyncio
async def test_each_finding_is_one_event_until_it_goes_away_and_comes_back(stack: Stack) -> None:
    spec = MachineSpec("stray-key", "stray", "debian-12", 1, 64)
    await stack.fake.create(spec)
    for _ in range(3):
        assert len((await stack.observer.reconcile()).findings) == 1
    assert len(await stack.observer_events()) == 1

    await stack.fake.delete("stray-key")
    assert (await stack.observer.reconcile()).findings == []
    await stack.fake.create(spec)
    assert len((await stack.observer.reconcile()).findings) == 1
    assert len(await stack.observer_events()) == 2


@pytest.mark.asyncio
async def test_a_machine_marked_once_is_not_marked_again(stack: Stack) -> None:
    machine = await stack.machine()
    stack.fake.crash(machine.id)
    await stack.observer.reconcile()
    assert (await stack.observer.reconcile()).findings == []  # `error` expects no process
    assert len(await stack.observer_events()) == 1


async def held(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, action: str
) -> asyncio.Event:
    """Make `provider.<action>` wait until the returned event is set (an operation in flight)."""
    gate = asyncio.Event()
    original: Callable[..., Awaitable[object]] = getattr(provider, action)

    async def waiting(*args: object) -> object:
        await gate.wait()
        return await original(*args)

    monkeypatch.setattr(provider, action, waiting)
    return gate


@pytest.mark.asyncio
async def test_a_start_in_progress_is_not_drift(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = await stack.machine(start=False)
    gate = await held(monkeypatch, stack.fake, "start")
    await stack.service.start(machine.id)
    assert (await stack.service.get_machine(machine.id)).state == "starting"

    assert (await stack.observer.reconcile()).findings == []

    gate.set()
    await stack.service.wait_idle(DEADLINE_S)
    assert (await stack.service.get_machine(machine.id)).state == "running"
    assert await stack.observer_events() == []


@pytest.mark.asyncio
async def test_a_disk_creation_in_progress_is_not_drift(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = await stack.machine(start=False)
    gate = await held(monkeypatch, stack.fake, "create_disk")
    await stack.service.create_disk(machine.id, "data", 16)  # the row exists, the file not yet

    assert (await stack.observer.reconcile()).findings == []

    gate.set()
    await stack.service.wait_idle(DEADLINE_S)
    assert (await stack.observer.reconcile()).findings == []


@pytest.mark.asyncio
async def test_a_machine_created_while_the_providers_are_asked_is_no_orphan(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = stack.fake.inventory

    async def created_meanwhile() -> Sequence[Runtime]:
        await stack.machine("late")  # row and machine appear between the two database looks
        return await original()

    monkeypatch.setattr(stack.fake, "inventory", created_meanwhile)
    assert (await stack.observer.reconcile()).findings == []


@pytest.mark.asyncio
async def test_a_start_that_finishes_while_the_providers_are_asked_is_not_drift(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = await stack.machine(start=False)
    gate = await held(monkeypatch, stack.fake, "start")
    await stack.service.start(machine.id)
    original = stack.fake.inventory

    async def start_finishes_meanwhile() -> Sequence[Runtime]:
        seen = await original()  # still booting: not running
        gate.set()
        await stack.service.wait_idle(DEADLINE_S)  # now `running` in the database
        return seen

    monkeypatch.setattr(stack.fake, "inventory", start_finishes_meanwhile)
    assert (await stack.observer.reconcile()).findings == []
    assert (await stack.service.get_machine(machine.id)).state == "running"


@pytest.mark.asyncio
async def test_a_process_that_is_back_when_confirming_is_not_marked(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = await stack.machine()
    stack.fake.crash(machine.id)

    async def back(key: str) -> Runtime:
        return Runtime(key=key, running=True)

    monkeypatch.setattr(stack.fake, "runtime", back)
    assert (await stack.observer.reconcile()).findings == []
    assert (await stack.service.get_machine(machine.id)).state == "running"


@pytest.mark.asyncio
async def test_a_provider_that_cannot_confirm_leaves_the_machine_alone(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    machine = await stack.machine()
    stack.fake.crash(machine.id)

    async def broken(key: str) -> Runtime:
        raise ProviderError("runtime unavailable")

    monkeypatch.setattr(stack.fake, "runtime", broken)
    with caplog.at_level(logging.WARNING, "hangar.service.observer"):
        assert (await stack.observer.reconcile()).findings == []
    assert "could not confirm" in caplog.text
    assert (await stack.service.get_machine(machine.id)).state == "running"


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", [ProviderError("host unreachable"), RuntimeError("a bug")])
async def test_a_provider_that_cannot_be_asked_is_skipped_and_nothing_is_marked(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: Exception,
) -> None:
    machine = await stack.machine()
    stack.fake.crash(machine.id)

    async def failing() -> Sequence[Runtime]:
        raise failure

    monkeypatch.setattr(stack.fake, "inventory", failing)
    with caplog.at_level(logging.WARNING, "hangar.service.observer"):
        assert (await stack.observer.reconcile()).findings == []
    assert "skipped provider fake" in caplog.text
    assert (await stack.service.get_machine(machine.id)).state == "running"


@pytest.mark.asyncio
async def test_machines_of_a_disabled_provider_are_not_checked(stack: Stack) -> None:
    machine = await stack.machine()
    stack.fake.crash(machine.id)
    stack.service.providers.pop("fake")
    assert (await stack.observer.reconcile()).findings == []


def test_findings_of_the_same_drift_are_the_same_whatever_their_message() -> None:
    one = Finding(FindingKind.ORPHAN_MACHINE, "fake", None, "k", "seen at 1")
    two = Finding(FindingKind.ORPHAN_MACHINE, "fake", None, "k", "seen at 2")
    assert one.identity == two.identity


# ------------------------------------------------------------------ fake-only drift hooks
def test_the_fake_drift_hooks_refuse_what_does_not_exist() -> None:
    fake = FakeProvider()
    with pytest.raises(NotFoundError):
        fake.crash("nope")
    with pytest.raises(NotFoundError):
        fake.forget("nope")
    with pytest.raises(NotFoundError):
        fake.lose_disk_file("nope", "disk")
    with pytest.raises(NotFoundError):
        fake.add_stray_disk_file("nope", "disk")


# ------------------------------------------------------------------ the loop, in the app
async def app_with(tmp_path: Path, template: Path, **overrides: object) -> FastAPI:
    settings = make_settings(tmp_path, **overrides)
    settings.ensure_data_dir()
    shutil.copyfile(template, settings.data_dir / "hangar.db")
    return create_app(settings)


@pytest_asyncio.fixture
async def watched(tmp_path: Path, migrated_template: Path) -> AsyncIterator[Api]:
    """An app whose observer reconciles every 20 ms, with an admin client."""
    application = await app_with(tmp_path, migrated_template, observer_interval_seconds=0.02)
    async with application.router.lifespan_context(application), client_for(application) as c:
        await log_in(c, *ADMIN)
        yield Api(c, application)


async def next_observer_event(api: Api, trigger: Callable[[], object]) -> EventRecord:
    """Subscribe, run `trigger`, and wait (bounded) for the first observer event after it."""
    with hangar_of(api.app).machines.bus.subscribe() as subscription:
        trigger()
        async with asyncio.timeout(DEADLINE_S):
            while True:
                event = await subscription.get()
                assert event is not None, "the event bus closed"
                if event.kind == "observer":
                    return event


@pytest.mark.asyncio
async def test_the_loop_finds_drift_on_its_own_and_start_recovers(watched: Api) -> None:
    machine = await watched.create("web-1")
    fake = hangar_of(watched.app).providers["fake"]
    assert isinstance(fake, FakeProvider)

    event = await next_observer_event(watched, lambda: fake.crash(machine["id"]))

    assert event.machine_id == machine["id"]
    assert event.message.startswith("machine_not_running: ")
    marked = await watched.machine(machine["id"])
    assert marked["state"] == "error"
    assert "the VM process is gone" in marked["error"]
    operation = await watched.act(machine["id"], "start")
    assert operation["status"] == "succeeded"
    assert (await watched.machine(machine["id"]))["state"] == "running"


@pytest.mark.asyncio
async def test_the_loop_survives_a_failing_reconcile(
    watched: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    observer = hangar_of(watched.app).observer
    fake = hangar_of(watched.app).providers["fake"]
    assert isinstance(fake, FakeProvider)
    original = observer.reconcile
    failed = asyncio.Event()

    async def flaky() -> Report:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("database went away")
        return await original()

    monkeypatch.setattr(observer, "reconcile", flaky)
    spec = MachineSpec("stray-key", "stray", "debian-12", 1, 64)
    with caplog.at_level(logging.ERROR, "hangar.service.observer"):
        # Drift only after the failing tick: a tick already under way would find it first.
        async with asyncio.timeout(DEADLINE_S):
            await failed.wait()
        event = await next_observer_event(
            watched, lambda: asyncio.get_running_loop().create_task(fake.create(spec))
        )
    assert "reconcile failed" in caplog.text
    assert event.message.startswith("orphan_machine: ")
    assert observer.running


@pytest.mark.asyncio
async def test_the_loop_runs_with_the_app_and_stops_with_it(
    tmp_path: Path, migrated_template: Path
) -> None:
    application = await app_with(tmp_path, migrated_template, observer_interval_seconds=10)
    async with application.router.lifespan_context(application):
        observer = hangar_of(application).observer
        assert observer.running
    assert not observer.running


@pytest.mark.asyncio
async def test_interval_zero_turns_the_loop_off(tmp_path: Path, migrated_template: Path) -> None:
    application = await app_with(tmp_path, migrated_template, observer_interval_seconds=0)
    async with application.router.lifespan_context(application):
        assert not hangar_of(application).observer.running


def test_the_interval_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().observer_interval_seconds == 10.0
    monkeypatch.setenv("HANGAR_OBSERVER_INTERVAL_SECONDS", "2.5")
    assert Settings().observer_interval_seconds == 2.5
    monkeypatch.setenv("HANGAR_OBSERVER_INTERVAL_SECONDS", "-1")
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Settings()


# ------------------------------------------------------------------ the endpoint
@pytest.mark.asyncio
async def test_the_report_endpoint_reconciles_now(api: Api) -> None:
    machine = await api.create("web-1")
    fake = hangar_of(api.app).providers["fake"]
    assert isinstance(fake, FakeProvider)
    fake.crash(machine["id"])

    response = await api.client.get("/api/v1/observer/report")

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"checked_at", "findings"}
    assert body["checked_at"].endswith("Z") or body["checked_at"].endswith("+00:00")
    [finding] = body["findings"]
    assert finding["kind"] == "machine_not_running"
    assert finding["provider"] == "fake"
    assert finding["machine_id"] == finding["key"] == machine["id"]
    assert "the VM process is gone" in finding["message"]
    assert (await api.machine(machine["id"]))["state"] == "error"


@pytest.mark.asyncio
async def test_the_cached_report_is_the_last_one(api: Api) -> None:
    first = (await api.client.get("/api/v1/observer/report", params={"cached": 1})).json()
    again = (await api.client.get("/api/v1/observer/report", params={"cached": 1})).json()
    assert first == again  # the first cached call made one; the second returned it
    fresh = (await api.client.get("/api/v1/observer/report")).json()
    assert fresh["checked_at"] >= first["checked_at"]


@pytest.mark.asyncio
async def test_any_role_may_read_the_report_but_not_anonymous(
    viewer: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    assert (await viewer.get("/api/v1/observer/report")).status_code == 200
    response = await anonymous.get("/api/v1/observer/report")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
