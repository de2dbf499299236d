"""When the qemu provider retries a failed boot with the image's fallback kernel (the bzImage
instead of the PVH vmlinux): only on signs that the kernel itself failed — QEMU refusing it, a
panic, an oops, no root fs, the guest dying before its first readiness line — never merely
because a Linux console log mentions the word "kernel" (every one does: "Kernel command line"),
which would double every ordinary boot failure (two boot timeouts).

The log lines are the shapes Linux and QEMU print; the provider-level tests run against the fake
QEMU of this folder (fake_qemu.py), which boots nothing."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from hangar.images.registry import Image, ImageKind, Registry
from hangar.providers.base import MachineSpec
from hangar.providers.qemu import QemuProvider, process
from hangar.providers.qemu.errors import LaunchError
from hangar.providers.qemu.provider import _kernel_may_be_at_fault

from .test_qemu_provider import wrapper

# What a normal Linux boot prints on the serial console before userspace (abridged).
BOOT = """\
Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0)
Command line: console=ttyS0 quiet panic=-1 hangar.name=web-1
KERNEL supported cpus:
  Intel GenuineIntel
Kernel command line: console=ttyS0 quiet panic=-1 hangar.name=web-1
Unpacking initramfs...
Freeing unused kernel image (initmem) memory: 2800K
Run /init as init process
"""
ARGV = ["qemu-system-x86_64", "-kernel", "/img/vmlinux"]


def error(reason: str, log: str) -> LaunchError:
    return LaunchError(reason, ARGV, log)


@pytest.mark.parametrize(
    ("reason", "log"),
    [
        ("the guest was not ready within 120s", BOOT),
        ("the guest was not ready within 120s", BOOT + "udhcpc: sending discover\n"),
        ("the guest failed: HANGAR-FAILED boot: no network", BOOT + "HANGAR-FAILED boot\n"),
        ("QEMU is not running after boot", BOOT + "HANGAR-READY web-1\n"),
        ("QEMU exited with status 1", "qemu-system-x86_64: -m 99999999: invalid RAM size\n"),
        ("QEMU did not daemonize within 30s", ""),
        # A machine may be named after anything: its name is on the kernel command line.
        ("the guest was not ready within 120s", BOOT.replace("web-1", "kernel-panic-bug")),
    ],
    ids=[
        "timeout",
        "timeout-in-userspace",
        "guest-init-failed",
        "gone-after-ready",
        "qemu-refused-its-options",
        "launch-timeout",
        "name-with-fault-words",
    ],
)
def test_ordinary_failures_are_not_blamed_on_the_kernel(reason: str, log: str) -> None:
    assert not _kernel_may_be_at_fault(error(reason, log))


@pytest.mark.parametrize(
    ("reason", "log"),
    [
        (
            "QEMU exited with status 1",
            "qemu-system-x86_64: Error loading uncompressed kernel without PVH ELF Note\n",
        ),
        ("QEMU exited with status 1", "qemu: invalid kernel header\n"),
        ("QEMU exited with status 1", "qemu: could not load kernel '/img/vmlinux': Bad address\n"),
        (
            "the guest failed: Kernel panic - not syncing: VFS: Unable to mount root fs",
            BOOT
            + "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
        ),
        (
            "the guest was not ready within 120s",  # an image with its own failure pattern
            BOOT + "VFS: Unable to mount root fs on unknown-block(0,0)\n",
        ),
        (
            "the guest was not ready within 120s",
            BOOT + "BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
            "Oops: 0000 [#1] PREEMPT SMP NOPTI\n",
        ),
        ("the guest was not ready within 120s", "kernel BUG at mm/slub.c:379!\n"),
        (
            "the guest was not ready within 120s",
            "general protection fault, probably for non-canonical address 0xdead: 0000 [#1]\n",
        ),
        ("the guest was not ready within 120s", "invalid opcode: 0000 [#1] SMP\n"),
        (
            "the guest was not ready within 120s",
            "Unable to boot - please use a kernel appropriate for your CPU.\n",
        ),
        (
            "the guest was not ready within 120s",
            "Decompressing Linux... crc error\n\n -- System halted",
        ),
        # -no-reboot: a triple fault in early boot ends QEMU before the guest printed anything.
        ("QEMU exited before the guest was ready", ""),
        ("QEMU exited before the guest was ready", BOOT),
    ],
    ids=[
        "qemu-without-pvh",
        "qemu-invalid-header",
        "qemu-cannot-load",
        "panic-no-root",
        "no-root-own-pattern",
        "oops",
        "kernel-bug",
        "gpf",
        "invalid-opcode",
        "wrong-cpu",
        "decompression",
        "triple-fault",
        "died-in-early-boot",
    ],
)
def test_kernel_faults_are(reason: str, log: str) -> None:
    assert _kernel_may_be_at_fault(error(reason, log))


# ------------------------------------------------------------------ through the provider
@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hk-"))  # short: unix socket paths must fit in 107 bytes
    try:
        yield path
    finally:
        for qemu in process.scan():
            if qemu.pidfile is not None and str(path) in str(qemu.pidfile):
                process.signal_process(qemu.pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture
async def provider(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[QemuProvider]:
    """A kernel image with a fallback kernel whose readiness line never comes (ready_pattern
    matches nothing the fake prints), so every boot fails after a 1 s timeout."""
    monkeypatch.setenv("HANGAR_QEMU_ACCEL", "tcg")
    tools = data_dir / "bin"
    tools.mkdir()
    for kernel in ("vmlinux", "bzImage"):
        (data_dir / kernel).write_bytes(b"\x7fELF fake kernel")
    Registry(data_dir).save(
        Image(
            name="never",
            kind=ImageKind.KERNEL,
            kernel=data_dir / "vmlinux",
            fallback_kernel=data_dir / "bzImage",
            cmdline="console=ttyS0",
            ready_pattern="NEVER-PRINTED",
            control_console=True,
        )
    )
    qemu = QemuProvider(
        data_dir,
        qemu=wrapper(tools, "qemu-system-x86_64", "fake_qemu.py"),
        qemu_img_tool=wrapper(tools, "qemu-img", "fake_qemu_img.py"),
        boot_timeout=1,
        poweroff_timeout=1,
        quit_timeout=1,
    )
    yield qemu
    await qemu.close()


@pytest.mark.asyncio
async def test_a_boot_timeout_is_not_retried_with_the_fallback_kernel(
    provider: QemuProvider, data_dir: Path
) -> None:
    # The fake prints `HANGAR-READY kernel-1` on its console: the word, but no kernel fault.
    await provider.create(MachineSpec("m1", "kernel-1", "never", 1, 128, {}))
    with pytest.raises(LaunchError, match="not ready within") as failure:
        await provider.start("m1")
    assert str(data_dir / "vmlinux") in failure.value.argv
    assert str(data_dir / "bzImage") not in failure.value.argv, "booted twice"


@pytest.mark.asyncio
async def test_a_kernel_panic_is_retried_with_the_fallback_kernel(
    provider: QemuProvider, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_FAKE_QEMU_MODE", "panic")
    await provider.create(MachineSpec("m1", "web-1", "never", 1, 128, {}))
    with pytest.raises(LaunchError, match="Kernel panic") as failure:
        await provider.start("m1")
    assert str(data_dir / "bzImage") in failure.value.argv  # the second boot's command line
