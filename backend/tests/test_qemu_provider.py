"""The qemu provider's bookkeeping, run against fakes of QEMU and qemu-img (fake_qemu.py,
fake_qemu_img.py in this folder). They boot nothing: the integration tier proves the real thing;
these prove the provider's logic (files, state, the stop ladder, hot-plug handshakes, errors)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from hangar.images.registry import Image, ImageKind, Registry
from hangar.providers.base import (
    Capability,
    MachineSpec,
    NotFoundError,
    Provider,
    ProviderError,
    UnsupportedError,
)
from hangar.providers.qemu import QemuProvider, accel, process
from hangar.providers.qemu.errors import GuestError, InvalidConfigError, LaunchError

HERE = Path(__file__).parent


def wrapper(directory: Path, name: str, script: str) -> str:
    path = directory / name
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / script}" "$@"\n')
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short on purpose: unix socket paths must fit in 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="hq-"))
    try:
        yield path
    finally:
        for qemu in process.scan():
            if qemu.pidfile is not None and str(path) in str(qemu.pidfile):
                os.kill(qemu.pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture
async def provider(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[QemuProvider]:
    monkeypatch.setenv("HANGAR_QEMU_ACCEL", "tcg")
    tools = data_dir / "bin"
    tools.mkdir()
    kernel = data_dir / "vmlinux"
    kernel.write_bytes(b"\x7fELF fake kernel")
    (data_dir / "initrd").write_bytes(b"070701")
    Registry(data_dir).save(
        Image(
            name="tiny",
            kind=ImageKind.KERNEL,
            kernel=kernel,
            initrd=data_dir / "initrd",
            cmdline="console=ttyS0",
            ready_pattern="HANGAR-READY",
            control_console=True,
        )
    )
    qemu = QemuProvider(
        data_dir,
        qemu=wrapper(tools, "qemu-system-x86_64", "fake_qemu.py"),
        qemu_img_tool=wrapper(tools, "qemu-img", "fake_qemu_img.py"),
        boot_timeout=10,
        # The stubborn-guest and stuck-unplug tests wait these out for real: short, with room
        # for a loaded machine (the fake answers in milliseconds).
        poweroff_timeout=1,
        unplug_timeout=0.5,
        quit_timeout=1,
    )
    yield qemu
    await qemu.close()


def spec(key: str = "m1", name: str = "web-1", image: str = "tiny") -> MachineSpec:
    return MachineSpec(key, name, image, 1, 128, {"team": "a"})


pytestmark = pytest.mark.asyncio


async def test_it_implements_the_protocol(provider: QemuProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.capabilities == frozenset(Capability)
    assert await provider.images() == ["tiny"]


async def test_lifecycle(provider: QemuProvider) -> None:
    await provider.create(spec())
    assert (await provider.runtime("m1")) is not None
    assert not (await provider.runtime("m1")).running  # type: ignore[union-attr]

    runtime = await provider.start("m1")
    assert runtime.running
    assert runtime.endpoint == "http://127.0.0.1:40080"
    assert runtime.labels == {"team": "a"}
    assert await provider.start("m1") == runtime  # already running: nothing happens
    assert "HANGAR-READY web-1" in await provider.console("m1")

    result = await provider.exec("m1", "echo out; echo err >&2; exit 3")
    assert (result.exit_status, result.output) == (3, "out\nerr\n")

    restarted = await provider.restart("m1")
    assert restarted.pid != runtime.pid

    await provider.stop("m1")
    assert not (await provider.runtime("m1")).running  # type: ignore[union-attr]
    assert not provider.paths("m1").runtime.exists()
    await provider.stop("m1")  # stopping a stopped machine is fine
    assert [r.key for r in await provider.inventory()] == ["m1"]

    await provider.delete("m1")
    assert await provider.runtime("m1") is None
    assert not provider.paths("m1").directory.exists()
    await provider.delete("m1")


async def test_create_refuses_bad_input_and_leaves_nothing(provider: QemuProvider) -> None:
    with pytest.raises(InvalidConfigError, match="DNS label"):
        await provider.create(spec(name="Bad"))
    with pytest.raises(NotFoundError, match="no image 'nope'"):
        await provider.create(spec(image="nope"))
    with pytest.raises(InvalidConfigError, match="machine key"):
        await provider.create(spec(key="../x"))
    assert not provider.root.exists() or list(provider.root.iterdir()) == []
    await provider.create(spec())
    with pytest.raises(ProviderError, match="already exists"):
        await provider.create(spec())
    with pytest.raises(NotFoundError):
        await provider.start("unknown")


async def test_a_guest_panic_fails_the_start_with_the_log(
    provider: QemuProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_FAKE_QEMU_MODE", "panic")
    await provider.create(spec())
    with pytest.raises(LaunchError, match="Kernel panic") as failure:
        await provider.start("m1")
    assert "-kernel" in failure.value.argv
    assert not (await provider.runtime("m1")).running  # type: ignore[union-attr]
    mine = [q for q in process.scan() if q.pidfile == provider.paths("m1").pidfile]
    assert mine == []


async def test_an_unbootable_kernel_fails_with_qemus_words(
    provider: QemuProvider, data_dir: Path
) -> None:
    bad = data_dir / "bad-kernel"
    bad.write_text("not a kernel")
    Registry(data_dir).save(
        Image(name="bad", kind=ImageKind.KERNEL, kernel=bad, fallback_kernel=bad)
    )
    await provider.create(spec(image="bad"))
    with pytest.raises(LaunchError, match="invalid kernel header"):
        await provider.start("m1")
    assert not provider.paths("m1").pidfile.exists()


async def test_exec_needs_a_running_guest_with_a_control_console(
    provider: QemuProvider, data_dir: Path
) -> None:
    await provider.create(spec())
    with pytest.raises(ProviderError, match="not running"):
        await provider.exec("m1", "true")
    disk = data_dir / "base.qcow2"
    disk.write_text("{}")
    Registry(data_dir).save(Image(name="plain", kind=ImageKind.DISK, disk=disk))
    await provider.create(spec("m2", "plain", image="plain"))
    await provider.start("m2")
    with pytest.raises(UnsupportedError, match="no hangar control console"):
        await provider.exec("m2", "true")
    await provider.stop("m2")  # no control console: ACPI powerdown through QMP
    assert not (await provider.runtime("m2")).running  # type: ignore[union-attr]


async def test_stop_escalates_when_the_guest_ignores_poweroff(
    provider: QemuProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_FAKE_QEMU_MODE", "stubborn")
    # This guest ignores poweroff and quit however long one waits: only the kill ends it, so
    # the waits are short here (the kill comes whether or not `quit` got through in time).
    provider.poweroff_timeout, provider.quit_timeout = 0.1, 0.3
    await provider.create(spec())
    pid = (await provider.start("m1")).pid
    await provider.stop("m1")
    assert pid is not None
    assert process.read_cmdline(pid) is None
    assert not provider.paths("m1").qmp.exists()


async def test_kill_9_is_seen_and_start_recovers(provider: QemuProvider) -> None:
    await provider.create(spec())
    pid = (await provider.start("m1")).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    qemu = process.QemuProcess(pid, "m1", ())
    assert await process.wait_gone(qemu, 5)
    assert not (await provider.runtime("m1")).running  # type: ignore[union-attr]
    assert (await provider.start("m1")).running


async def test_start_sees_through_a_boot_whose_launcher_died(provider: QemuProvider) -> None:
    """A server killed while its machine booted leaves QEMU running without the runtime record
    (pid, port) that the end of a boot writes; start adopts that QEMU instead of calling it
    started without an endpoint, and boots no second one."""
    await provider.create(spec())
    booted = await provider.start("m1")
    provider.paths("m1").runtime.unlink()  # as if the launcher died before the guest was ready
    half = await provider.runtime("m1")
    assert half is not None
    assert (half.running, half.endpoint) == (True, None)
    adopted = await provider.start("m1")
    assert (adopted.pid, adopted.endpoint) == (booted.pid, booted.endpoint)
    assert provider.paths("m1").runtime.exists()


async def test_a_qemu_without_its_directory_is_reported_as_orphan(provider: QemuProvider) -> None:
    await provider.create(spec())
    pid = (await provider.start("m1")).pid
    for path in provider.paths("m1").directory.iterdir():
        if path.name != "qemu.pid":
            path.unlink() if path.is_file() or path.is_socket() else shutil.rmtree(path)
    (provider.paths("m1").record).unlink(missing_ok=True)
    orphans = [r for r in await provider.inventory() if r.labels.get("hangar.orphan")]
    assert [(r.key, r.pid) for r in orphans] == [("m1", pid)]
    await provider.delete("m1")
    assert [q for q in process.scan() if q.pid == pid] == []


async def test_disks_hot_plug_unplug_and_cold_plug(provider: QemuProvider) -> None:
    await provider.create(spec())
    with pytest.raises(InvalidConfigError, match="size_mb"):
        await provider.create_disk("m1", "d1", 0)
    await provider.create_disk("m1", "d1", 16)
    with pytest.raises(ProviderError, match="already has a disk"):
        await provider.create_disk("m1", "d1", 16)
    await provider.attach_disk("m1", "d1")  # stopped: goes on the command line at start
    await provider.attach_disk("m1", "d1")  # idempotent
    pid = (await provider.start("m1")).pid
    argv = process.read_cmdline(pid or 0) or ()
    assert "virtio-blk-pci,drive=data1,id=vdisk1,bus=hp1" in argv

    await provider.create_disk("m1", "d2", 8)
    await provider.attach_disk("m1", "d2")  # running: hot-plugged on the next free port
    record = provider._record("m1")
    assert (record.disks["d1"].slot, record.disks["d2"].slot) == (1, 2)
    with pytest.raises(ProviderError, match="detach it first"):
        await provider.delete_disk("m1", "d2")

    await provider.detach_disk("m1", "d2")
    await provider.detach_disk("m1", "d2")  # idempotent
    await provider.delete_disk("m1", "d2")
    assert not provider.paths("m1").disk("d2").exists()
    with pytest.raises(NotFoundError, match="no disk 'd2'"):
        await provider.attach_disk("m1", "d2")


async def test_all_hotplug_ports_in_use(provider: QemuProvider) -> None:
    await provider.create(spec())
    for index in range(5):
        await provider.create_disk("m1", f"d{index}", 1)
    for index in range(4):
        await provider.attach_disk("m1", f"d{index}")
    with pytest.raises(ProviderError, match="already has 4 disks attached"):
        await provider.attach_disk("m1", "d4")


async def test_a_disk_the_guest_does_not_release_stays_attached(
    provider: QemuProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_FAKE_QEMU_MODE", "no-unplug")
    provider.unplug_timeout = 0.1  # DEVICE_DELETED never comes: any wait is waited out in full
    await provider.create(spec())
    await provider.create_disk("m1", "d1", 4)
    await provider.start("m1")
    await provider.attach_disk("m1", "d1")
    with pytest.raises(GuestError, match=r"did not release disk 'd1'.*stays attached"):
        await provider.detach_disk("m1", "d1")
    assert provider._record("m1").disks["d1"].attached
    # A retry meets QEMU's "already in the process of unplug" and waits again, same outcome.
    with pytest.raises(GuestError, match="stays attached"):
        await provider.detach_disk("m1", "d1")
    assert provider._record("m1").disks["d1"].attached


async def test_snapshots(provider: QemuProvider) -> None:
    await provider.create(spec())
    await provider.create_disk("m1", "d1", 4)
    await provider.create_snapshot("m1", "s1")
    assert await provider.snapshots("m1") == ["s1"]
    with pytest.raises(ProviderError, match="already has a snapshot"):
        await provider.create_snapshot("m1", "s1")
    with pytest.raises(InvalidConfigError, match="snapshot name"):
        await provider.create_snapshot("m1", "bad name")
    await provider.rollback_snapshot("m1", "s1")
    with pytest.raises(NotFoundError, match="no snapshot 'nope'"):
        await provider.rollback_snapshot("m1", "nope")

    await provider.start("m1")
    with pytest.raises(ProviderError, match="is running; a rollback needs it stopped"):
        await provider.rollback_snapshot("m1", "s1")
    await provider.stop("m1")
    await provider.delete_snapshot("m1", "s1")
    assert await provider.snapshots("m1") == []


async def test_clone_copies_the_system_disk(provider: QemuProvider) -> None:
    await provider.create(spec())
    source_disk = provider.paths("m1").system_disk
    source_disk.write_text(source_disk.read_text().replace('"data": ""', '"data": "written"'))
    await provider.clone("m1", spec("m2", "copy"))
    assert '"data": "written"' in provider.paths("m2").system_disk.read_text()
    with pytest.raises(ProviderError, match="already exists"):
        await provider.clone("m1", spec("m2", "copy"))
    await provider.start("m1")
    with pytest.raises(ProviderError, match="is running; clone needs it stopped"):
        await provider.clone("m1", spec("m3", "copy3"))
    assert not provider.paths("m3").directory.exists()


async def test_accelerator_probe_and_cache(
    provider: QemuProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HANGAR_QEMU_ACCEL")
    image = Registry(provider.data_dir).get("tiny")
    verdict = await accel.probe_kvm(provider.qemu, image)
    assert verdict.name == "kvm"
    assert "booted" in verdict.reason
    monkeypatch.setenv("HANGAR_FAKE_QEMU_MODE", "panic")
    assert (await accel.probe_kvm(provider.qemu, image)).name == "tcg"
    plain = Image(name="d", kind=ImageKind.DISK, disk=Path("/x"))
    assert "not a kernel image" in (await accel.probe_kvm(provider.qemu, plain)).reason

    monkeypatch.setattr(accel, "kvm_usable", lambda: "/dev/kvm does not exist")
    chosen = await accel.choose(provider.data_dir, provider.qemu, "7.2", image)
    assert chosen == accel.Accelerator("tcg", "/dev/kvm does not exist")
    assert accel.cached(provider.data_dir) == chosen
    monkeypatch.setattr(accel, "kvm_usable", lambda: None)  # cached: no new probe
    assert await accel.choose(provider.data_dir, provider.qemu, "7.2", image) == chosen
    assert await provider.qemu_version() == "7.2.0"
