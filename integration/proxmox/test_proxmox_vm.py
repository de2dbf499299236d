"""What only a VM can do, on a real Proxmox VE (see conftest.py): commands through the QEMU guest
agent, and disks made, hot-plugged (the guest sees them), grown, unplugged and freed. One running
VM serves the module; the template VM must have the guest agent installed and enabled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from hangar.providers.base import ProviderError
from hangar.providers.proxmox.config import ProxmoxConfig

from .conftest import Guests, config_of, look, made_guests

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(900)]

MIB = 1024 * 1024
# Each block device of the guest and its size in bytes (sysfs counts 512-byte sectors).
BLOCK_DEVICES = 'for d in /sys/block/*; do echo "${d##*/} $(( $(cat "$d/size") * 512 ))"; done'
SEEN_WITHIN_S = 60.0


@pytest_asyncio.fixture
async def vm(pve_config: ProxmoxConfig, vm_image: str) -> AsyncIterator[tuple[Guests, str]]:
    """A running VM whose guest agent answers (deleted after the test)."""
    async with made_guests(pve_config) as guests:
        key = await guests.create(vm_image, "it-vm")
        await guests.provider.start(key)
        ready = await guests.provider.exec(key, "true")  # waits for the agent (agent_timeout)
        assert ready.exit_status == 0, ready.output
        yield guests, key


async def test_commands_run_through_the_guest_agent(vm: tuple[Guests, str]) -> None:
    guests, key = vm
    provider = guests.provider
    echoed = await provider.exec(key, "echo hello from proxmox")
    assert (echoed.exit_status, echoed.output) == (0, "hello from proxmox\n")
    failed = await provider.exec(key, "echo on stderr >&2; exit 3")
    assert (failed.exit_status, failed.output.strip()) == (3, "on stderr")
    system = await provider.exec(key, "uname -s")
    assert system.output.strip() == "Linux"
    with pytest.raises(ProviderError, match=r"still running after 2 s"):
        await provider.exec(key, "sleep 30", timeout=2)


async def sizes(guests: Guests, key: str) -> dict[str, int]:
    """Block device -> size in bytes, as the guest sees them."""
    listed = await guests.provider.exec(key, BLOCK_DEVICES)
    assert listed.exit_status == 0, listed.output
    return {
        name: int(size)
        for name, size in (line.split() for line in listed.output.splitlines() if line.strip())
    }


async def seen(
    guests: Guests, key: str, wanted: Callable[[dict[str, int]], bool], what: str
) -> dict[str, int]:
    """The guest's block devices once `wanted(devices)` is true; fails after SEEN_WITHIN_S."""
    deadline = time.monotonic() + SEEN_WITHIN_S
    while True:
        devices = await sizes(guests, key)
        if wanted(devices):
            return devices
        if time.monotonic() > deadline:
            pytest.fail(f"the guest did not see {what} within {SEEN_WITHIN_S:g} s: {devices}")
        await asyncio.sleep(2)


async def test_a_disk_is_made_hot_plugged_grown_unplugged_and_freed(
    vm: tuple[Guests, str],
) -> None:
    guests, key = vm
    provider = guests.provider
    placement = await provider.placement(key)
    node, vmid, storage = placement["node"], placement["vmid"], guests.config.storage
    before = await sizes(guests, key)

    await provider.create_disk(key, "data", 64)
    assert "data" in (await provider.disk_inventory())[key]
    volumes = await provider.client.get_list(
        f"nodes/{node}/storage/{storage}/content",
        {"content": "images", "vmid": int(vmid)},
        deadline=look("listing the VM's volumes"),
    )
    [volume] = [item for item in volumes if f"vm-{vmid}-hangar-data" in str(item["volid"])]
    assert int(volume["size"]) == 64 * MIB

    await provider.attach_disk(key, "data")
    config = await config_of(provider, await guests.path(key))
    assert config is not None
    slots = [slot for slot, value in config.items() if str(value).startswith(volume["volid"])]
    assert len(slots) == 1
    assert slots[0].startswith("scsi")
    plugged = await seen(
        guests,
        key,
        lambda now: any(size == 64 * MIB for name, size in now.items() if name not in before),
        "a new 64 MiB disk",
    )
    [device] = [name for name, size in plugged.items() if name not in before and size == 64 * MIB]

    await provider.resize_disk(key, "data", 128)
    grown = await config_of(provider, await guests.path(key))
    assert grown is not None
    assert "size=128M" in str(grown[slots[0]])

    await provider.detach_disk(key, "data")
    detached = await config_of(provider, await guests.path(key))
    assert detached is not None
    assert slots[0] not in detached
    await seen(guests, key, lambda now: device not in now, f"{device} go away")

    await provider.delete_disk(key, "data")
    left = await provider.client.get_list(
        f"nodes/{node}/storage/{storage}/content",
        {"content": "images", "vmid": int(vmid)},
        deadline=look("listing the VM's volumes"),
    )
    assert not [item for item in left if "hangar-data" in str(item["volid"])]
    assert "data" not in (await provider.disk_inventory())[key]
    assert (await provider.exec(key, "true")).exit_status == 0  # the guest lived through it all
