"""The `proxmox` provider: machines as guests of a Proxmox VE node, through its API.

**Images and kinds.** The image decides the guest's kind: `pve-vm:<VMID>` is a QEMU VM, a full
clone of that template VM; `pve-ct:<volid>` is an LXC container made from that OS template
volume (e.g. `pve-ct:local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`). What each kind can
do is `KIND_CAPABILITIES`; `capabilities` is their union, because the protocol has one set per
provider: the service lets an action through when some kind has it, and the provider raises
`UnsupportedError` with the reason when the machine's kind lacks it (exec and disks on a
container). `capabilities_for(image)` tells the set of one image's kind.

**Which guests are this provider's.** Every guest it makes carries the tags `hangar`,
`run-<run id>` and `key-<machine key>` (the key is how it finds the guest again) and, from the
request that makes it on, the lines `hangar-run: <run id>`, `hangar-key: <key>` and
`hangar-created: <UTC time>` in its description (how it recognises its own guest before the
tags are set: a clone cannot set tags). Its VMID is drawn at random from the configured range
and checked with `cluster/nextid`. It acts only on guests inside that range that carry `hangar`
and its own `run-<run id>`, and refuses any other guest with an error: a person's guests are
never touched. (The one guest it acts on before it is tagged is the one a failed create of its
own just made, recognised by its VMID and description, to remove it.) `inventory()` is the
guests of this run (so the observer's "a tagged guest has no row" means this service's own
leftovers, not another service's machines); `sweep()` removes leftovers of runs chosen by the
caller: the guests tagged with such a run, and the guests in the range with no run tag whose
description names such a run and a machine (a clone whose process died before tagging it).

**Operations.** Each has a deadline (`ProxmoxConfig`). A create or clone that fails, or runs out
of time, removes the guest it made before it raises (it waits, bounded, for the task to end
first), so nothing half-made is left. A stop is a shutdown with a deadline, then a hard stop.
Exec goes through the QEMU guest agent (bounded wait for `agent/ping`, then `agent/exec` and
`agent/exec-status`). Disks (VMs only) are volumes named `vm-<VMID>-hangar-<disk key>` on the
configured storage, attached as `scsiN` through the VM's config.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from hangar.providers.base import (
    Capability,
    ExecResult,
    MachineSpec,
    NotFoundError,
    ProviderError,
    Runtime,
    UnsupportedError,
)
from hangar.providers.proxmox.client import (
    Deadline,
    DeadlineError,
    Params,
    ProxmoxApiError,
    ProxmoxClient,
    ProxmoxError,
    TaskFailedError,
)
from hangar.providers.proxmox.config import VMID_RANGE_VARIABLE, ProxmoxConfig
from hangar.providers.proxmox.disks import VmDisks
from hangar.providers.proxmox.guests import (
    HANGAR_TAG,
    KEY_TAG_PREFIX,
    KIND_CAPABILITIES,
    RUN_TAG_PREFIX,
    TAG,
    Guest,
    GuestKind,
    description,
    dns_name,
    marked_key,
    marked_run,
    parse_image,
)

log = logging.getLogger(__name__)

# Whether a request whose answer was lost had taken effect (see ProxmoxClient.call).
Settled = Callable[[], Awaitable[bool]]
# Start the task that makes guest VMID named NAME: its UPID, or "" when `settled` found it done.
Dispatch = Callable[[int, str, Deadline, Settled], Awaitable[str]]


SNAPSHOT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{1,39}")
RESERVED_SNAPSHOTS = frozenset({"current", "pending", "vzdump"})
BUSY_LOCKS = frozenset({"create", "clone", "destroyed"})  # a task of ours still works on it
SHUTDOWN_SLACK_S = 5.0  # past the shutdown's own timeout, before the hard stop
VMID_TRIES = 10
# What PVE says while the guest agent does not answer (not started yet, not installed, hung).
AGENT_DOWN = re.compile(r"guest agent is not running|'guest-ping' failed", re.IGNORECASE)


KIND_NAMES = {GuestKind.QEMU: "a QEMU VM", GuestKind.LXC: "an LXC container"}
# Why a kind lacks a capability (see KIND_CAPABILITIES), for the error a person sees.
LACKING = {
    (GuestKind.LXC, Capability.EXEC): (
        "Proxmox offers no guest-exec for containers (it needs the QEMU guest agent, which only "
        "VMs have); make the machine from a pve-vm: image to run commands"
    ),
    (GuestKind.LXC, Capability.DISKS): (
        "Proxmox makes a container's mount point only when it is attached, so a disk cannot "
        "exist on its own; make the machine from a pve-vm: image to have disks"
    ),
}


@dataclass
class SweepReport:
    """What a sweep removed, and what it could not (with the reason)."""

    removed: list[Guest] = field(default_factory=list)
    failed: list[tuple[Guest, str]] = field(default_factory=list)


class ProxmoxProvider:
    """Machines as QEMU VMs and LXC containers of one Proxmox VE node (module docstring)."""

    name = "proxmox"
    capabilities = KIND_CAPABILITIES[GuestKind.QEMU] | KIND_CAPABILITIES[GuestKind.LXC]

    def __init__(
        self, config: ProxmoxConfig, run_id: str, *, client: ProxmoxClient | None = None
    ) -> None:
        run_tag = f"{RUN_TAG_PREFIX}{run_id}"
        if not run_id or not TAG.fullmatch(run_tag):
            raise ValueError(
                f"HANGAR_RUN_ID must be lower-case letters, digits and _ + . - (it becomes the "
                f"Proxmox tag {run_tag!r}), got {run_id!r}"
            )
        self.config = config
        self.run_id = run_id
        self.run_tag = run_tag
        self.client = client or ProxmoxClient(config)
        self._claimed: set[int] = set()  # VMIDs that a create of this process is using
        self.disks = VmDisks(self.client, config)

    # -- what kinds can do -------------------------------------------------------------
    def capabilities_for(self, image: str) -> frozenset[Capability]:
        """The capabilities of machines made from `image` (those of its guest kind)."""
        return KIND_CAPABILITIES[parse_image(image).kind]

    def _require(self, guest: Guest, capability: Capability) -> None:
        """UnsupportedError, with the reason, when the guest's kind lacks `capability`."""
        if capability not in KIND_CAPABILITIES[guest.kind]:
            why = LACKING.get((guest.kind, capability), f"it has no {capability.value}")
            raise UnsupportedError(f"{guest} is {KIND_NAMES[guest.kind]}: {why}")

    # -- finding guests ----------------------------------------------------------------
    def _deadline(self, seconds: float, what: str) -> Deadline:
        return Deadline.after(seconds, what)

    async def _guests(self, deadline: Deadline) -> list[Guest]:
        items = await self.client.get_list("cluster/resources", {"type": "vm"}, deadline=deadline)
        return [guest for item in items if (guest := Guest.from_resource(item)) is not None]

    async def _config(self, guest: Guest, deadline: Deadline) -> dict[str, Any]:
        return await self.client.get_object(f"{guest.path}/config", deadline=deadline)

    async def _marked_key(self, guest: Guest, deadline: Deadline) -> str | None:
        """The key in the guest's description (`hangar-key: KEY`), if any."""
        return marked_key((await self._config(guest, deadline)).get("description"))

    async def _by_key(self, guests: Sequence[Guest], deadline: Deadline) -> dict[str, Guest]:
        """Key -> guest for the guests that carry a key tag. Several guests with one key tag
        happen while a clone of a machine still has its source's tags: the description says
        which one the key belongs to."""
        claims: dict[str, list[Guest]] = {}
        for guest in guests:
            if guest.key is not None:
                claims.setdefault(guest.key, []).append(guest)
        found: dict[str, Guest] = {}
        for key, claimants in claims.items():
            if len(claimants) > 1:
                claimants = [g for g in claimants if await self._marked_key(g, deadline) == key]
            if len(claimants) == 1:
                found[key] = claimants[0]
            elif claimants:
                raise ProxmoxError(
                    f"several guests are marked as machine {key!r}: "
                    f"{', '.join(str(g) for g in claimants)}; remove the extra ones in Proxmox"
                )
        return found

    async def _find(self, key: str, deadline: Deadline) -> Guest | None:
        guests = await self._guests(deadline)
        return (await self._by_key([g for g in guests if g.key == key], deadline)).get(key)

    def _check_ours(self, guest: Guest) -> None:
        """Refuse a guest outside the VMID range or without this run's tags."""
        if guest.vmid not in self.config.vmids:
            raise ProviderError(
                f"{guest} is outside {VMID_RANGE_VARIABLE} {self.config.vmid_range_text}; "
                "the proxmox provider never acts on it"
            )
        missing = sorted({HANGAR_TAG, self.run_tag} - guest.tags)
        if missing:
            raise ProviderError(
                f"{guest} lacks the tag(s) {', '.join(missing)}, so it is not a machine of this "
                "service; the proxmox provider never acts on it"
            )

    async def _guest(self, key: str, deadline: Deadline) -> Guest:
        guest = await self._find(key, deadline)
        if guest is None:
            raise NotFoundError(f"Proxmox has no guest tagged as machine {key!r}")
        self._check_ours(guest)
        return guest

    async def _guest_at(self, vmid: int, deadline: Deadline) -> Guest | None:
        return next((g for g in await self._guests(deadline) if g.vmid == vmid), None)

    async def _status(self, guest: Guest, deadline: Deadline) -> dict[str, Any]:
        return await self.client.get_object(f"{guest.path}/status/current", deadline=deadline)

    async def _running(self, guest: Guest, deadline: Deadline) -> bool:
        return (await self._status(guest, deadline)).get("status") == "running"

    def _labels(self, guest: Guest) -> dict[str, str]:
        return {"kind": guest.kind.value, "node": guest.node, "vmid": str(guest.vmid)}

    def _runtime(self, key: str, guest: Guest, running: bool) -> Runtime:
        return Runtime(key=key, running=running, labels=self._labels(guest))

    # -- images ------------------------------------------------------------------------
    async def images(self) -> Sequence[str]:
        """`pve-vm:` for every template VM, `pve-ct:` for every OS template on the node."""
        deadline = self._deadline(self.config.task_timeout, "listing images")
        found = [
            f"pve-vm:{guest.vmid}"
            for guest in sorted(await self._guests(deadline), key=lambda g: g.vmid)
            if guest.template and guest.kind is GuestKind.QEMU
        ]
        node = self.config.node
        storages = await self.client.get_list(
            f"nodes/{node}/storage", {"content": "vztmpl", "enabled": True}, deadline=deadline
        )
        for storage in storages:
            if not storage.get("active", 1):
                continue
            content = await self.client.get_list(
                f"nodes/{node}/storage/{storage['storage']}/content",
                {"content": "vztmpl"},
                deadline=deadline,
            )
            found += sorted(f"pve-ct:{item['volid']}" for item in content if "volid" in item)
        return found

    # -- create and clone --------------------------------------------------------------
    async def create(self, spec: MachineSpec) -> None:
        """Clone the template VM (full clone) or make the container from its OS template; the
        guest is stopped, tagged and sized as the spec says. Leaves nothing when it raises."""
        image = parse_image(spec.image)

        async def dispatch(vmid: int, name: str, deadline: Deadline, settled: Settled) -> str:
            node = self.config.node
            if image.kind is GuestKind.QEMU:
                return await self._post_task(
                    f"nodes/{node}/qemu/{image.source}/clone",
                    {
                        "newid": vmid,
                        "name": name,
                        "full": True,
                        "storage": self.config.storage,
                        "description": self._description(spec),
                    },
                    deadline,
                    settled,
                )
            params: dict[str, Any] = {
                "vmid": vmid,
                "ostemplate": image.source,
                "hostname": name,
                "storage": self.config.storage,
                "rootfs": f"{self.config.storage}:{self.config.ct_rootfs_gb}",
                "cores": spec.cpus,
                "memory": spec.memory_mb,
                "tags": self._tags(spec.key),
                "description": self._description(spec),
                "unprivileged": True,
                "start": False,
            }
            if self.config.ct_network:
                params["net0"] = self.config.ct_network
            return await self._post_task(f"nodes/{node}/lxc", params, deadline, settled)

        await self._provision(spec, self.config.node, image.kind, dispatch, f"creating {spec.name}")

    async def clone(self, source_key: str, spec: MachineSpec) -> None:
        """A full clone of the machine's guest (same kind), tagged and sized as `spec` says."""
        deadline = self._deadline(self.config.create_timeout, f"cloning {spec.name}")
        source = await self._guest(source_key, deadline)

        async def dispatch(vmid: int, name: str, deadline: Deadline, settled: Settled) -> str:
            params: dict[str, Any] = {
                "newid": vmid,
                "full": True,
                "storage": self.config.storage,
                "description": self._description(spec),
                ("name" if source.kind is GuestKind.QEMU else "hostname"): name,
            }
            return await self._post_task(f"{source.path}/clone", params, deadline, settled)

        await self._provision(spec, source.node, source.kind, dispatch, f"cloning {spec.name}")

    def _tags(self, key: str) -> str:
        return ";".join((HANGAR_TAG, self.run_tag, f"{KEY_TAG_PREFIX}{key}"))

    def _description(self, spec: MachineSpec) -> str:
        return description(spec.name, self.run_id, spec.key, datetime.now(UTC))

    async def _post_task(
        self, path: str, params: Params, deadline: Deadline, settled: Settled
    ) -> str:
        """POST that starts a task: its UPID, or "" when `settled` found it had taken effect."""
        answer = await self.client.call("POST", path, params, deadline=deadline, settled=settled)
        if answer is None:
            return ""
        if not isinstance(answer, str):
            raise ProxmoxError(f"Proxmox answered POST /{path} with {answer!r}, not a task id")
        return answer

    async def _provision(
        self, spec: MachineSpec, node: str, kind: GuestKind, dispatch: Dispatch, what: str
    ) -> None:
        """Make guest `spec` on `node` with `dispatch` at a fresh VMID, wait for it, give it its
        tags and size; on any failure remove what was made (`_discard`) before raising."""
        key_tag = f"{KEY_TAG_PREFIX}{spec.key}"
        if not TAG.fullmatch(key_tag):
            raise ProviderError(
                f"machine key {spec.key!r} cannot be a Proxmox tag (lower-case letters, digits "
                "and _ + . - only)"
            )
        deadline = self._deadline(self.config.create_timeout, what)
        if await self._find(spec.key, deadline) is not None:
            raise ProviderError(f"Proxmox already has a guest tagged as machine {spec.key!r}")
        vmid = await self._free_vmid(deadline)
        upid = ""
        try:

            async def settled() -> bool:
                return await self._is_own(node, kind, vmid, spec.key, deadline)

            upid = await dispatch(vmid, dns_name(spec.name, vmid), deadline, settled)
            if upid:
                await self.client.wait_task(upid, deadline=deadline, what=what)
            else:
                await self._wait_unlocked(node, kind, vmid, deadline)
            await self._size_and_tag(node, kind, vmid, spec, deadline)
        except BaseException as exc:
            note = await self._discard(node, kind, vmid, spec.key, upid)
            if note is None or not isinstance(exc, Exception):
                raise
            raise ProviderError(f"{exc}; {note}") from exc
        finally:
            self._claimed.discard(vmid)

    async def _size_and_tag(
        self, node: str, kind: GuestKind, vmid: int, spec: MachineSpec, deadline: Deadline
    ) -> None:
        """The clone's (or container's) own tags, CPUs and memory."""
        params: dict[str, Any] = {
            "tags": self._tags(spec.key),
            "cores": spec.cpus,
            "memory": spec.memory_mb,
        }
        if kind is GuestKind.QEMU:
            params["sockets"] = 1
        await self.client.call(
            "PUT", f"nodes/{node}/{kind.value}/{vmid}/config", params, deadline=deadline
        )

    async def _free_vmid(self, deadline: Deadline) -> int:
        """A random VMID of the range that no guest has and `cluster/nextid` calls free."""
        taken = {guest.vmid for guest in await self._guests(deadline)} | self._claimed
        free = [vmid for vmid in self.config.vmids if vmid not in taken]
        for vmid in secrets.SystemRandom().sample(free, min(VMID_TRIES, len(free))):
            try:
                await self.client.call("GET", "cluster/nextid", {"vmid": vmid}, deadline=deadline)
            except ProxmoxApiError as exc:
                if exc.status == 400:  # taken meanwhile
                    continue
                raise
            if vmid not in self._claimed:
                self._claimed.add(vmid)
                return vmid
        raise ProviderError(
            f"no free VMID in {VMID_RANGE_VARIABLE} {self.config.vmid_range_text} "
            f"({len(self.config.vmids) - len(free)} of {len(self.config.vmids)} in use); "
            "delete guests or widen the range"
        )

    async def _config_at(
        self, node: str, kind: GuestKind, vmid: int, deadline: Deadline
    ) -> dict[str, Any] | None:
        """The config of the guest at `vmid`, None when there is none."""
        try:
            return await self.client.get_object(
                f"nodes/{node}/{kind.value}/{vmid}/config", deadline=deadline
            )
        except ProxmoxApiError as exc:
            if exc.status == 500 and "does not exist" in exc.message:
                return None
            raise

    async def _is_own(
        self, node: str, kind: GuestKind, vmid: int, key: str, deadline: Deadline
    ) -> bool:
        """Whether the guest at `vmid` is the one made for machine `key`: its description says
        so. A guest still being created (locked `create`/`clone`) has no description yet: wait
        for its task to end, then look."""
        while True:
            config = await self._config_at(node, kind, vmid, deadline)
            if config is None:
                return False
            marked = marked_key(config.get("description"))
            if marked is not None:
                return marked == key
            if config.get("lock") not in BUSY_LOCKS:
                return False
            if deadline.expired:
                raise deadline.error(f"waiting for the task that makes guest {vmid} to end")
            await asyncio.sleep(min(self.config.poll_interval, deadline.remaining()))

    async def _wait_unlocked(
        self, node: str, kind: GuestKind, vmid: int, deadline: Deadline
    ) -> None:
        while True:
            config = await self._config_at(node, kind, vmid, deadline)
            if config is None or config.get("lock") not in BUSY_LOCKS:
                return
            if deadline.expired:
                raise deadline.error(f"waiting for guest {vmid} to be unlocked")
            await asyncio.sleep(min(self.config.poll_interval, deadline.remaining()))

    async def _discard(
        self, node: str, kind: GuestKind, vmid: int, key: str, upid: str
    ) -> str | None:
        """Remove what a failed create made at `vmid` (first waiting, bounded, for its task to
        end). None when nothing was there; else a note for the error: that the guest was
        removed, or why it was not (removing failed; it is not recognisably this machine's)."""
        cleanup = self._deadline(self.config.task_timeout, f"removing the half-made guest {vmid}")
        try:
            if upid and (await self.client.task_status(upid, deadline=cleanup)).running:
                await self.client.stop_task(upid)
            if not await self._is_own(node, kind, vmid, key, cleanup):
                if await self._config_at(node, kind, vmid, cleanup) is None:
                    return None
                return (
                    f"VMID {vmid} holds a guest that is not marked as this machine's, so it was "
                    "left alone; check it in Proxmox"
                )
            await self._wait_unlocked(node, kind, vmid, cleanup)
            guest = await self._guest_at(vmid, cleanup)
            if guest is None:
                return None
            await self._destroy(guest, cleanup)
        except ProviderError as exc:
            log.warning("proxmox: could not remove the half-made guest %s: %s", vmid, exc)
            return (
                f"removing the half-made guest {vmid} failed too ({exc}); its description names "
                f"run {self.run_id} (its tags may not be set): `hangar proxmox sweep --run "
                f"{self.run_id}` removes it, else remove it in Proxmox"
            )
        return f"the half-made guest {vmid} was removed"

    # -- power -------------------------------------------------------------------------
    async def start(self, key: str) -> Runtime:
        deadline = self._deadline(self.config.power_timeout, f"starting machine {key}")
        guest = await self._guest(key, deadline)
        if not await self._running(guest, deadline):
            await self.client.run_task(
                "POST", f"{guest.path}/status/start", deadline=deadline, what=f"starting {guest}"
            )
        return self._runtime(key, guest, True)

    async def stop(self, key: str) -> None:
        """Ask the guest to shut down within `shutdown_timeout`, then stop it hard."""
        deadline = self._deadline(
            self.config.shutdown_timeout + SHUTDOWN_SLACK_S + self.config.power_timeout,
            f"stopping machine {key}",
        )
        guest = await self._guest(key, deadline)
        if not await self._running(guest, deadline):
            return
        shutdown = self._deadline(
            self.config.shutdown_timeout + SHUTDOWN_SLACK_S, f"the shutdown of {guest}"
        )
        try:
            await self.client.run_task(
                "POST",
                f"{guest.path}/status/shutdown",
                {"timeout": max(1, math.ceil(self.config.shutdown_timeout))},
                deadline=shutdown.sooner(deadline),
                what=f"shutting down {guest}",
            )
        except (TaskFailedError, DeadlineError) as exc:
            log.info("proxmox: %s did not shut down (%s); stopping it", guest, exc)
        if await self._running(guest, deadline):
            await self._hard_stop(guest, deadline)

    async def _hard_stop(self, guest: Guest, deadline: Deadline) -> None:
        await self.client.run_task(
            "POST",
            f"{guest.path}/status/stop",
            {"overrule-shutdown": True},
            deadline=deadline,
            what=f"stopping {guest}",
        )

    async def restart(self, key: str) -> Runtime:
        """Reboot a running guest (start a stopped one); a reboot that fails becomes a stop
        (the whole ladder) and a start."""
        deadline = self._deadline(
            self.config.shutdown_timeout + SHUTDOWN_SLACK_S + self.config.power_timeout,
            f"restarting machine {key}",
        )
        guest = await self._guest(key, deadline)
        if not await self._running(guest, deadline):
            return await self.start(key)
        try:
            await self.client.run_task(
                "POST",
                f"{guest.path}/status/reboot",
                {"timeout": max(1, math.ceil(self.config.shutdown_timeout))},
                deadline=deadline,
                what=f"rebooting {guest}",
            )
        except (TaskFailedError, DeadlineError) as exc:
            log.info("proxmox: %s did not reboot (%s); stopping and starting it", guest, exc)
            await self.stop(key)
            return await self.start(key)
        return self._runtime(key, guest, True)

    async def delete(self, key: str) -> None:
        """Stop (hard) and destroy the guest with `purge=1` and `destroy-unreferenced-disks=1`
        (its disks, snapshots and jobs go too). Idempotent: no guest, nothing to do."""
        deadline = self._deadline(self.config.task_timeout, f"deleting machine {key}")
        guest = await self._find(key, deadline)
        if guest is None:
            return
        self._check_ours(guest)
        await self._destroy(guest, deadline)

    async def _destroy(self, guest: Guest, deadline: Deadline) -> None:
        if await self._running(guest, deadline):
            await self._hard_stop(guest, deadline)
        await self.client.run_task(
            "DELETE",
            guest.path,
            {"purge": True, "destroy-unreferenced-disks": True},
            deadline=deadline,
            what=f"deleting {guest}",
        )

    # -- observation -------------------------------------------------------------------
    async def runtime(self, key: str) -> Runtime | None:
        """From the guest's `status/current`: running or not, and its `lock` (a backup, a
        snapshot, ...) as the label `lock` while it has one."""
        deadline = self._deadline(self.config.request_timeout * 2, f"looking at machine {key}")
        guest = await self._find(key, deadline)
        if guest is None:
            return None
        self._check_ours(guest)
        status = await self._status(guest, deadline)
        runtime = self._runtime(key, guest, status.get("status") == "running")
        if status.get("lock"):
            runtime.labels["lock"] = str(status["lock"])
        return runtime

    async def inventory(self) -> Sequence[Runtime]:
        """The guests of this run: in the VMID range, tagged `hangar` and `run-<run id>`.
        ProxmoxError when a node cannot tell its guests' state (the observer then skips)."""
        deadline = self._deadline(self.config.request_timeout * 2, "listing guests")
        ours = [
            guest
            for guest in await self._guests(deadline)
            if guest.vmid in self.config.vmids
            and {HANGAR_TAG, self.run_tag} <= guest.tags
            and not guest.template
        ]
        unknown = sorted({guest.node for guest in ours if guest.status == "unknown"})
        if unknown:
            raise ProxmoxError(
                f"node(s) {', '.join(unknown)} do not report their guests' state (offline?)"
            )
        keyed = await self._by_key(ours, deadline)
        found = [
            self._runtime(key, guest, guest.status == "running") for key, guest in keyed.items()
        ]
        claimed = {guest.vmid for guest in keyed.values()}
        # A guest of this run without a (unique) key tag: still reported, by its VMID.
        found += [
            self._runtime(f"vmid-{guest.vmid}", guest, guest.status == "running")
            for guest in ours
            if guest.vmid not in claimed
        ]
        return found

    async def placement(self, key: str) -> Mapping[str, str]:
        """Where machine `key` lives: `{"kind": "qemu"|"lxc", "node": ..., "vmid": ...}`."""
        deadline = self._deadline(self.config.request_timeout * 2, f"finding machine {key}")
        return self._labels(await self._guest(key, deadline))

    # -- disks (VMs: see disks.py) ----------------------------------------------------
    async def _vm(self, key: str, what: str) -> tuple[Guest, Deadline]:
        deadline = self._deadline(self.config.task_timeout, what)
        guest = await self._guest(key, deadline)
        self._require(guest, Capability.DISKS)
        return guest, deadline

    async def create_disk(self, key: str, disk_key: str, size_mb: int) -> None:
        """A new, unattached volume `vm-<VMID>-hangar-<disk key>` of `size_mb` on the storage."""
        guest, deadline = await self._vm(key, f"creating disk {disk_key}")
        await self.disks.create(guest, disk_key, size_mb, deadline)

    async def attach_disk(self, key: str, disk_key: str) -> None:
        """Attach the disk as the first free `scsiN` (hot-plugged into a running VM)."""
        guest, deadline = await self._vm(key, f"attaching disk {disk_key}")
        await self.disks.attach(guest, disk_key, deadline)

    async def detach_disk(self, key: str, disk_key: str) -> None:
        guest, deadline = await self._vm(key, f"detaching disk {disk_key}")
        await self.disks.detach(guest, disk_key, deadline)

    async def delete_disk(self, key: str, disk_key: str) -> None:
        """Free the (detached) disk's volume."""
        guest, deadline = await self._vm(key, f"deleting disk {disk_key}")
        await self.disks.delete(guest, disk_key, deadline)

    async def resize_disk(self, key: str, disk_key: str, size_mb: int) -> None:
        """Grow an attached disk to `size_mb` (an addition to the protocol; PVE cannot shrink)."""
        guest, deadline = await self._vm(key, f"resizing disk {disk_key}")
        await self.disks.resize(guest, disk_key, size_mb, deadline)

    async def disk_inventory(self) -> Mapping[str, Set[str]]:
        """The optional `DiskInventory` addition: machine key -> the disk keys whose volumes
        exist on the storage, for every VM of this run."""
        deadline = self._deadline(self.config.request_timeout * 2, "listing disks")
        keys = {
            int(runtime.labels["vmid"]): runtime.key
            for runtime in await self.inventory()
            if runtime.labels.get("kind") == GuestKind.QEMU.value
        }
        found = await self.disks.inventory(keys, deadline)
        return {key: frozenset(disks) for key, disks in found.items()}

    # -- snapshots ---------------------------------------------------------------------
    @staticmethod
    def _snapshot_name(name: str) -> str:
        if not SNAPSHOT_NAME.fullmatch(name) or name.lower() in RESERVED_SNAPSHOTS:
            raise ProviderError(
                f"snapshot name {name!r} is not allowed by Proxmox: 2-40 letters, digits, _ "
                "or -, starting with a letter, not current, pending or vzdump"
            )
        return name

    async def snapshots(self, key: str) -> list[str]:
        """The machine's snapshot names, oldest first (an addition to the protocol)."""
        deadline = self._deadline(self.config.request_timeout * 2, f"listing snapshots of {key}")
        return await self._snapshots(await self._guest(key, deadline), deadline)

    async def _snapshots(self, guest: Guest, deadline: Deadline) -> list[str]:
        items = await self.client.get_list(f"{guest.path}/snapshot", deadline=deadline)
        ordered = sorted(items, key=lambda item: int(item.get("snaptime") or 0))
        return [str(item["name"]) for item in ordered if item.get("name") != "current"]

    async def create_snapshot(self, key: str, name: str) -> None:
        self._snapshot_name(name)
        deadline = self._deadline(self.config.task_timeout, f"taking snapshot {name}")
        guest = await self._guest(key, deadline)
        if name in await self._snapshots(guest, deadline):
            raise ProviderError(f"machine {key!r} already has a snapshot {name!r}")
        await self.client.run_task(
            "POST",
            f"{guest.path}/snapshot",
            {"snapname": name},
            deadline=deadline,
            what=f"taking snapshot {name} of {guest}",
        )

    async def _existing_snapshot(self, key: str, name: str, action: str) -> tuple[Guest, Deadline]:
        self._snapshot_name(name)
        deadline = self._deadline(self.config.task_timeout, f"{action} snapshot {name}")
        guest = await self._guest(key, deadline)
        if name not in await self._snapshots(guest, deadline):
            raise NotFoundError(f"machine {key!r} has no snapshot {name!r}")
        return guest, deadline

    async def rollback_snapshot(self, key: str, name: str) -> None:
        guest, deadline = await self._existing_snapshot(key, name, "rolling back to")
        await self.client.run_task(
            "POST",
            f"{guest.path}/snapshot/{name}/rollback",
            deadline=deadline,
            what=f"rolling {guest} back to snapshot {name}",
        )

    async def delete_snapshot(self, key: str, name: str) -> None:
        guest, deadline = await self._existing_snapshot(key, name, "deleting")
        await self.client.run_task(
            "DELETE",
            f"{guest.path}/snapshot/{name}",
            deadline=deadline,
            what=f"deleting snapshot {name} of {guest}",
        )

    # -- exec and console --------------------------------------------------------------
    async def exec(self, key: str, command: str, timeout: float = 30.0) -> ExecResult:  # noqa: ASYNC109 (the protocol names it)
        """Run `command` with /bin/sh in the VM through the QEMU guest agent; waits at most
        `agent_timeout` for the agent to answer, then `timeout` for the command."""
        deadline = self._deadline(self.config.agent_timeout + timeout, f"exec in machine {key}")
        guest = await self._guest(key, deadline)
        self._require(guest, Capability.EXEC)
        if not await self._running(guest, deadline):
            raise ProviderError(f"{guest} is not running; exec needs a running guest")
        await self._wait_for_agent(guest)
        started = await self.client.call(
            "POST",
            f"{guest.path}/agent/exec",
            {"command": ["/bin/sh", "-c", command]},
            deadline=deadline,
        )
        if not isinstance(started, dict) or "pid" not in started:
            raise ProxmoxError(f"the guest agent of {guest} answered exec with {started!r}")
        finished = self._deadline(timeout, f"the command in {guest}")
        while True:
            status = await self.client.get_object(
                f"{guest.path}/agent/exec-status", {"pid": int(started["pid"])}, deadline=deadline
            )
            if status.get("exited"):
                break
            if finished.expired:
                raise ProviderError(
                    f"the command in {guest} was still running after {timeout:g} s; it was left "
                    "running (the guest agent cannot end it)"
                )
            await asyncio.sleep(min(self.config.poll_interval, finished.remaining()))
        output = str(status.get("out-data", "")) + str(status.get("err-data", ""))
        if status.get("out-truncated") or status.get("err-truncated"):
            output += "\n[output truncated by the guest agent]\n"
        return ExecResult(exit_status=int(status.get("exitcode", -1)), output=output)

    async def _wait_for_agent(self, guest: Guest) -> None:
        """Until `agent/ping` answers, at most `agent_timeout`; then a clear error."""
        wait = self._deadline(self.config.agent_timeout, f"the guest agent of {guest}")
        while True:
            try:
                await self.client.call("POST", f"{guest.path}/agent/ping", deadline=wait)
                return
            except ProxmoxApiError as exc:
                if not AGENT_DOWN.search(exc.message):
                    raise
                last = exc.message
            if wait.expired:
                raise ProviderError(
                    f"the QEMU guest agent of {guest} did not answer within "
                    f"{self.config.agent_timeout:g} s ({last}); install and start "
                    "qemu-guest-agent in the guest and enable it in the VM's options (agent: 1)"
                )
            await asyncio.sleep(min(self.config.poll_interval, wait.remaining()))

    async def console(self, key: str, lines: int = 100) -> str:
        raise UnsupportedError(
            "the proxmox provider does not read consoles; use the node's web UI (Console)"
        )

    # -- leftovers ---------------------------------------------------------------------
    async def leftovers(self, which: str | Callable[[str], bool]) -> list[Guest]:
        """The guests a `sweep(which)` would delete, not templates, in the VMID range: tagged
        `hangar` and `run-<id>` where `id` is `which` (or `which(id)` is true); and, with no
        `run-` tag at all, those whose description names such a run and a machine
        (`hangar-run:` and `hangar-key:` lines): a clone that its process, killed, never
        tagged. The latter come with `described_run` set. No other guest, ever."""
        wanted = (lambda run: run == which) if isinstance(which, str) else which
        deadline = self._deadline(self.config.request_timeout * 2, "listing leftover guests")
        found = []
        for guest in sorted(await self._guests(deadline), key=lambda g: g.vmid):
            if guest.vmid not in self.config.vmids or guest.template:
                continue
            if guest.run_tagged:
                if HANGAR_TAG in guest.tags and guest.run is not None and wanted(guest.run):
                    found.append(guest)
                continue
            config = await self._config_at(guest.node, guest.kind, guest.vmid, deadline)
            if config is None or config.get("template"):
                continue
            run = marked_run(config.get("description"))
            if run is not None and marked_key(config.get("description")) and wanted(run):
                found.append(replace(guest, described_run=run))
        return found

    async def sweep(self, which: str | Callable[[str], bool]) -> SweepReport:
        """Delete the guests of the runs `which` names (a run id, or a predicate on run ids),
        those `leftovers(which)` lists: stopped hard, destroyed with their disks. Guests outside
        the range, templates and untagged guests whose description does not name such a run are
        never touched. A guest that cannot be deleted is reported, not raised."""
        report = SweepReport()
        for guest in await self.leftovers(which):
            deadline = self._deadline(self.config.task_timeout, f"sweeping {guest}")
            try:
                await self._destroy(guest, deadline)
            except ProviderError as exc:
                report.failed.append((guest, str(exc)))
            else:
                report.removed.append(guest)
        return report

    async def close(self) -> None:
        """Close the HTTP sessions; the guests keep running."""
        self.client.close()
