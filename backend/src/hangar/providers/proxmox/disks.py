"""A VM's disks: volumes named `vm-<VMID>-hangar-<disk key>` on the configured storage, attached
as `scsiN` through the VM's config.

The name is how a disk is found again (a detached disk is in no config, or only as PVE's
`unusedN`); it follows PVE's rule for volume names (`vm-<VMID>-*`, with the format's extension
on a file storage), so PVE counts the volume as the VM's: `destroy-unreferenced-disks` removes
it with the VM. Containers have no disks here (see `guests.KIND_CAPABILITIES`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hangar.providers.base import NotFoundError, ProviderError
from hangar.providers.proxmox.client import Deadline, ProxmoxClient
from hangar.providers.proxmox.config import ProxmoxConfig
from hangar.providers.proxmox.guests import Guest

DISK_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
DISK_VOLUME = re.compile(r"(?:^|[:/])vm-(\d+)-hangar-([A-Za-z0-9_-]+)(?:\.(?:raw|qcow2|vmdk))?$")
DISK_MB = range(1, 64 * 1024 * 1024 + 1)  # up to 64 TiB
SLOTS = tuple(f"scsi{n}" for n in range(1, 31))  # scsi0: the template's system disk
DRIVE = re.compile(r"(?:ide|sata|scsi|virtio)\d+")
UNUSED = re.compile(r"unused\d+")
# File storages hold a VM's disk as a file, whose format is its name's extension.
FILE_STORAGE_FORMATS = {
    "dir": "qcow2",
    "nfs": "qcow2",
    "cifs": "qcow2",
    "glusterfs": "qcow2",
    "btrfs": "raw",
}


def check_size(size_mb: int) -> None:
    if size_mb not in DISK_MB:
        raise ProviderError(f"disk size_mb must be 1-{DISK_MB.stop - 1}, got {size_mb}")


def disk_of(volid: str) -> tuple[int, str] | None:
    """(VMID, disk key) of one of our volumes, None for any other volume."""
    match = DISK_VOLUME.search(volid)
    return (int(match[1]), match[2]) if match else None


def slots_of(config: Mapping[str, str], volid: str) -> tuple[list[str], list[str]]:
    """(drive keys, unusedN keys) of a config that hold `volid`."""
    drives, unused = [], []
    for slot, value in config.items():
        if value.split(",", 1)[0] != volid:
            continue
        if DRIVE.fullmatch(slot):
            drives.append(slot)
        elif UNUSED.fullmatch(slot):
            unused.append(slot)
    return drives, unused


class VmDisks:
    """The disk operations of the provider, on a VM it has already checked is its own."""

    def __init__(self, client: ProxmoxClient, config: ProxmoxConfig) -> None:
        self.client = client
        self.config = config
        # The format of a disk's file on a file storage; "" on a block storage (None: not known).
        self._file_format: str | None = None

    def _content(self, node: str) -> str:
        return f"nodes/{node}/storage/{self.config.storage}/content"

    async def volumes(self, node: str, deadline: Deadline, vmid: int | None = None) -> list[str]:
        """Volume ids of VM images on the storage (of one VM, given `vmid`)."""
        params: dict[str, Any] = {"content": "images"}
        if vmid is not None:
            params["vmid"] = vmid
        items = await self.client.get_list(self._content(node), params, deadline=deadline)
        return [str(item["volid"]) for item in items if "volid" in item]

    async def volume(self, guest: Guest, disk_key: str, deadline: Deadline) -> str | None:
        for volid in await self.volumes(guest.node, deadline, guest.vmid):
            if disk_of(volid) == (guest.vmid, disk_key):
                return volid
        return None

    async def existing(self, guest: Guest, disk_key: str, deadline: Deadline) -> str:
        volid = await self.volume(guest, disk_key, deadline)
        if volid is None:
            raise NotFoundError(f"{guest} has no disk {disk_key!r}")
        return volid

    async def _file_name(self, vmid: int, disk_key: str, deadline: Deadline) -> tuple[str, str]:
        """(file name, format) of a disk's volume."""
        if not DISK_KEY.fullmatch(disk_key):
            raise ProviderError(f"disk key {disk_key!r} must be 1-64 letters, digits, _ or -")
        if self._file_format is None:
            status = await self.client.get_object(
                f"nodes/{self.config.node}/storage/{self.config.storage}/status",
                deadline=deadline,
            )
            self._file_format = FILE_STORAGE_FORMATS.get(str(status.get("type")), "")
        name = f"vm-{vmid}-hangar-{disk_key}"
        if self._file_format:
            return f"{name}.{self._file_format}", self._file_format
        return name, "raw"

    async def effective_config(self, guest: Guest, deadline: Deadline) -> dict[str, str]:
        """The VM's config with its pending changes applied (what it has once they land)."""
        effective: dict[str, str] = {}
        for item in await self.client.get_list(f"{guest.path}/pending", deadline=deadline):
            if item.get("delete"):
                continue
            value = item.get("pending", item.get("value"))
            if value is not None:
                effective[str(item["key"])] = str(value)
        return effective

    async def create(self, guest: Guest, disk_key: str, size_mb: int, deadline: Deadline) -> None:
        """A new, unattached volume of `size_mb`."""
        check_size(size_mb)
        filename, fmt = await self._file_name(guest.vmid, disk_key, deadline)
        if await self.volume(guest, disk_key, deadline) is not None:
            raise ProviderError(f"{guest} already has a disk {disk_key!r}")
        params: dict[str, Any] = {"vmid": guest.vmid, "filename": filename, "size": f"{size_mb}M"}
        if fmt != "raw":
            params["format"] = fmt
        await self.client.call("POST", self._content(guest.node), params, deadline=deadline)

    async def attach(self, guest: Guest, disk_key: str, deadline: Deadline) -> None:
        """Attach as the first free `scsiN` (hot-plugged into a running VM); no-op if attached."""
        volid = await self.existing(guest, disk_key, deadline)
        config = await self.effective_config(guest, deadline)
        drives, unused = slots_of(config, volid)
        if drives:
            return
        free = [slot for slot in SLOTS if slot not in config]
        if not free:
            raise ProviderError(f"{guest} has no free SCSI slot; detach a disk first")
        params: dict[str, Any] = {free[0]: volid}
        if unused:
            params["delete"] = ",".join(unused)
        await self.client.call("PUT", f"{guest.path}/config", params, deadline=deadline)

    async def detach(self, guest: Guest, disk_key: str, deadline: Deadline) -> None:
        """Take the disk out of the config (PVE may keep it as `unusedN`); no-op if detached."""
        volid = await self.existing(guest, disk_key, deadline)
        drives, _ = slots_of(await self.effective_config(guest, deadline), volid)
        if drives:
            await self.client.call(
                "PUT", f"{guest.path}/config", {"delete": ",".join(drives)}, deadline=deadline
            )

    async def delete(self, guest: Guest, disk_key: str, deadline: Deadline) -> None:
        """Free the detached disk's volume."""
        volid = await self.existing(guest, disk_key, deadline)
        drives, unused = slots_of(await self.effective_config(guest, deadline), volid)
        if drives:
            raise ProviderError(f"disk {disk_key!r} is attached to {guest}; detach it first")
        if unused:  # PVE frees an unused volume when its entry is deleted
            await self.client.call(
                "PUT", f"{guest.path}/config", {"delete": ",".join(unused)}, deadline=deadline
            )
        if await self.volume(guest, disk_key, deadline) is not None:
            answer = await self.client.call(
                "DELETE", f"{self._content(guest.node)}/{volid}", deadline=deadline
            )
            if isinstance(answer, str) and answer.startswith("UPID:"):
                await self.client.wait_task(answer, deadline=deadline, what=f"deleting {volid}")

    async def resize(self, guest: Guest, disk_key: str, size_mb: int, deadline: Deadline) -> None:
        """Grow an attached disk to `size_mb` (PVE cannot shrink one)."""
        check_size(size_mb)
        volid = await self.existing(guest, disk_key, deadline)
        drives, _ = slots_of(await self.effective_config(guest, deadline), volid)
        if not drives:
            raise ProviderError(f"disk {disk_key!r} must be attached to {guest} to be resized")
        answer = await self.client.call(
            "PUT",
            f"{guest.path}/resize",
            {"disk": drives[0], "size": f"{size_mb}M"},
            deadline=deadline,
        )
        if isinstance(answer, str) and answer.startswith("UPID:"):
            await self.client.wait_task(answer, deadline=deadline, what=f"resizing {disk_key}")

    async def inventory(self, keys: Mapping[int, str], deadline: Deadline) -> dict[str, set[str]]:
        """Machine key -> the disk keys whose volumes exist, for the VMs `keys` (VMID -> key)."""
        found: dict[str, set[str]] = {key: set() for key in keys.values()}
        for volid in await self.volumes(self.config.node, deadline):
            disk = disk_of(volid)
            if disk is not None and disk[0] in keys:
                found[keys[disk[0]]].add(disk[1])
        return found
