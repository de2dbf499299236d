"""Keep-alive and the observer with the e2b provider, against replays of E2B's control plane (not
E2B itself): the observer extends the lifetime of running machines' sandboxes, and marks a
machine whose sandbox is gone (expired or killed elsewhere)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from hangar.db.engine import create_engine, create_sessionmaker
from hangar.db.models import Machine
from hangar.metrics import Metrics
from hangar.providers.base import Provider, ProviderError
from hangar.providers.e2b.provider import E2BProvider
from hangar.providers.fake import FakeProvider
from hangar.service.events import EventBus
from hangar.service.machines import MachineService
from hangar.service.observer import FindingKind, Observer
from hangar.settings import Settings

from .e2b_replay import (
    RUN,
    E2BReplay,
    RecordedWaits,
    error_body,
    listed_body,
    replay_config,
)

pytestmark = pytest.mark.asyncio

DEADLINE_S = 10.0
OF_RUN = {"hangar": "1", "run": RUN}


def of_machine(key: str) -> dict[str, str]:
    return {"hangar": "1", "machine": key}


def carried(key: str) -> dict[str, str]:
    return {"hangar": "1", "run": RUN, "machine": key}


# ------------------------------------------------------------------ the provider's keep-alive
async def test_keep_alive_extends_the_lifetime_of_the_running_sandboxes_asked_for(
    e2b_replay: E2BReplay,
) -> None:
    provider = E2BProvider(replay_config(timeout_s=600), RUN, sleep=RecordedWaits())
    e2b_replay.sandboxes_listed(
        OF_RUN,
        listed_body("isb1", carried("m1")),
        listed_body("isb2", carried("m2"), state="paused"),  # stopped: nothing to keep alive
        listed_body("isb3", carried("m3")),  # running, but not asked for
        listed_body("isb4", carried("m4")),  # expires before it is extended
    )
    extended = e2b_replay.timeout_set("isb1")
    e2b_replay.sandbox_gone("POST", "/sandboxes/isb4/timeout")

    await provider.keep_alive(["m1", "m2", "m4"])

    assert e2b_replay.sent_json(extended) == {"timeout": 600}


async def test_keep_alive_of_no_machine_asks_nothing(e2b_replay: E2BReplay) -> None:
    await E2BProvider(replay_config(), RUN).keep_alive([])


async def test_keep_alive_tries_every_sandbox_then_reports_the_failures(
    e2b_replay: E2BReplay,
) -> None:
    provider = E2BProvider(replay_config(), RUN, sleep=RecordedWaits())
    e2b_replay.sandboxes_listed(
        OF_RUN, listed_body("isb1", carried("m1")), listed_body("isb2", carried("m2"))
    )
    e2b_replay.answer(
        "POST", "/sandboxes/isb1/timeout", (500, error_body(500, "orchestrator unavailable"))
    )
    second = e2b_replay.timeout_set("isb2")
    with pytest.raises(ProviderError, match=r"extend the lifetime of sandbox isb1: .*unavailable"):
        await provider.keep_alive(["m1", "m2"])
    assert second.call_count == 1


# ------------------------------------------------------------------ the observer
@dataclass
class Stack:
    engine: AsyncEngine
    service: MachineService
    observer: Observer
    e2b: E2BProvider


@pytest_asyncio.fixture
async def stack(migrated: Settings) -> AsyncIterator[Stack]:
    engine = create_engine(migrated.database_url)
    sessionmaker = create_sessionmaker(engine)
    e2b = E2BProvider(replay_config(), RUN, sleep=RecordedWaits())
    providers: dict[str, Provider] = {"fake": FakeProvider(), "e2b": e2b}
    service = MachineService(sessionmaker, providers, EventBus(), Metrics())
    try:
        yield Stack(engine, service, Observer(sessionmaker, service), e2b)
    finally:
        await service.close(5)
        await engine.dispose()


async def running_machine(stack: Stack, replay: E2BReplay, sandbox_id: str) -> Machine:
    """A machine created and started through the service, on replays of what E2B answers."""
    machine, _ = await stack.service.create_machine(
        name="web-1", provider="e2b", image="base", cpus=1, memory_mb=512, start=True
    )
    # The operation runs as a task: nothing was asked of E2B yet, so its key can be replayed.
    replay.sandbox_created(sandbox_id)
    replay.sandbox_paused(sandbox_id)
    replay.sandboxes_listed(
        of_machine(machine.id), listed_body(sandbox_id, carried(machine.id), state="paused")
    )
    replay.sandbox_resumed(sandbox_id)
    await stack.service.wait_idle(DEADLINE_S)
    return await stack.service.get_machine(machine.id)


async def test_a_machine_runs_on_its_sandbox_with_its_placement(
    stack: Stack, e2b_replay: E2BReplay
) -> None:
    machine = await running_machine(stack, e2b_replay, "isb1")
    assert (machine.state, machine.error) == ("running", None)
    assert machine.endpoint == "https://80-isb1.e2b.app"
    assert machine.details == {"sandbox": "isb1", "template": "base"}


async def test_the_observer_keeps_running_e2b_machines_alive(
    stack: Stack, e2b_replay: E2BReplay
) -> None:
    machine = await running_machine(stack, e2b_replay, "isb1")
    e2b_replay.sandboxes_listed(OF_RUN, listed_body("isb1", carried(machine.id)))
    extended = e2b_replay.timeout_set("isb1")

    await stack.observer.keep_alive()

    assert e2b_replay.sent_json(extended) == {"timeout": 300}


async def test_the_observer_keeps_nothing_alive_without_running_machines(
    stack: Stack, e2b_replay: E2BReplay
) -> None:
    await stack.service.create_machine(
        name="fake-1", provider="fake", image="debian-12", cpus=1, memory_mb=64, start=True
    )
    await stack.service.wait_idle(DEADLINE_S)
    await stack.observer.keep_alive()  # a request to E2B would be unmatched and fail the test


async def test_a_machine_whose_sandbox_is_gone_is_marked_by_the_observer(
    stack: Stack, e2b_replay: E2BReplay
) -> None:
    machine = await running_machine(stack, e2b_replay, "isb1")
    e2b_replay.sandboxes_listed(OF_RUN)  # the observer's look: the sandbox expired
    e2b_replay.sandboxes_listed(of_machine(machine.id))  # its check under the machine's lock

    report = await stack.observer.reconcile()

    assert [(f.kind, f.machine_id) for f in report.findings] == [
        (FindingKind.MACHINE_NOT_RUNNING, machine.id)
    ]
    marked = await stack.service.get_machine(machine.id)
    assert marked.state == "error"
    assert marked.error is not None
    assert "the e2b provider no longer has this machine" in marked.error


class FakeKeepAliveProvider(FakeProvider):
    """The fake provider plus a recording `keep_alive`: a fake, for the observer's side."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[list[str]] = []
        self.fails = False
        self.asked = asyncio.Event()

    async def keep_alive(self, keys: Sequence[str]) -> None:
        self.asked.set()
        if self.fails:
            raise ProviderError("the fake cannot keep machines alive now")
        self.kept.append(sorted(keys))


async def test_the_observer_passes_only_running_machines_and_survives_a_failure(
    migrated: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(migrated.database_url)
    sessionmaker = create_sessionmaker(engine)
    keeping = FakeKeepAliveProvider()
    service = MachineService(sessionmaker, {"fake": keeping}, EventBus(), Metrics())
    observer = Observer(sessionmaker, service)
    try:
        ids = []
        for name, start in (("run-1", True), ("run-2", True), ("off-1", False)):
            machine, _ = await service.create_machine(
                name=name, provider="fake", image="debian-12", cpus=1, memory_mb=64, start=start
            )
            ids.append(machine.id)
        await service.wait_idle(DEADLINE_S)

        await observer.keep_alive()
        assert keeping.kept == [sorted(ids[:2])]

        keeping.fails = True
        await observer.keep_alive()  # logged, never raised: the loop goes on
        assert "could not keep fake's machines alive" in caplog.text

        keeping.fails = False
        keeping.asked.clear()
        observer.start(0.001)  # the loop keeps alive before each reconcile
        await asyncio.wait_for(keeping.asked.wait(), DEADLINE_S)
        await observer.stop()
        assert keeping.kept[1] == sorted(ids[:2])
    finally:
        await service.close(5)
        await engine.dispose()
