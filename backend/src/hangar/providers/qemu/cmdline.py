"""The QEMU command line, built only from validated values: no user string reaches a shell
(the argv goes straight to exec) and none reaches QEMU's option parser unchecked.

The machine is q35 with a few empty `pcie-root-port`s reserved at boot: PCIe hot-plug needs a
free port per device, and ports cannot be added to a running machine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hangar.images.registry import Image, ImageKind
from hangar.providers.qemu.errors import InvalidConfigError

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ACCELERATORS = ("kvm", "tcg")
HOTPLUG_PORTS = 4  # how many disks can be attached at once (root ports reserved at boot)
CPUS = range(1, 9)
MEMORY_MB = range(64, 16385)
# A unix socket path must fit sockaddr_un (108 bytes with the terminating NUL).
MAX_SOCKET_PATH = 107
TAG_PREFIX = "hangar:"  # `-name hangar:<key>` marks a process as ours, even as an orphan


def check_key(kind: str, value: str) -> str:
    if not KEY.match(value) or ".." in value:
        raise InvalidConfigError(
            f"{kind} {value!r} is invalid: use 1-64 of A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit"
        )
    return value


def check_name(name: str) -> str:
    if not DNS_LABEL.match(name):
        raise InvalidConfigError(
            f"machine name {name!r} is invalid: a DNS label (1-63 of a-z, 0-9, -; "
            "not starting or ending with -)"
        )
    return name


def check_snapshot_name(name: str) -> str:
    if not SNAPSHOT_NAME.match(name):
        raise InvalidConfigError(
            f"snapshot name {name!r} is invalid: use 1-64 of A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit"
        )
    return name


def check_resources(cpus: int, memory_mb: int) -> None:
    if cpus not in CPUS:
        raise InvalidConfigError(f"cpus must be {CPUS.start}-{CPUS.stop - 1}, got {cpus}")
    if memory_mb not in MEMORY_MB:
        raise InvalidConfigError(
            f"memory_mb must be {MEMORY_MB.start}-{MEMORY_MB.stop - 1}, got {memory_mb}"
        )


def opt(value: str | Path) -> str:
    """Escape a value for QEMU's `key=value,...` syntax, where a comma is written twice."""
    text = str(value)
    if any(ch in text for ch in "\n\r\0"):
        raise InvalidConfigError(f"{text!r}: control characters cannot go on a QEMU command line")
    return text.replace(",", ",,")


@dataclass(frozen=True, slots=True)
class DataDisk:
    """A qcow2 disk on hot-plug port `slot` (1-based): device `vdisk<slot>`, node `data<slot>`."""

    slot: int
    path: Path

    @property
    def device_id(self) -> str:
        return f"vdisk{self.slot}"

    @property
    def node_name(self) -> str:
        return f"data{self.slot}"

    @property
    def port_id(self) -> str:
        return f"hp{self.slot}"


@dataclass(frozen=True, slots=True)
class Paths:
    """Every file of one machine, all inside its own directory."""

    directory: Path

    @property
    def record(self) -> Path:
        return self.directory / "machine.json"

    @property
    def runtime(self) -> Path:
        return self.directory / "runtime.json"

    @property
    def pidfile(self) -> Path:
        return self.directory / "qemu.pid"

    @property
    def qmp(self) -> Path:
        return self.directory / "qmp.sock"

    @property
    def control(self) -> Path:
        return self.directory / "control.sock"

    @property
    def serial_log(self) -> Path:
        return self.directory / "serial.log"

    @property
    def system_disk(self) -> Path:
        return self.directory / "system.qcow2"

    @property
    def disks(self) -> Path:
        return self.directory / "disks"

    def disk(self, disk_key: str) -> Path:
        return self.disks / f"{check_key('disk', disk_key)}.qcow2"


