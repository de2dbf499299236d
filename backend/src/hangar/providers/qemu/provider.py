"""The `qemu` provider: each machine is a daemonized QEMU with its own directory.

Directory of machine KEY (`<data dir>/qemu/machines/KEY/`): machine.json, system.qcow2 (the
machine's system disk: an overlay on the image's disk, or a blank disk for kernel images),
disks/*.qcow2, and while running qemu.pid, qmp.sock, control.sock, runtime.json; serial.log
keeps the last boot's console.

Clone copies the source's system disk (`qemu-img convert`, sharing only the image's read-only
base) instead of making a linked clone backed by the source's overlay: a linked clone would see
every later write of the source through its backing file, silently corrupting the clone's view
of its own disk, and would pin the source's overlay forever. The copy holds only what the source
wrote, so for the tiny image it costs a few MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import re
import shutil
import time
from collections.abc import Mapping, Sequence, Set
from pathlib import Path

from hangar.images.registry import Image, ImageError, ImageKind, Registry, default_data_dir
from hangar.providers.base import (
    Capability,
    ExecResult,
    MachineSpec,
    NotFoundError,
    ProviderError,
    Runtime,
    UnsupportedError,
)
from hangar.providers.qemu import accel, console, monitor, process, qemu_img
from hangar.providers.qemu.cmdline import (
    HOTPLUG_PORTS,
    DataDisk,
    LaunchConfig,
    Paths,
    blockdev_add_arguments,
    build_argv,
    check_key,
    check_name,
    check_resources,
    check_snapshot_name,
    device_add_arguments,
)
from hangar.providers.qemu.errors import GuestError, InvalidConfigError, LaunchError, MonitorError
from hangar.providers.qemu.store import (
    DiskRecord,
    MachineRecord,
    RuntimeRecord,
    load_machine,
    load_runtime,
    save_machine,
    save_runtime,
)

DISK_MB = range(1, 65537)


class QemuNotFoundError(ProviderError):
    """QEMU or qemu-img is not installed."""


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise QemuNotFoundError(
            f"{name} not found on PATH; install it with "
            "`apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils`"
        )
    return path


class QemuProvider:
    """Machines as local QEMU processes (see the module docstring for the on-disk layout)."""

    name = "qemu"
    capabilities = frozenset(Capability)

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        qemu: str | None = None,
        qemu_img_tool: str | None = None,
        boot_timeout: float = 120.0,
        poweroff_timeout: float = 10.0,
        unplug_timeout: float = 20.0,
        quit_timeout: float = 5.0,
    ) -> None:
        self.data_dir = data_dir or default_data_dir()
        self.root = self.data_dir / "qemu" / "machines"
        self.registry = Registry(self.data_dir)
        self._qemu = qemu
        self._qemu_img = qemu_img_tool
        self.boot_timeout = boot_timeout
        self.poweroff_timeout = poweroff_timeout
        self.unplug_timeout = unplug_timeout
        self.quit_timeout = quit_timeout
        self._locks: dict[str, asyncio.Lock] = {}
        self._exec_locks: dict[str, asyncio.Lock] = {}
        self._accel_lock = asyncio.Lock()
        self._accelerator: accel.Accelerator | None = None

    # -- helpers -----------------------------------------------------------------------
    @property
    def qemu(self) -> str:
        self._qemu = self._qemu or find_tool("qemu-system-x86_64")
        return self._qemu

    @property
    def qemu_img(self) -> str:
        self._qemu_img = self._qemu_img or find_tool("qemu-img")
        return self._qemu_img

    def paths(self, key: str) -> Paths:
        return Paths(self.root / check_key("machine key", key))

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _record(self, key: str) -> MachineRecord:
        return load_machine(self.paths(key).record, key)

    def _image(self, name: str) -> Image:
        try:
            image = self.registry.get(name)
        except ImageError as exc:
            raise NotFoundError(str(exc)) from exc
        missing = image.missing_files()
        if missing:
            raise ProviderError(
                f"image {name!r} is registered but its files are missing: "
                f"{[str(p) for p in missing]}; rebuild or register it again"
            )
        return image

    async def qemu_version(self) -> str:
        done = await process.run([self.qemu, "--version"], 10)
        first = done.stdout.decode(errors="replace").splitlines()[:1] or ["unknown"]
        match = re.search(r"version (\S+)", first[0])
        return match[1] if match else first[0]

    async def accelerator(self, image: Image) -> accel.Accelerator:
        async with self._accel_lock:  # concurrent first starts share one probe
            if self._accelerator is None:
                probe_image = image
                if image.kind is not ImageKind.KERNEL and "tiny" in self.registry.names():
                    probe_image = self.registry.get("tiny")
                version = await self.qemu_version()
                self._accelerator = await accel.choose(
                    self.data_dir, self.qemu, version, probe_image
                )
            return self._accelerator

    # -- images and lifecycle ------------------------------------------------------------
    async def images(self) -> Sequence[str]:
        return [image.name for image in self.registry.all() if not image.missing_files()]

    async def create(self, spec: MachineSpec) -> None:
        check_name(spec.name)
        check_resources(spec.cpus, spec.memory_mb)
        paths = self.paths(spec.key)
        image = self._image(spec.image)
        async with self._lock(spec.key):
            try:
                paths.directory.mkdir(parents=True, exist_ok=False)
            except FileExistsError:
                raise ProviderError(f"qemu machine {spec.key!r} already exists") from None
            try:
                await self._create_system_disk(image, paths.system_disk)
                paths.disks.mkdir()
                save_machine(paths.record, MachineRecord.from_spec(spec))
            except BaseException:
                shutil.rmtree(paths.directory, ignore_errors=True)  # create leaves nothing behind
                raise

    async def _create_system_disk(self, image: Image, path: Path) -> None:
        if image.kind is ImageKind.DISK:
            await qemu_img.create(self.qemu_img, path, None, backing=image.disk)
        else:
            await qemu_img.create(self.qemu_img, path, image.disk_mb)

    async def start(self, key: str) -> Runtime:
        async with self._lock(key):
            record = self._record(key)
            paths = self.paths(key)
            booted = process.running(paths.pidfile, key)
            if booted is not None and load_runtime(paths.runtime) is not None:
                return self._runtime(record, paths)
            image = self._image(record.image)
            accelerator = await self.accelerator(image)
            disks = [
                DataDisk(disk.slot, paths.disk(disk_key))
                for disk_key, disk in sorted(record.disks.items())
                if disk.attached and disk.slot is not None
            ]
            config = LaunchConfig(
                key=key,
                name=record.name,
                cpus=record.cpus,
                memory_mb=record.memory_mb,
                accel=accelerator.name,
                image=image,
                paths=paths,
                data_disks=disks,
            )
            if booted is not None:
                # QEMU runs but its boot was never seen through (the process that launched it,
                # a server, was killed meanwhile): see it through now, as the launcher would have.
                kernel = _option(booted.argv, "-kernel")
                on_fallback = image.fallback_kernel is not None and kernel == str(
                    image.fallback_kernel
                )
                adopted = dataclasses.replace(config, use_fallback_kernel=on_fallback)
                return await self._see_boot_through(record, adopted, time.monotonic())
            try:
                return await self._boot(record, config)
            except LaunchError as first:
                if image.fallback_kernel is None or not _kernel_may_be_at_fault(first):
                    raise
                # The PVH vmlinux may not boot on every QEMU; the bzImage always does.
                fallback = dataclasses.replace(config, use_fallback_kernel=True)
                return await self._boot(record, fallback)

    async def _boot(self, record: MachineRecord, config: LaunchConfig) -> Runtime:
        paths = config.paths
        argv = build_argv(self.qemu, config)
        self._clear_runtime_files(paths)
        launch_log = paths.directory / "qemu-launch.log"
        launch_log.unlink(missing_ok=True)
        started = time.monotonic()
        try:
            await process.launch(argv, within=30.0, log=launch_log)
        except LaunchError as exc:
            # A daemon that started after all (a slow launch) must not outlive the failure.
            await self._power_off(record, paths, graceful=False)
            raise LaunchError(exc.reason, argv, self._logs(paths)) from exc
        return await self._see_boot_through(record, config, started)

    async def _see_boot_through(
        self, record: MachineRecord, config: LaunchConfig, started: float
    ) -> Runtime:
        """Wait for the launched guest's readiness line, then record its runtime (pid, port);
        a guest that fails or does not get ready is powered off (LaunchError with its logs)."""
        paths = config.paths
        argv = build_argv(self.qemu, config)
        image = config.image
        try:
            if image.ready_pattern is not None:
                match = await console.wait_for_console(
                    paths.serial_log,
                    re.compile(image.ready_pattern),
                    re.compile(image.failure_pattern),
                    self.boot_timeout,
                    lambda: process.running(paths.pidfile, config.key) is not None,
                )
                if not match.ready:
                    raise LaunchError(match.line, argv, self._logs(paths))
            qemu = process.running(paths.pidfile, config.key)
            if qemu is None:
                raise LaunchError("QEMU is not running after boot", argv, self._logs(paths))
            async with monitor.session(paths.qmp) as mon:
                port = monitor.parse_usernet(await mon.hmp("info usernet"))
            save_runtime(
                paths.runtime,
                RuntimeRecord(
                    pid=qemu.pid,
                    port=port,
                    accelerator=config.accel,
                    kernel=str(
                        image.fallback_kernel if config.use_fallback_kernel else image.kernel
                    ),
                    boot_seconds=round(time.monotonic() - started, 3),
                ),
            )
        except BaseException:
            await self._power_off(record, paths, graceful=False)
            raise
        return self._runtime(record, paths)

    def _logs(self, paths: Paths) -> str:
        launch = console.tail(paths.directory / "qemu-launch.log", 50)
        return "\n".join(part for part in (launch, console.tail(paths.serial_log, 100)) if part)

    def _clear_runtime_files(self, paths: Paths) -> None:
        for path in (paths.pidfile, paths.qmp, paths.control, paths.runtime):
            path.unlink(missing_ok=True)

    async def stop(self, key: str) -> None:
        async with self._lock(key):
            await self._power_off(self._record(key), self.paths(key), graceful=True)

    async def restart(self, key: str) -> Runtime:
        """Stop (the full ladder), then start."""
        await self.stop(key)
        return await self.start(key)

    async def _power_off(self, record: MachineRecord, paths: Paths, graceful: bool) -> None:
        """Guest poweroff, then QMP quit, then kill; each with a deadline; cleanup always runs."""
        qemu = process.running(paths.pidfile, record.key)
        try:
            if qemu is None:
                return
            if (
                graceful
                and await self._ask_guest_to_power_off(record, paths)
                and await process.wait_gone(qemu, self.poweroff_timeout)
            ):
                return
            with contextlib.suppress(MonitorError):
                async with monitor.session(paths.qmp, within=self.quit_timeout) as mon:
                    with contextlib.suppress(MonitorError):
                        await mon.execute("quit", within=self.quit_timeout)
            if await process.wait_gone(qemu, self.quit_timeout):
                return
            await process.kill(qemu)
        finally:
            self._clear_runtime_files(paths)

    async def _ask_guest_to_power_off(self, record: MachineRecord, paths: Paths) -> bool:
        image = self.registry.get(record.image) if record.image in self.registry.names() else None
        if image is not None and image.control_console:
            return await console.send_only(paths.control, "sync; poweroff -f")
        try:
            async with monitor.session(paths.qmp, within=5.0) as mon:
                await mon.execute("system_powerdown")  # ACPI button: the guest's OS decides
        except MonitorError:
            return False
        return True

    async def delete(self, key: str) -> None:
        paths = self.paths(key)
        async with self._lock(key):
            if paths.record.exists():
                await self._power_off(self._record(key), paths, graceful=False)
            for orphan in process.scan():
                if (
                    orphan.key == key
                    and orphan.pidfile is not None
                    and orphan.pidfile.parent == paths.directory
                ):
                    await process.kill(orphan)
            shutil.rmtree(paths.directory, ignore_errors=True)
            if paths.directory.exists():
                raise ProviderError(f"could not remove {paths.directory}; check its permissions")
        self._locks.pop(key, None)
        self._exec_locks.pop(key, None)

    # -- observation ---------------------------------------------------------------------
    def _runtime(self, record: MachineRecord, paths: Paths) -> Runtime:
        qemu = process.running(paths.pidfile, record.key)
        if qemu is None:
            return Runtime(key=record.key, running=False, labels=dict(record.labels))
        info = load_runtime(paths.runtime)
        endpoint = f"http://127.0.0.1:{info.port}" if info and info.port else None
        return Runtime(record.key, True, endpoint, qemu.pid, dict(record.labels))

    async def runtime(self, key: str) -> Runtime | None:
        paths = self.paths(key)
        try:
            record = self._record(key)
        except NotFoundError:
            return None
        return self._runtime(record, paths)

    async def inventory(self) -> Sequence[Runtime]:
        found: list[Runtime] = []
        known: set[str] = set()
        if self.root.is_dir():
            for directory in sorted(self.root.iterdir()):
                with contextlib.suppress(NotFoundError, InvalidConfigError):
                    found.append(
                        self._runtime(self._record(directory.name), self.paths(directory.name))
                    )
                    known.add(directory.name)
        for orphan in process.scan():
            pidfile = orphan.pidfile
            if orphan.key in known or pidfile is None or pidfile.parent.parent != self.root:
                continue
            # A QEMU of ours whose directory is gone: report it so the observer can flag it.
            found.append(Runtime(orphan.key, True, None, orphan.pid, {"hangar.orphan": "true"}))
        return found

    async def disk_inventory(self) -> Mapping[str, Set[str]]:
        """The optional `DiskInventory` addition: the `disks/*.qcow2` files of every machine
        directory (a directory without machine.json too: its files are drift as well)."""
        found: dict[str, frozenset[str]] = {}
        if self.root.is_dir():
            for directory in sorted(self.root.iterdir()):
                if directory.is_dir():
                    disks = Paths(directory).disks
                    found[directory.name] = frozenset(p.stem for p in disks.glob("*.qcow2"))
        return found

    # -- disks ---------------------------------------------------------------------------
    async def create_disk(self, key: str, disk_key: str, size_mb: int) -> None:
        if size_mb not in DISK_MB:
            raise InvalidConfigError(f"disk size_mb must be 1-{DISK_MB.stop - 1}, got {size_mb}")
        async with self._lock(key):
            record = self._record(key)
            paths = self.paths(key)
            path = paths.disk(disk_key)
            if disk_key in record.disks or path.exists():
                raise ProviderError(f"machine {key!r} already has a disk {disk_key!r}")
            try:
                await qemu_img.create(self.qemu_img, path, size_mb)
                record.disks[disk_key] = DiskRecord(size_mb)
                save_machine(paths.record, record)
            except BaseException:
                path.unlink(missing_ok=True)
                raise

    def _disk(self, record: MachineRecord, disk_key: str) -> DiskRecord:
        check_key("disk", disk_key)
        try:
            return record.disks[disk_key]
        except KeyError:
            raise NotFoundError(f"machine {record.key!r} has no disk {disk_key!r}") from None

    async def attach_disk(self, key: str, disk_key: str) -> None:
        async with self._lock(key):
            record = self._record(key)
            paths = self.paths(key)
            disk = self._disk(record, disk_key)
            if disk.attached:
                return
            used = {d.slot for d in record.disks.values() if d.attached}
            free = [slot for slot in range(1, HOTPLUG_PORTS + 1) if slot not in used]
            if not free:
                raise ProviderError(
                    f"machine {key!r} already has {HOTPLUG_PORTS} disks attached; detach one first"
                )
            data_disk = DataDisk(free[0], paths.disk(disk_key))
            if process.running(paths.pidfile, key) is not None:
                await self._hot_plug(paths, data_disk)
            disk.attached, disk.slot = True, data_disk.slot
            save_machine(paths.record, record)

    async def _hot_plug(self, paths: Paths, disk: DataDisk) -> None:
        async with monitor.session(paths.qmp) as mon:
            await mon.execute("blockdev-add", blockdev_add_arguments(disk))
            try:
                await mon.execute("device_add", device_add_arguments(disk))
            except MonitorError:
                with contextlib.suppress(MonitorError):
                    await mon.execute("blockdev-del", {"node-name": disk.node_name})
                raise

    async def detach_disk(self, key: str, disk_key: str) -> None:
        async with self._lock(key):
            record = self._record(key)
            paths = self.paths(key)
            disk = self._disk(record, disk_key)
            if not disk.attached:
                return
            if process.running(paths.pidfile, key) is not None and disk.slot is not None:
                await self._hot_unplug(paths, DataDisk(disk.slot, paths.disk(disk_key)), disk_key)
            disk.attached, disk.slot = False, None
            save_machine(paths.record, record)

    async def _hot_unplug(self, paths: Paths, disk: DataDisk, disk_key: str) -> None:
        async with monitor.session(paths.qmp) as mon:
            listener = mon.listen("DEVICE_DELETED")
            try:
                try:
                    await mon.execute("device_del", {"id": disk.device_id})
                except MonitorError as exc:
                    if not _unplug_pending(exc):
                        raise
                event = await mon.wait_event(
                    listener, self.unplug_timeout, match={"device": disk.device_id}
                )
            finally:
                mon.forget(listener)
            if event is None:
                raise GuestError(
                    f"the guest did not release disk {disk_key!r} within "
                    f"{self.unplug_timeout:.0f}s; it stays attached (is it mounted?)"
                )
            await mon.execute("blockdev-del", {"node-name": disk.node_name})

    async def delete_disk(self, key: str, disk_key: str) -> None:
        async with self._lock(key):
            record = self._record(key)
            paths = self.paths(key)
            disk = self._disk(record, disk_key)
            if disk.attached:
                raise ProviderError(f"disk {disk_key!r} is attached to {key!r}; detach it first")
            paths.disk(disk_key).unlink(missing_ok=True)
            del record.disks[disk_key]
            save_machine(paths.record, record)

    # -- snapshots (internal qcow2 snapshots of the system disk and every data disk) -----
    def _files(self, record: MachineRecord, paths: Paths) -> list[Path]:
        return [paths.system_disk, *(paths.disk(k) for k in sorted(record.disks))]

    def _require_stopped(self, key: str, paths: Paths, action: str) -> None:
        if process.running(paths.pidfile, key) is not None:
            raise ProviderError(
                f"machine {key!r} is running; {action} needs it stopped (qcow2 internal "
                "snapshots cannot be taken or applied while QEMU has the disks open)"
            )

    async def create_snapshot(self, key: str, name: str) -> None:
        check_snapshot_name(name)
        async with self._lock(key):
            record, paths = self._record(key), self.paths(key)
            self._require_stopped(key, paths, "a snapshot")
            if name in await qemu_img.snapshots(self.qemu_img, paths.system_disk):
                raise ProviderError(f"machine {key!r} already has a snapshot {name!r}")
            done: list[Path] = []
            try:
                for path in self._files(record, paths):
                    await qemu_img.snapshot(self.qemu_img, "-c", name, path)
                    done.append(path)
            except BaseException:
                for path in done:  # all disks or none
                    with contextlib.suppress(ProviderError):
                        await qemu_img.snapshot(self.qemu_img, "-d", name, path)
                raise

    async def _snapshot_files(self, record: MachineRecord, paths: Paths, name: str) -> list[Path]:
        check_snapshot_name(name)
        files = [
            path
            for path in self._files(record, paths)
            if name in await qemu_img.snapshots(self.qemu_img, path)
        ]
        if paths.system_disk not in files:
            raise NotFoundError(f"machine {record.key!r} has no snapshot {name!r}")
        return files

    async def rollback_snapshot(self, key: str, name: str) -> None:
        async with self._lock(key):
            record, paths = self._record(key), self.paths(key)
            self._require_stopped(key, paths, "a rollback")
            for path in await self._snapshot_files(record, paths, name):
                await qemu_img.snapshot(self.qemu_img, "-a", name, path)

    async def delete_snapshot(self, key: str, name: str) -> None:
        async with self._lock(key):
            record, paths = self._record(key), self.paths(key)
            self._require_stopped(key, paths, "deleting a snapshot")
            for path in await self._snapshot_files(record, paths, name):
                await qemu_img.snapshot(self.qemu_img, "-d", name, path)

    async def snapshots(self, key: str) -> list[str]:
        """Snapshot names of the machine's system disk (an addition to the protocol)."""
        paths = self.paths(key)
        self._record(key)
        return await qemu_img.snapshots(self.qemu_img, paths.system_disk)

    # -- clone ---------------------------------------------------------------------------
    async def clone(self, source_key: str, spec: MachineSpec) -> None:
        check_name(spec.name)
        check_resources(spec.cpus, spec.memory_mb)
        source, source_paths = self._record(source_key), self.paths(source_key)
        paths = self.paths(spec.key)
        image = self._image(source.image)
        async with self._lock(source_key), self._lock(spec.key):
            self._require_stopped(source_key, source_paths, "clone")
            try:
                paths.directory.mkdir(parents=True, exist_ok=False)
            except FileExistsError:
                raise ProviderError(f"qemu machine {spec.key!r} already exists") from None
            try:
                backing = image.disk if image.kind is ImageKind.DISK else None
                await qemu_img.copy(
                    self.qemu_img, source_paths.system_disk, paths.system_disk, backing
                )
                paths.disks.mkdir()
                record = MachineRecord.from_spec(spec)
                record.image = source.image  # a clone boots what its source boots
                save_machine(paths.record, record)
            except BaseException:
                shutil.rmtree(paths.directory, ignore_errors=True)
                raise

    # -- exec and console ----------------------------------------------------------------
    async def exec(self, key: str, command: str, timeout: float = 30.0) -> ExecResult:  # noqa: ASYNC109 (the protocol names it)
        record, paths = self._record(key), self.paths(key)
        if process.running(paths.pidfile, key) is None:
            raise ProviderError(f"machine {key!r} is not running; exec needs a running guest")
        if not self._image(record.image).control_console:
            raise UnsupportedError(
                f"image {record.image!r} has no hangar control console, so exec is unavailable"
            )
        async with self._exec_locks.setdefault(key, asyncio.Lock()):
            return await console.exec_command(paths.control, command, timeout)

    async def console(self, key: str, lines: int = 100) -> str:
        self._record(key)
        return console.tail(self.paths(key).serial_log, lines)

    async def close(self) -> None:
        """Nothing to release: sessions are per operation and the VMs keep running."""


