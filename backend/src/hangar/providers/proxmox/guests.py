"""What a Proxmox guest is to the provider: its kind and what that kind can do, the image it is
made from, and the tags that make it a machine of a hangar run. Pure data, no requests."""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from hangar.providers.base import Capability, ProviderError


class GuestKind(StrEnum):
    QEMU = "qemu"
    LXC = "lxc"


KIND_CAPABILITIES: Mapping[GuestKind, frozenset[Capability]] = {
    GuestKind.QEMU: frozenset(
        {Capability.DISKS, Capability.SNAPSHOTS, Capability.CLONE, Capability.EXEC}
    ),
    # No EXEC: PVE has no guest-exec endpoint for containers (there is no agent in an LXC).
    # No DISKS: PVE makes and formats a container's mount point only when it is added to the
    # config, so a disk cannot exist unattached first, as create_disk then attach_disk expect.
    GuestKind.LXC: frozenset({Capability.SNAPSHOTS, Capability.CLONE}),
}
IMAGE_PREFIXES = {"pve-vm:": GuestKind.QEMU, "pve-ct:": GuestKind.LXC}

HANGAR_TAG = "hangar"
RUN_TAG_PREFIX = "run-"
KEY_TAG_PREFIX = "key-"
TAG = re.compile(r"[a-z0-9_][a-z0-9_+.-]*")  # a PVE tag (PVE compares them in lower case)
# The lines of a guest's description that name its machine, its run and when it was made: set at
# creation, even by a clone, which cannot set tags (so a clone whose process died before it could
# tag it is still recognised as the run's).
KEY_MARK = re.compile(r"^hangar-key: (\S+)\s*$", re.MULTILINE)
RUN_MARK = re.compile(r"^hangar-run: (\S+)\s*$", re.MULTILINE)
CREATED_MARK = re.compile(r"^hangar-created: (\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Image:
    kind: GuestKind
    source: str  # the template's VMID, or the OS template's volume id


def parse_image(name: str) -> Image:
    """`pve-vm:<template VMID>` or `pve-ct:<volid>`; ProviderError saying so otherwise."""
    for prefix, kind in IMAGE_PREFIXES.items():
        if name.startswith(prefix):
            source = name.removeprefix(prefix)
            if kind is GuestKind.QEMU and source.isdigit():
                return Image(kind, source)
            if kind is GuestKind.LXC and re.fullmatch(r"[A-Za-z][\w.-]*:\S+", source):
                return Image(kind, source)
    raise ProviderError(
        f"the proxmox provider has no image {name!r}: use pve-vm:<template VMID> (a clone of a "
        "template VM) or pve-ct:<volid> (a container from an OS template, e.g. "
        "pve-ct:local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst)"
    )


def parse_tags(text: object) -> frozenset[str]:
    """PVE's tag list (`a;b`, also `,` or spaces) as a set, in lower case."""
    return frozenset(tag.lower() for tag in re.split(r"[;, ]+", str(text or "")) if tag)


def marked_key(description: object) -> str | None:
    """The machine key that a guest's description names, if any."""
    match = KEY_MARK.search(str(description or ""))
    return match[1] if match else None


def marked_run(description: object) -> str | None:
    """The run id that a guest's description names, if any."""
    match = RUN_MARK.search(str(description or ""))
    return match[1] if match else None


def marked_created(description: object) -> datetime | None:
    """When the guest was made, as its description says (UTC), if it says so readably."""
    match = CREATED_MARK.search(str(description or ""))
    if match is None:
        return None
    try:
        made = datetime.fromisoformat(match[1])
    except ValueError:
        return None
    return made if made.tzinfo is not None else None


def description(name: str, run_id: str, key: str, created: datetime) -> str:
    """The description of a guest made for machine `key` (named `name`) of run `run_id`."""
    return (
        f"Machine {name} of hangar (run {run_id}); hangar deletes it.\n"
        f"hangar-run: {run_id}\n"
        f"hangar-key: {key}\n"
        f"hangar-created: {created.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
    )


@dataclass(frozen=True, slots=True)
class Guest:
    """A guest as `cluster/resources` lists it."""

    vmid: int
    kind: GuestKind
    node: str
    name: str
    status: str
    tags: frozenset[str] = frozenset()
    lock: str | None = None
    template: bool = False
    # The run its description names, for a guest without a run tag found by it (a clone whose
    # tags were never set; see `ProxmoxProvider.leftovers`). None otherwise.
    described_run: str | None = None

    @classmethod
    def from_resource(cls, item: Mapping[str, Any]) -> Guest | None:
        kind = item.get("type")
        if kind not in (GuestKind.QEMU.value, GuestKind.LXC.value) or "vmid" not in item:
            return None
        return cls(
            vmid=int(item["vmid"]),
            kind=GuestKind(kind),
            node=str(item.get("node", "")),
            name=str(item.get("name", "")),
            status=str(item.get("status", "unknown")),
            tags=parse_tags(item.get("tags")),
            lock=str(item["lock"]) if item.get("lock") else None,
            template=bool(item.get("template")),
        )

    @property
    def path(self) -> str:
        """The guest's API path, e.g. `nodes/pve1/qemu/9001`."""
        return f"nodes/{self.node}/{self.kind.value}/{self.vmid}"

    @property
    def key(self) -> str | None:
        """The machine key of its `key-` tag (None without exactly one)."""
        return _tag_value(self.tags, KEY_TAG_PREFIX)

    @property
    def run(self) -> str | None:
        """The run id of its `run-` tag (None without exactly one); for a guest found by its
        description, the run that names."""
        return _tag_value(self.tags, RUN_TAG_PREFIX) or self.described_run

    @property
    def run_tagged(self) -> bool:
        """Whether it carries any `run-` tag."""
        return any(tag.startswith(RUN_TAG_PREFIX) for tag in self.tags)

    def __str__(self) -> str:
        kind = "VM" if self.kind is GuestKind.QEMU else "CT"
        return f"{kind} {self.vmid} ({self.name or 'unnamed'})"


def _tag_value(tags: Set[str], prefix: str) -> str | None:
    values = sorted(tag.removeprefix(prefix) for tag in tags if tag.startswith(prefix))
    return values[0] if len(values) == 1 else None


def dns_name(name: str, vmid: int) -> str:
    """A guest name PVE accepts (a DNS name) for the machine's name."""
    labels = []
    for label in name.lower().split("."):
        clean = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", label)).strip("-")[:63].strip("-")
        if clean:
            labels.append(clean)
    return ".".join(labels)[:200].strip(".-") or f"hangar-{vmid}"
