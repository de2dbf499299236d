"""The proxmox provider against fakepve (a fake Proxmox VE API): the life of a VM and of a
container, disks, snapshots, clones, exec, what each kind can do, how the guests are marked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hangar.providers.base import (
    Capability,
    DiskInventory,
    NotFoundError,
    Placement,
    Provider,
    ProviderError,
    UnsupportedError,
)
from hangar.providers.proxmox.guests import KIND_CAPABILITIES, GuestKind, dns_name, parse_image
from hangar.providers.proxmox.provider import ProxmoxProvider

from .fakepve_support import (
    CT_IMAGE,
    OSTEMPLATE,
    RUN_ID,
    STORAGE,
    VM_IMAGE,
    FakePve,
    fake_provider,
    only_guest,
    requests_to,
    seed,
    spec,
    tags_of,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def provider(fakepve: FakePve, fakepve_cafile: str) -> AsyncIterator[ProxmoxProvider]:
    async with fake_provider(seed(fakepve), fakepve_cafile) as made:
        yield made


async def test_implements_the_protocol_and_its_optional_parts(provider: ProxmoxProvider) -> None:
    assert isinstance(provider, Provider)
    assert isinstance(provider, DiskInventory)
    assert isinstance(provider, Placement)
    assert provider.name == "proxmox"


async def test_each_kind_has_its_capabilities_and_the_provider_their_union(
    provider: ProxmoxProvider,
) -> None:
    assert provider.capabilities_for(VM_IMAGE) == {
        Capability.DISKS,
        Capability.SNAPSHOTS,
        Capability.CLONE,
        Capability.EXEC,
    }
    assert provider.capabilities_for(CT_IMAGE) == {Capability.SNAPSHOTS, Capability.CLONE}
    assert (
        provider.capabilities
        == KIND_CAPABILITIES[GuestKind.QEMU] | KIND_CAPABILITIES[GuestKind.LXC]
    )
    assert Capability.CONSOLE not in provider.capabilities


async def test_images_are_template_vms_and_os_templates(provider: ProxmoxProvider) -> None:
    assert await provider.images() == [VM_IMAGE, CT_IMAGE]
    assert parse_image(CT_IMAGE).source == OSTEMPLATE
    for wrong in ("debian-12", "pve-vm:tpl", "pve-ct:", "pve-ct:no-storage"):
        with pytest.raises(ProviderError, match=r"use pve-vm:<template VMID> .* or pve-ct:<volid>"):
            parse_image(wrong)


async def test_the_life_of_a_vm(fakepve: FakePve, provider: ProxmoxProvider) -> None:
    await provider.create(spec("k1", name="Web 1!"))
    vm = only_guest(fakepve)
    assert vm.vmid in range(9000, 9100)
    assert tags_of(fakepve, vm.vmid) == {"hangar", f"run-{RUN_ID}", "key-k1"}
    assert vm.name == "web-1"  # a DNS name, as PVE wants
    assert (vm.config["cores"], vm.config["sockets"], vm.config["memory"]) == ("2", "1", "1024")
    assert "hangar-key: k1" in vm.config["description"]
    assert vm.config["scsi0"].startswith(f"{STORAGE}:vm-{vm.vmid}-disk-0")  # a full clone
    assert vm.status == "stopped"
    assert await provider.placement("k1") == {"kind": "qemu", "node": "pve1", "vmid": str(vm.vmid)}

    started = await provider.start("k1")
    assert started.running
    assert vm.status == "running"
    assert (await provider.start("k1")).running  # already running: nothing to do
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/status/start") == 1

    vm.agent = {"exec": {"/bin/sh -c uname -a": {"out-data": "Linux web-1\n", "exitcode": 0}}}
    result = await provider.exec("k1", "uname -a")
    assert (result.exit_status, result.output) == (0, "Linux web-1\n")
    assert vm.agent_requests[-2:] == [
        ("exec", {"command": ["/bin/sh", "-c", "uname -a"]}),
        ("exec-status", {"pid": vm.agent_pid}),
    ]

    rebooted = await provider.restart("k1")
    assert rebooted.running
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/status/reboot") == 1

    await provider.stop("k1")
    assert vm.status == "stopped"
    assert requests_to(fakepve, "POST", f"/qemu/{vm.vmid}/status/stop") == 0  # it shut down
    await provider.stop("k1")  # already stopped: nothing to do
    runtime = await provider.runtime("k1")
    assert runtime is not None
    assert not runtime.running
    assert "lock" not in runtime.labels
    fakepve.snapshot_lock(vm.vmid, "backup")
    locked = await provider.runtime("k1")
    assert locked is not None
    assert locked.labels["lock"] == "backup"
    fakepve.unlock(vm.vmid)
    assert (await provider.restart("k1")).running  # a stopped guest is started
    [listed] = await provider.inventory()
    assert (listed.key, listed.running, listed.labels["vmid"]) == ("k1", True, str(vm.vmid))

    await provider.create_disk("k1", "never-attached", 64)
    await provider.delete("k1")  # running: stopped hard first
    assert fakepve.guest(vm.vmid) is None
    assert await provider.runtime("k1") is None
    assert await provider.inventory() == []
    await provider.delete("k1")  # idempotent
    assert requests_to(fakepve, "DELETE", f"/qemu/{vm.vmid}") == 1
    [destroy] = [task for task in fakepve.tasklog if task["type"] == "qmdestroy"]
    assert any("purging VM" in line for line in destroy["log"])  # purge=1
    # destroy-unreferenced-disks=1: the disk that no config named went too.
    assert not any(f"vm-{vm.vmid}-" in name for name in fakepve.storages[STORAGE]["volumes"])


async def test_the_life_of_a_container(fakepve: FakePve, provider: ProxmoxProvider) -> None:
    await provider.create(spec("c1", CT_IMAGE, name="ct-1"))
    ct = only_guest(fakepve)
    assert ct in fakepve.cts
    assert ct.config["hostname"] == "ct-1"
    assert tags_of(fakepve, ct.vmid) == {"hangar", f"run-{RUN_ID}", "key-c1"}
    assert (ct.config["cores"], ct.config["memory"], ct.config["unprivileged"]) == (2, 1024, 1)
    assert ct.config["rootfs"].startswith(f"{STORAGE}:vm-{ct.vmid}-disk-0,size=8G")
    assert ct.config["net0"].startswith("name=eth0,bridge=vmbr0")
    assert await provider.placement("c1") == {"kind": "lxc", "node": "pve1", "vmid": str(ct.vmid)}

    assert (await provider.start("c1")).running
    assert ct.status == "running"
    with pytest.raises(UnsupportedError, match="no guest-exec for containers"):
        await provider.exec("c1", "true")
    assert (await provider.restart("c1")).running
    await provider.stop("c1")
    assert ct.status == "stopped"

    await provider.create_snapshot("c1", "before")
    assert await provider.snapshots("c1") == ["before"]
    await provider.rollback_snapshot("c1", "before")
    await provider.delete_snapshot("c1", "before")
    assert await provider.snapshots("c1") == []

    await provider.clone("c1", spec("c2", CT_IMAGE, name="ct-2"))
    copy = next(c for c in fakepve.cts if c.vmid != ct.vmid)
    assert copy.config["hostname"] == "ct-2"
    assert tags_of(fakepve, copy.vmid) == {"hangar", f"run-{RUN_ID}", "key-c2"}

    await provider.delete("c1")
    await provider.delete("c2")
    assert fakepve.cts == []


async def test_containers_have_no_disks(provider: ProxmoxProvider) -> None:
    await provider.create(spec("c1", CT_IMAGE))
    with pytest.raises(UnsupportedError, match="mount point only when it is attached"):
        await provider.create_disk("c1", "d1", 64)


async def test_vm_disks_are_named_volumes_attached_through_the_config(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    await provider.create(spec("k1"))
    vm = only_guest(fakepve)
    volid = f"{STORAGE}:vm-{vm.vmid}-hangar-d1"

    await provider.create_disk("k1", "d1", 512)
    volume = fakepve.storages[STORAGE]["volumes"][f"vm-{vm.vmid}-hangar-d1"]
    assert (volume["size"], volume["vmid"]) == (512 * 1024**2, vm.vmid)
    assert await provider.disk_inventory() == {"k1": {"d1"}}
    with pytest.raises(ProviderError, match="already has a disk 'd1'"):
        await provider.create_disk("k1", "d1", 512)

    await provider.attach_disk("k1", "d1")
    assert vm.config["scsi1"].startswith(volid)
    await provider.attach_disk("k1", "d1")  # already attached: nothing to do
    with pytest.raises(ProviderError, match=r"attached to VM .*; detach it first"):
        await provider.delete_disk("k1", "d1")
    await provider.resize_disk("k1", "d1", 1024)
    assert requests_to(fakepve, "PUT", f"/qemu/{vm.vmid}/resize") == 1

    await provider.detach_disk("k1", "d1")
    assert "scsi1" not in vm.config
    await provider.detach_disk("k1", "d1")  # already detached: nothing to do
    with pytest.raises(ProviderError, match="must be attached"):
        await provider.resize_disk("k1", "d1", 2048)
    await provider.delete_disk("k1", "d1")
    assert f"vm-{vm.vmid}-hangar-d1" not in fakepve.storages[STORAGE]["volumes"]
    assert await provider.disk_inventory() == {"k1": set()}
    with pytest.raises(NotFoundError, match="has no disk 'd1'"):
        await provider.attach_disk("k1", "d1")
    for wrong_size in (0, 64 * 1024 * 1024 + 1):
        with pytest.raises(ProviderError, match="disk size_mb must be"):
            await provider.create_disk("k1", "d2", wrong_size)
    with pytest.raises(ProviderError, match=r"disk key 'a\.b' must be"):
        await provider.create_disk("k1", "a.b", 1)


async def test_a_detached_disk_left_as_unused_is_freed_through_the_config(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    # Real PVE keeps a detached disk as `unusedN`; deleting that entry frees the volume.
    await provider.create(spec("k1"))
    vm = only_guest(fakepve)
    await provider.create_disk("k1", "d1", 64)
    vm.config["unused0"] = f"{STORAGE}:vm-{vm.vmid}-hangar-d1"
    await provider.attach_disk("k1", "d1")
    assert "unused0" not in vm.config
    vm.config["unused0"] = vm.config.pop("scsi1").split(",")[0]
    await provider.delete_disk("k1", "d1")
    assert "unused0" not in vm.config


async def test_vm_snapshots_and_clones(fakepve: FakePve, provider: ProxmoxProvider) -> None:
    await provider.create(spec("k1"))
    vm = only_guest(fakepve)
    await provider.create_snapshot("k1", "clean")
    await provider.create_snapshot("k1", "later-1")
    assert await provider.snapshots("k1") == ["clean", "later-1"]
    with pytest.raises(ProviderError, match="already has a snapshot 'clean'"):
        await provider.create_snapshot("k1", "clean")
    await provider.rollback_snapshot("k1", "clean")
    assert vm.config["parent"] == "clean"
    await provider.delete_snapshot("k1", "later-1")
    with pytest.raises(NotFoundError, match="has no snapshot 'later-1'"):
        await provider.rollback_snapshot("k1", "later-1")
    for wrong in ("current", "x", "1st", "with space", "a" * 41):
        with pytest.raises(ProviderError, match="is not allowed by Proxmox"):
            await provider.create_snapshot("k1", wrong)

    await provider.clone("k1", spec("k2", name="web-2"))
    copy = next(v for v in fakepve.vms if v.vmid not in (100, vm.vmid))
    # The clone got its own tags, though PVE copied its source's at first.
    assert tags_of(fakepve, copy.vmid) == {"hangar", f"run-{RUN_ID}", "key-k2"}
    assert copy.name == "web-2"
    assert {r.key for r in await provider.inventory()} == {"k1", "k2"}
    with pytest.raises(ProviderError, match="already has a guest tagged as machine 'k2'"):
        await provider.clone("k1", spec("k2"))


async def test_a_clone_still_carrying_its_sources_tags_is_told_apart_by_its_description(
    fakepve: FakePve, provider: ProxmoxProvider
) -> None:
    await provider.create(spec("k1"))
    await provider.clone("k1", spec("k2", name="web-2"))
    source, copy = sorted((v for v in fakepve.vms if v.vmid != 100), key=lambda v: v.name)
    copy.config["tags"] = source.config["tags"]  # as between PVE's clone and the provider's tags
    [first] = [r for r in await provider.inventory() if r.key == "k1"]
    assert first.labels["vmid"] == str(source.vmid)
    runtime = await provider.runtime("k1")
    assert runtime is not None
    assert runtime.labels["vmid"] == str(source.vmid)
    copy.config["description"] = source.config["description"]
    with pytest.raises(ProviderError, match="several guests are marked as machine 'k1'"):
        await provider.runtime("k1")


async def test_unknown_machines_and_names(provider: ProxmoxProvider) -> None:
    with pytest.raises(NotFoundError, match="no guest tagged as machine 'nope'"):
        await provider.start("nope")
    with pytest.raises(NotFoundError):
        await provider.placement("nope")
    assert await provider.runtime("nope") is None
    with pytest.raises(ProviderError, match="cannot be a Proxmox tag"):
        await provider.create(spec("Upper Case"))
    with pytest.raises(UnsupportedError, match="does not read consoles"):
        await provider.console("nope")
    assert dns_name("Web_1 (test)", 9001) == "web-1-test"
    assert dns_name("***", 9001) == "hangar-9001"
