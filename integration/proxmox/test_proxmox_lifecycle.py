"""The life of a container and of a VM on a real Proxmox VE (see conftest.py for the variables and
the cleanup): create, start, stop, clone and destroy, each checked through the API; VMIDs only
from the range."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from hangar.providers.base import MachineSpec, NotFoundError, ProviderError, UnsupportedError
from hangar.providers.proxmox.config import VMID_RANGE_VARIABLE
from hangar.providers.proxmox.guests import GuestKind, marked_created, marked_key, marked_run
from hangar.providers.proxmox.provider import ProxmoxProvider
from testkit.runs import RUN_ID

from . import settings
from .conftest import CT_MEMORY_MB, VM_MEMORY_MB, Guests, image_for, new_key, resources

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(900)]


@pytest.mark.parametrize("kind", [GuestKind.LXC, GuestKind.QEMU], ids=["lxc", "qemu"])
async def test_a_guest_is_created_started_stopped_cloned_and_destroyed(
    guests: Guests, kind: GuestKind
) -> None:
    image = image_for(kind)
    provider = guests.provider
    memory = VM_MEMORY_MB if kind is GuestKind.QEMU else CT_MEMORY_MB
    key = await guests.create(image, f"it-life-{kind.value}")

    placement = await provider.placement(key)
    assert (placement["kind"], placement["node"]) == (kind.value, guests.config.node)
    vmid = int(placement["vmid"])
    assert vmid in guests.config.vmids
    [listed] = await guests.tagged(key)
    assert (int(listed["vmid"]), listed["type"], listed["status"]) == (vmid, kind.value, "stopped")
    assert {"hangar", f"run-{RUN_ID}", f"key-{key}"} <= set(str(listed["tags"]).split(";"))
    config = await guests.guest_config(key)
    assert (int(config["cores"]), int(str(config["memory"]))) == (1, memory)
    description = config["description"]
    assert (marked_run(description), marked_key(description)) == (RUN_ID, key)
    made = marked_created(description)
    assert made is not None
    assert abs(datetime.now(UTC) - made) < timedelta(hours=1)
    stopped = await provider.runtime(key)
    assert stopped is not None
    assert not stopped.running

    assert (await provider.start(key)).running
    assert await guests.state(key) == "running"
    running = await provider.runtime(key)
    assert running is not None
    assert running.running
    assert key in {runtime.key for runtime in await provider.inventory()}
    if kind is GuestKind.LXC:  # what a container cannot do is refused with the reason
        with pytest.raises(UnsupportedError, match="no guest-exec for containers"):
            await provider.exec(key, "true")
        with pytest.raises(UnsupportedError, match="mount point only when it is attached"):
            await provider.create_disk(key, "data", 64)

    await provider.stop(key)
    assert await guests.state(key) == "stopped"
    after_stop = await provider.runtime(key)
    assert after_stop is not None
    assert not after_stop.running

    copy = await guests.clone(key, f"it-life-{kind.value}-clone")
    cloned = await provider.placement(copy)
    assert cloned["kind"] == kind.value
    assert int(cloned["vmid"]) in guests.config.vmids
    assert int(cloned["vmid"]) != vmid
    [clone_listed] = await guests.tagged(copy)
    clone_tags = set(str(clone_listed["tags"]).split(";"))
    assert {"hangar", f"run-{RUN_ID}", f"key-{copy}"} <= clone_tags
    assert f"key-{key}" not in clone_tags  # the source's key tag was replaced
    assert marked_key((await guests.guest_config(copy))["description"]) == copy
    assert [int(item["vmid"]) for item in await guests.tagged(key)] == [vmid]  # source untouched
    assert (await provider.start(copy)).running
    assert await guests.state(copy) == "running"

    await provider.delete(copy)  # running: stopped hard first
    await provider.delete(key)
    remaining = {int(item["vmid"]) for item in await resources(provider)}
    assert not {vmid, int(cloned["vmid"])} & remaining
    assert await provider.runtime(key) is None
    assert await provider.runtime(copy) is None
    with pytest.raises(NotFoundError):
        await provider.start(key)
    await provider.delete(key)  # already gone: success
    assert not {key, copy} & {runtime.key for runtime in await provider.inventory()}


async def test_vmids_come_only_from_the_range(guests: Guests) -> None:
    """Every guest of the run is in the range (checked for each test's guests above and for the
    whole run at the session's end); a range whose only VMID is taken gives no guest but an
    error that names the range."""
    image = any_image()
    taken = sorted(int(item["vmid"]) for item in await resources(guests.provider))
    if not taken:  # nothing visible to the token yet: take a VMID by making a guest
        made = await guests.create(image, "it-taken")
        taken = [int((await guests.provider.placement(made))["vmid"])]
    vmid = taken[0]
    narrow = ProxmoxProvider(
        dataclasses.replace(guests.config, vmids=range(vmid, vmid + 1)), RUN_ID
    )
    key = new_key()
    guests.made.append(key)
    try:
        with pytest.raises(
            ProviderError,
            match=rf"no free VMID in {VMID_RANGE_VARIABLE} {vmid}-{vmid} \(1 of 1 in use\)",
        ):
            await narrow.create(MachineSpec(key, "it-no-room", image, cpus=1, memory_mb=512))
    finally:
        await narrow.close()
    assert await guests.traces(key) == []


def any_image() -> str:
    """The VM template's image if it is set, else the container template's; else skip."""
    if settings.value(settings.VM_TEMPLATE):
        return image_for(GuestKind.QEMU)
    if settings.value(settings.CT_TEMPLATE):
        return image_for(GuestKind.LXC)
    pytest.skip(f"set {settings.VM_TEMPLATE} or {settings.CT_TEMPLATE} to run this test")
