"""A provider's placement (where it put a machine) is stored with the machine and served as
`details`; a provider without one gives empty details, and one that cannot tell fails nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
import pytest_asyncio

from hangar.api.schemas import MachineOut
from hangar.db.engine import create_engine, create_sessionmaker
from hangar.metrics import Metrics
from hangar.providers.base import MachineSpec, Placement, ProviderError
from hangar.providers.fake import FakeProvider
from hangar.service.events import EventBus
from hangar.service.machines import MachineService
from hangar.settings import Settings

pytestmark = pytest.mark.asyncio


class PlacedFake(FakeProvider):
    """The fake provider, telling a made-up node and number for each machine it has."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: dict[str, int] = {}
        self.silent = False

    async def create(self, spec: MachineSpec) -> None:
        await super().create(spec)
        self.numbers[spec.key] = 9000 + len(self.numbers)

    async def clone(self, source_key: str, spec: MachineSpec) -> None:
        await super().clone(source_key, spec)
        self.numbers[spec.key] = 9000 + len(self.numbers)

    async def placement(self, key: str) -> Mapping[str, str]:
        if self.silent:
            raise ProviderError("the node does not answer")
        return {"node": "node-a", "vmid": str(self.numbers[key])}


@pytest_asyncio.fixture
async def services(migrated: Settings) -> AsyncIterator[tuple[MachineService, PlacedFake]]:
    engine = create_engine(migrated.database_url)
    placed = PlacedFake()
    service = MachineService(
        create_sessionmaker(engine),
        {"placed": placed, "fake": FakeProvider()},
        EventBus(),
        Metrics(),
    )
    try:
        yield service, placed
    finally:
        await service.close(5)
        await engine.dispose()


async def created(service: MachineService, provider: str, name: str, start: bool) -> MachineOut:
    machine, _ = await service.create_machine(
        name=name, provider=provider, image="debian-12", cpus=1, memory_mb=64, start=start
    )
    await service.wait_idle(10)
    return MachineOut.model_validate(await service.get_machine(machine.id))


async def test_placement_is_stored_after_create_and_clone(
    services: tuple[MachineService, PlacedFake],
) -> None:
    service, placed = services
    assert isinstance(placed, Placement)
    stopped = await created(service, "placed", "web-1", start=False)
    running = await created(service, "placed", "web-2", start=True)
    assert (stopped.state, stopped.details) == ("stopped", {"node": "node-a", "vmid": "9000"})
    assert (running.state, running.details) == ("running", {"node": "node-a", "vmid": "9001"})

    await service.stop(running.id)
    await service.wait_idle(10)
    clone, _ = await service.clone(running.id, "web-3")
    await service.wait_idle(10)
    cloned = MachineOut.model_validate(await service.get_machine(clone.id))
    assert (cloned.state, cloned.details) == ("stopped", {"node": "node-a", "vmid": "9002"})


async def test_no_placement_means_empty_details_and_a_silent_provider_fails_nothing(
    services: tuple[MachineService, PlacedFake],
) -> None:
    service, placed = services
    assert not isinstance(FakeProvider(), Placement)
    plain = await created(service, "fake", "web-1", start=True)
    assert (plain.state, plain.details) == ("running", {})

    placed.silent = True
    unplaced = await created(service, "placed", "web-2", start=True)
    assert (unplaced.state, unplaced.details, unplaced.error) == ("running", {}, None)
