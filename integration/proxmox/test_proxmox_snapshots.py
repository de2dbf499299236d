"""Snapshots on a real Proxmox VE (see conftest.py): a rollback brings back what the snapshot
held — a container's config, a VM's disk as its guest wrote it."""

from __future__ import annotations

import pytest

from hangar.providers.base import NotFoundError, ProviderError
from hangar.providers.proxmox.guests import GuestKind

from .conftest import Guests, image_for, look

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(900)]

MARK = "/var/tmp/hangar-mark"  # on the disk (/tmp may be a tmpfs)


async def test_a_container_rolls_back_to_its_snapshot(guests: Guests) -> None:
    provider = guests.provider
    key = await guests.create(image_for(GuestKind.LXC), "it-snap-ct")
    path = await guests.path(key)
    await provider.create_snapshot(key, "before")
    assert await provider.snapshots(key) == ["before"]
    with pytest.raises(ProviderError, match="already has a snapshot 'before'"):
        await provider.create_snapshot(key, "before")
    with pytest.raises(ProviderError, match="not allowed by Proxmox"):
        await provider.create_snapshot(key, "1-starts-with-a-digit")

    # Something changes after the snapshot: the container's CPUs, through the API.
    await provider.client.call("PUT", f"{path}/config", {"cores": 2}, deadline=look("a change"))
    assert int((await guests.guest_config(key))["cores"]) == 2
    await provider.rollback_snapshot(key, "before")
    assert int((await guests.guest_config(key))["cores"]) == 1
    with pytest.raises(NotFoundError, match="no snapshot 'never-taken'"):
        await provider.rollback_snapshot(key, "never-taken")

    await provider.create_snapshot(key, "later")
    assert await provider.snapshots(key) == ["before", "later"]  # oldest first
    await provider.delete_snapshot(key, "before")
    assert await provider.snapshots(key) == ["later"]
    assert (await provider.start(key)).running  # the rolled-back container still starts


async def test_a_vm_rolls_back_to_what_its_disk_held(guests: Guests, vm_image: str) -> None:
    provider = guests.provider
    key = await guests.create(vm_image, "it-snap-vm")
    await provider.start(key)
    wrote = await provider.exec(key, f"echo before > {MARK} && sync")  # waits for the agent
    assert wrote.exit_status == 0, wrote.output
    await provider.create_snapshot(key, "before")  # running: the agent freezes the file systems
    changed = await provider.exec(key, f"echo after > {MARK} && sync && cat {MARK}")
    assert changed.output.strip() == "after"

    await provider.rollback_snapshot(key, "before")  # Proxmox stops the VM for it (no RAM state)
    await provider.start(key)
    read = await provider.exec(key, f"cat {MARK}")
    assert (read.exit_status, read.output.strip()) == (0, "before")
    await provider.delete_snapshot(key, "before")
    assert await provider.snapshots(key) == []
