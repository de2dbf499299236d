"""The QEMU command line: built only from validated values, escaped for QEMU's option syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from hangar.images.registry import Image, ImageKind
from hangar.providers.qemu import cmdline
from hangar.providers.qemu.cmdline import DataDisk, LaunchConfig, Paths, build_argv
from hangar.providers.qemu.errors import InvalidConfigError

KERNEL_IMAGE = Image(
    name="tiny",
    kind=ImageKind.KERNEL,
    kernel=Path("/img/vmlinux"),
    fallback_kernel=Path("/img/bzImage"),
    initrd=Path("/img/initrd.cpio"),
    cmdline="console=ttyS0 quiet",
    ready_pattern="HANGAR-READY",
    control_console=True,
)
DISK_IMAGE = Image(name="debian", kind=ImageKind.DISK, disk=Path("/img/debian.qcow2"))


def config(**overrides: object) -> LaunchConfig:
    values: dict[str, object] = {
        "key": "m1",
        "name": "web-1",
        "cpus": 1,
        "memory_mb": 256,
        "accel": "tcg",
        "image": KERNEL_IMAGE,
        "paths": Paths(Path("/data/qemu/machines/m1")),
    }
    values.update(overrides)
    return LaunchConfig(**values)  # type: ignore[arg-type]


def value_after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def test_kernel_image_boots_the_vmlinux_with_the_name_on_the_command_line() -> None:
    argv = build_argv("/usr/bin/qemu-system-x86_64", config())
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    assert value_after(argv, "-kernel") == ["/img/vmlinux"]
    assert value_after(argv, "-initrd") == ["/img/initrd.cpio"]
    assert value_after(argv, "-append") == ["console=ttyS0 quiet hangar.name=web-1"]
    assert value_after(argv, "-name") == ["hangar:m1,process=hangar:m1"]
    assert value_after(argv, "-accel") == ["tcg"]
    assert "-cpu" not in argv
    assert {"-nodefaults", "-no-user-config", "-daemonize", "-no-reboot"} <= set(argv)
    assert value_after(argv, "-pidfile") == ["/data/qemu/machines/m1/qemu.pid"]
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:0-:80" in argv
    ports = [d for d in value_after(argv, "-device") if d.startswith("pcie-root-port")]
    assert len(ports) == cmdline.HOTPLUG_PORTS
    assert "virtio-blk-pci,drive=system,id=system" in argv


def test_fallback_kernel_and_kvm() -> None:
    argv = build_argv("qemu", config(use_fallback_kernel=True, accel="kvm", cpus=2))
    assert value_after(argv, "-kernel") == ["/img/bzImage"]
    assert value_after(argv, "-cpu") == ["host"]
    assert value_after(argv, "-smp") == ["2"]


def test_disk_image_boots_by_bios_from_its_system_disk() -> None:
    argv = build_argv("qemu", config(image=DISK_IMAGE))
    assert "-kernel" not in argv
    assert "virtio-blk-pci,drive=system,id=system,bootindex=0" in argv


def test_attached_disks_sit_on_their_hotplug_port() -> None:
    disk = DataDisk(2, Path("/data/qemu/machines/m1/disks/a.qcow2"))
    argv = build_argv("qemu", config(data_disks=[disk]))
    assert "virtio-blk-pci,drive=data2,id=vdisk2,bus=hp2" in argv
    assert (
        "driver=qcow2,node-name=data2,file.driver=file,"
        "file.filename=/data/qemu/machines/m1/disks/a.qcow2" in argv
    )
    assert cmdline.blockdev_add_arguments(disk)["node-name"] == "data2"
    assert cmdline.device_add_arguments(disk) == {
        "driver": "virtio-blk-pci",
        "drive": "data2",
        "id": "vdisk2",
        "bus": "hp2",
    }


def test_commas_in_paths_are_escaped_for_qemu() -> None:
    argv = build_argv("qemu", config(paths=Paths(Path("/data/a,b/m1"))))
    assert "file,id=serial0,path=/data/a,,b/m1/serial.log" in argv
    assert cmdline.opt("x,y,z") == "x,,y,,z"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"key": "../escape"}, "machine key"),
        ({"key": "a/b"}, "machine key"),
        ({"name": "Web_1"}, "DNS label"),
        ({"name": "-web"}, "DNS label"),
        ({"cpus": 0}, "cpus must be 1-8"),
        ({"cpus": 9}, "cpus must be 1-8"),
        ({"memory_mb": 32}, "memory_mb must be 64-16384"),
        ({"accel": "hvf"}, "accelerator"),
        ({"paths": Paths(Path("/" + "x" * 120))}, "socket path"),
        ({"data_disks": [DataDisk(1, Path("/a")), DataDisk(1, Path("/b"))]}, "distinct"),
        ({"data_disks": [DataDisk(9, Path("/a"))]}, "distinct"),
        ({"extra_cmdline": {"init": "/bin/sh;reboot"}}, "unsafe"),
    ],
)
def test_invalid_values_never_reach_qemu(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        build_argv("qemu", config(**overrides))


def test_extra_kernel_arguments_are_sorted_and_appended() -> None:
    argv = build_argv("qemu", config(extra_cmdline={"hangar.probe": "1", "a": "b"}))
    assert value_after(argv, "-append") == [
        "console=ttyS0 quiet hangar.name=web-1 a=b hangar.probe=1"
    ]


def test_control_characters_are_refused() -> None:
    with pytest.raises(InvalidConfigError, match="control characters"):
        cmdline.opt("a\nb")


def test_names_of_snapshots_and_disks() -> None:
    assert cmdline.check_snapshot_name("before-upgrade.1") == "before-upgrade.1"
    with pytest.raises(InvalidConfigError, match="snapshot name"):
        cmdline.check_snapshot_name("-x")
    with pytest.raises(InvalidConfigError, match="disk"):
        Paths(Path("/d")).disk("../../etc")
    assert Paths(Path("/d")).disk("data").name == "data.qcow2"