def _unplug_pending(error: MonitorError) -> bool:
    """QEMU refuses a second device_del while the guest has not answered the first; then the
    earlier request is still on its way and waiting for DEVICE_DELETED is the right thing."""
    text = str(error).lower()
    return "in the process of unplug" in text or "in progress" in text


# Signs that the kernel itself failed, so that booting the fallback kernel could help: QEMU
# refusing or failing to load it, a panic, an oops, no root file system, a kernel built for
# another CPU, a failed self-decompression. Case-sensitive and specific on purpose: every Linux
# console log says "kernel" ("Kernel command line: ..."), and the command line itself carries
# `panic=-1` and the machine's name, so words alone would blame the kernel for every failure.
KERNEL_FAULT = re.compile(
    r"PVH ELF Note"  # QEMU: "Error loading uncompressed kernel without PVH ELF Note"
    r"|invalid kernel header|could not load kernel|kernel too old"  # QEMU refuses the file
    r"|Kernel panic"  # "Kernel panic - not syncing: ..."
    r"|VFS: Unable to mount root"
    r"|\bOops: |\bBUG: |kernel BUG at |general protection fault|invalid opcode: "
    r"|please use a kernel appropriate for your CPU|requires the following features"
    r"|-- System halted"  # the bzImage's decompressor gave up
)
# Lines that echo the command line: its words (a machine named `kernel-panic`) prove nothing.
COMMAND_LINE = re.compile(r"^\s*(Kernel command line|Command line):")


def _kernel_may_be_at_fault(error: LaunchError) -> bool:
    """True when booting the fallback kernel (the bzImage) instead of the vmlinux could help.

    That is when QEMU or the guest's console shows a kernel fault, or QEMU exited before the
    guest was ready: with `-no-reboot` a kernel that cannot run on this QEMU triple-faults and
    QEMU exits, often before it printed a line. A boot that merely timed out, or a guest whose
    userspace reported a failure, is not retried: the fallback would only fail the same way,
    after a second boot timeout.
    """
    if error.reason.startswith("QEMU exited before"):
        return True
    lines = [error.reason, *error.log.splitlines()]
    return any(KERNEL_FAULT.search(line) and not COMMAND_LINE.match(line) for line in lines)


def _option(argv: Sequence[str], flag: str) -> str | None:
    """The value after `flag` in a process's argv (None when it is not there)."""
    for name, value in itertools.pairwise(argv):
        if name == flag:
            return value
    return None