@dataclass(frozen=True, slots=True)
class LaunchConfig:
    key: str
    name: str
    cpus: int
    memory_mb: int
    accel: str
    image: Image
    paths: Paths
    data_disks: Sequence[DataDisk] = ()
    use_fallback_kernel: bool = False
    extra_cmdline: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        check_key("machine key", self.key)
        check_name(self.name)
        check_resources(self.cpus, self.memory_mb)
        if self.accel not in ACCELERATORS:
            raise InvalidConfigError(f"accelerator {self.accel!r} is not one of {ACCELERATORS}")
        for socket_path in (self.paths.qmp, self.paths.control):
            if len(str(socket_path)) > MAX_SOCKET_PATH:
                raise InvalidConfigError(
                    f"socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes; "
                    "use a shorter data dir (HANGAR_DATA_DIR)"
                )
        slots = [disk.slot for disk in self.data_disks]
        if len(set(slots)) != len(slots) or any(not 1 <= s <= HOTPLUG_PORTS for s in slots):
            raise InvalidConfigError(f"disk slots {slots} must be distinct, 1-{HOTPLUG_PORTS}")
        for word in self.extra_cmdline.items():
            if not all(re.fullmatch(r"[A-Za-z0-9_.=:-]+", part) for part in word):
                raise InvalidConfigError(f"kernel argument {word!r} has unsafe characters")


def kernel_arguments(config: LaunchConfig) -> str:
    words = [config.image.cmdline, f"hangar.name={config.name}"]
    words += [f"{key}={value}" for key, value in sorted(config.extra_cmdline.items())]
    return " ".join(word for word in words if word)


def build_argv(qemu: str, config: LaunchConfig) -> list[str]:
    """The complete argv of a daemonized QEMU for `config` (validated first)."""
    config.validate()
    paths = config.paths
    argv = [
        qemu,
        "-name", f"{TAG_PREFIX}{config.key},process={TAG_PREFIX}{config.key}",
        "-nodefaults", "-no-user-config", "-nographic",
        "-machine", "q35",
        "-accel", config.accel,
    ]  # fmt: skip
    if config.accel == "kvm":
        argv += ["-cpu", "host"]
    argv += [
        "-smp", str(config.cpus),
        "-m", str(config.memory_mb),
        "-daemonize",
        "-pidfile", opt(paths.pidfile),
        # The guest's own poweroff ends the process (no reboot loop after a panic either).
        "-no-reboot",
        "-chardev", f"file,id=serial0,path={opt(paths.serial_log)}",
        "-serial", "chardev:serial0",
        "-chardev", f"socket,id=qmp,path={opt(paths.qmp)},server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", f"socket,id=control,path={opt(paths.control)},server=on,wait=off",
        "-device", "virtio-serial-pci,id=vser0",
        "-device", "virtconsole,chardev=control,name=org.hangar.control",
        "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:0-:80",
        "-device", "virtio-net-pci,netdev=net0,id=nic0",
        "-blockdev", _qcow2_blockdev("system", paths.system_disk),
    ]  # fmt: skip
    image = config.image
    # A disk image boots from its system disk by BIOS; with -kernel the loader ROM is boot 0.
    boot = ",bootindex=0" if image.kind is ImageKind.DISK else ""
    argv += ["-device", f"virtio-blk-pci,drive=system,id=system{boot}"]
    if image.kind is ImageKind.KERNEL:
        assert image.kernel is not None  # Image.validate guarantees it
        kernel = image.fallback_kernel if config.use_fallback_kernel else image.kernel
        argv += ["-kernel", opt(kernel or image.kernel), "-append", kernel_arguments(config)]
        if image.initrd is not None:
            argv += ["-initrd", opt(image.initrd)]
    for slot in range(1, HOTPLUG_PORTS + 1):
        argv += ["-device", f"pcie-root-port,id=hp{slot},bus=pcie.0,chassis={slot},slot={slot}"]
    for disk in config.data_disks:
        argv += ["-blockdev", _qcow2_blockdev(disk.node_name, disk.path)]
        argv += [
            "-device",
            f"virtio-blk-pci,drive={disk.node_name},id={disk.device_id},bus={disk.port_id}",
        ]
    return argv


def _qcow2_blockdev(node: str, path: Path) -> str:
    return f"driver=qcow2,node-name={node},file.driver=file,file.filename={opt(path)}"


def blockdev_add_arguments(disk: DataDisk) -> dict[str, object]:
    """QMP `blockdev-add` arguments equal to the `-blockdev` a cold-plugged disk gets."""
    return {
        "driver": "qcow2",
        "node-name": disk.node_name,
        "file": {"driver": "file", "filename": str(disk.path)},
    }


def device_add_arguments(disk: DataDisk) -> dict[str, object]:
    return {
        "driver": "virtio-blk-pci",
        "drive": disk.node_name,
        "id": disk.device_id,
        "bus": disk.port_id,
    }
