"""The fake provider on its own: a real in-memory implementation of the provider protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from hangar.providers.base import (
    MachineSpec,
    NotFoundError,
    Provider,
    ProviderError,
    UnknownFaultActionError,
)
from hangar.providers.fake import FAULT_ACTIONS, FakeProvider

pytestmark = pytest.mark.asyncio

SPEC = MachineSpec(key="k1", name="web-1", image="debian-12", cpus=2, memory_mb=256)


async def test_implements_the_protocol() -> None:
    assert isinstance(FakeProvider(), Provider)


async def test_machine_lifecycle() -> None:
    fake = FakeProvider()
    await fake.create(SPEC)
    assert await fake.runtime("k1") == (await fake.inventory())[0]
    runtime = await fake.start("k1")
    assert runtime.running
    assert runtime.labels == SPEC.labels
    assert (await fake.exec("k1", "uname")).output == "fake: uname\n"
    await fake.stop("k1")
    current = await fake.runtime("k1")
    assert current is not None
    assert not current.running
    with pytest.raises(ProviderError, match="not running"):
        await fake.exec("k1", "uname")
    await fake.delete("k1")
    await fake.delete("k1")  # idempotent
    assert await fake.runtime("k1") is None
    assert await fake.inventory() == []
    await fake.close()


async def test_unknown_things_raise_not_found() -> None:
    fake = FakeProvider()
    with pytest.raises(NotFoundError):
        await fake.start("missing")
    await fake.create(SPEC)
    with pytest.raises(NotFoundError):
        await fake.attach_disk("k1", "nope")
    with pytest.raises(NotFoundError):
        await fake.rollback_snapshot("k1", "nope")
    with pytest.raises(ProviderError, match="no image"):
        await fake.create(MachineSpec(key="k2", name="x", image="beos", cpus=1, memory_mb=64))


async def test_disks_snapshots_clone_console() -> None:
    fake = FakeProvider()
    await fake.create(SPEC)
    await fake.create_disk("k1", "d1", 10)
    await fake.attach_disk("k1", "d1")
    await fake.detach_disk("k1", "d1")
    await fake.delete_disk("k1", "d1")
    with pytest.raises(NotFoundError):
        await fake.delete_disk("k1", "d1")
    await fake.create_snapshot("k1", "s1")
    await fake.rollback_snapshot("k1", "s1")
    await fake.delete_snapshot("k1", "s1")
    await fake.clone(
        "k1", MachineSpec(key="k2", name="web-2", image="debian-12", cpus=1, memory_mb=64)
    )
    assert "cloned from web-1" in await fake.console("k2")
    assert (await fake.console("k1", lines=1)).count("\n") == 1
    empty = FakeProvider()
    await empty.create(SPEC)
    assert await empty.console("k1", lines=0) == ""


@pytest.mark.parametrize("action", sorted(FAULT_ACTIONS - {"create"}))
async def test_every_fault_action_fails_once(action: str) -> None:
    fake = FakeProvider()
    await fake.create(SPEC)
    await fake.start("k1")
    fake.inject_fault(action, f"{action} broke")
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "start": lambda: fake.start("k1"),
        "stop": lambda: fake.stop("k1"),
        "delete": lambda: fake.delete("k1"),
        "create_disk": lambda: fake.create_disk("k1", "d", 1),
        "attach_disk": lambda: fake.attach_disk("k1", "d"),
        "detach_disk": lambda: fake.detach_disk("k1", "d"),
        "delete_disk": lambda: fake.delete_disk("k1", "d"),
        "create_snapshot": lambda: fake.create_snapshot("k1", "s"),
        "rollback_snapshot": lambda: fake.rollback_snapshot("k1", "s"),
        "delete_snapshot": lambda: fake.delete_snapshot("k1", "s"),
        "clone": lambda: fake.clone("k1", SPEC),
        "exec": lambda: fake.exec("k1", "true"),
        "console": lambda: fake.console("k1"),
    }
    with pytest.raises(ProviderError, match=f"{action} broke"):
        await calls[action]()
    assert fake.faults() == {}


async def test_unknown_fault_action_is_refused() -> None:
    with pytest.raises(UnknownFaultActionError, match="one of: attach_disk"):
        FakeProvider().inject_fault("explode", "x")


async def test_latency_is_waited() -> None:
    fake = FakeProvider(latency=0.001)
    await fake.create(SPEC)
    assert (await fake.start("k1")).running
    fake.clear_faults()
