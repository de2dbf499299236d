"""The observer with the proxmox provider, against fakepve (a fake Proxmox VE API): a row that
says running whose guest stopped or went, and a guest of this run that no row names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from hangar.db.engine import create_engine, create_sessionmaker
from hangar.db.models import Machine
from hangar.metrics import Metrics
from hangar.providers.proxmox.provider import ProxmoxProvider
from hangar.service.events import EventBus
from hangar.service.machines import MachineService
from hangar.service.observer import FindingKind, Observer, Report
from hangar.settings import Settings

from .fakepve_support import CT_IMAGE, VM_IMAGE, FakePve, fake_provider, seed, spec

DEADLINE_S = 10.0
pytestmark = pytest.mark.asyncio


@dataclass
class Stack:
    service: MachineService
    proxmox: ProxmoxProvider
    observer: Observer
    fakepve: FakePve

    async def machine(self, name: str, image: str = VM_IMAGE, *, start: bool = True) -> Machine:
        machine, _ = await self.service.create_machine(
            name=name, provider="proxmox", image=image, cpus=1, memory_mb=256, start=start
        )
        await self.service.wait_idle(DEADLINE_S)
        return await self.service.get_machine(machine.id)

    def guest_of(self, machine: Machine) -> Any:
        return self.fakepve.guest(int(machine.details["vmid"]))


@pytest_asyncio.fixture
async def stack(migrated: Settings, fakepve: FakePve, fakepve_cafile: str) -> AsyncIterator[Stack]:
    engine = create_engine(migrated.database_url)
    sessionmaker = create_sessionmaker(engine)
    async with fake_provider(seed(fakepve), fakepve_cafile) as proxmox:
        service = MachineService(sessionmaker, {"proxmox": proxmox}, EventBus(), Metrics())
        try:
            yield Stack(service, proxmox, Observer(sessionmaker, service), fakepve)
        finally:
            await service.close(5)
            await engine.dispose()


def kinds(report: Report) -> list[tuple[FindingKind, str | None, str]]:
    return [(f.kind, f.machine_id, f.key) for f in report.findings]


async def test_machines_made_through_the_service_are_no_drift(stack: Stack) -> None:
    vm = await stack.machine("web-1")
    ct = await stack.machine("ct-1", CT_IMAGE, start=False)
    assert (vm.state, ct.state) == ("running", "stopped")
    assert vm.details["kind"] == "qemu"
    assert ct.details["kind"] == "lxc"
    assert stack.guest_of(vm).status == "running"
    assert (await stack.observer.reconcile()).findings == []


async def test_a_running_machine_whose_guest_stopped_is_marked_error(stack: Stack) -> None:
    machine = await stack.machine("web-1")
    stack.guest_of(machine).status = "stopped"  # shut down from inside, or by a person

    report = await stack.observer.reconcile()

    assert kinds(report) == [(FindingKind.MACHINE_NOT_RUNNING, machine.id, machine.id)]
    marked = await stack.service.get_machine(machine.id)
    assert marked.state == "error"
    await stack.service.start(machine.id)
    await stack.service.wait_idle(DEADLINE_S)
    assert (await stack.service.get_machine(machine.id)).state == "running"
    assert (await stack.observer.reconcile()).findings == []


async def test_a_running_machine_whose_guest_is_gone_is_marked_error(stack: Stack) -> None:
    machine = await stack.machine("ct-1", CT_IMAGE)
    stack.fakepve.cts.remove(stack.guest_of(machine))  # destroyed behind the service's back

    report = await stack.observer.reconcile()

    assert kinds(report) == [(FindingKind.MACHINE_NOT_RUNNING, machine.id, machine.id)]
    assert "the proxmox provider no longer has this machine" in report.findings[0].message
    assert (await stack.service.get_machine(machine.id)).state == "error"


async def test_a_guest_of_this_run_without_a_row_is_reported_and_left_alone(
    stack: Stack, fakepve_cafile: str
) -> None:
    await stack.machine("web-1", start=False)
    await stack.proxmox.create(spec("leftover0", name="leftover"))  # no row names it
    async with fake_provider(stack.fakepve, fakepve_cafile, run_id="other-run") as other:
        await other.create(spec("theirs0", CT_IMAGE, name="theirs"))  # another run's guest

    report = await stack.observer.reconcile()

    assert kinds(report) == [(FindingKind.ORPHAN_MACHINE, None, "leftover0")]
    assert "has machine 'leftover0' (stopped) that no machine row names" in (
        report.findings[0].message
    )
    assert await stack.proxmox.runtime("leftover0") is not None  # reported, never removed


async def test_a_disk_volume_without_a_row_is_reported(stack: Stack) -> None:
    machine = await stack.machine("web-1", start=False)
    await stack.proxmox.create_disk(machine.id, "stray-disk", 16)
    report = await stack.observer.reconcile()
    assert kinds(report) == [(FindingKind.ORPHAN_DISK_FILE, machine.id, "stray-disk")]
