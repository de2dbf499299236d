"""A machine's life through the qemu provider: create, start, stop, restart, delete; a broken
configuration; a QEMU killed behind the provider's back."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hangar.images.registry import Image, ImageKind, Registry
from hangar.providers.base import MachineSpec, ProviderError, Runtime
from hangar.providers.qemu import process
from hangar.providers.qemu.errors import InvalidConfigError, LaunchError
from testkit.qemu import Machine, QemuFixture
from testkit.runs import wait_ended
from testkit.waiting import WaitTimeoutError

pytestmark = pytest.mark.timeout(240)


def _gone(pid: int | None, within: float = 10.0) -> bool:
    assert pid is not None, "no QEMU pid to wait for"
    try:
        wait_ended(pid, within)
    except WaitTimeoutError:
        return False
    return True


def _processes_of(key: str) -> list[int]:
    return [qemu.pid for qemu in process.scan() if qemu.key == key]


def _runtime(vm: Machine) -> Runtime:
    """The machine's runtime; the machine must exist."""
    runtime = vm.runtime()
    assert runtime is not None, f"{vm.key} does not exist"
    return runtime


def test_lifecycle_create_start_stop_restart_delete(qemu: QemuFixture) -> None:
    vm = qemu.machine("life").create()
    assert _runtime(vm).running is False
    assert (vm.directory / "system.qcow2").is_file()

    started = time.monotonic()
    runtime = vm.start()
    boot_seconds = time.monotonic() - started
    print(f"cold boot to readiness: {boot_seconds:.2f}s")
    assert runtime.running
    assert runtime.pid is not None
    assert runtime.endpoint is not None
    assert runtime.endpoint.startswith("http://127.0.0.1:")
    assert vm.succeed("hostname").strip() == vm.name
    assert vm.runtime() == runtime

    vm.stop()
    assert _gone(runtime.pid), "QEMU still runs after stop"
    assert _runtime(vm).running is False
    assert not (vm.directory / "qmp.sock").exists()

    first = vm.start()
    restarted = qemu.loop.run(vm.provider.restart(vm.key))
    assert restarted.running
    assert restarted.pid != first.pid
    assert _gone(first.pid)
    assert vm.succeed("cat /proc/uptime")

    vm.delete()
    assert _gone(restarted.pid), "QEMU still runs after delete"
    assert not vm.directory.exists()
    assert vm.runtime() is None
    vm.delete()  # idempotent


def test_invalid_resources_are_refused_before_anything_exists(qemu: QemuFixture) -> None:
    spec = MachineSpec("hangar-test-bad-cpus", "bad-cpus", "tiny", 99, 256)
    with pytest.raises(InvalidConfigError, match="cpus must be 1-8"):
        qemu.loop.run(qemu.provider.create(spec))
    assert not qemu.provider.paths(spec.key).directory.exists()


def test_a_broken_image_fails_with_the_qemu_log_and_leaves_nothing_running(
    qemu: QemuFixture, run_dir: Path
) -> None:
    kernel = run_dir / "not-a-kernel"
    kernel.write_text("this is not a kernel\n")
    Registry(qemu.provider.data_dir).register(
        Image(name="broken", kind=ImageKind.KERNEL, kernel=kernel, ready_pattern="HANGAR-READY")
    )
    vm = qemu.machine("broken")
    vm.spec = MachineSpec(vm.key, vm.name, "broken", 1, 128)
    vm.create()

    with pytest.raises(LaunchError) as failure:
        vm.start()
    assert isinstance(failure.value, ProviderError)
    assert "invalid kernel header" in str(failure.value)  # QEMU's own words reach the user
    assert failure.value.argv[0].endswith("qemu-system-x86_64")
    assert _processes_of(vm.key) == []
    assert sorted(p.name for p in vm.directory.iterdir()) == [
        "disks",
        "machine.json",
        "qemu-launch.log",
        "serial.log",
        "system.qcow2",
    ]  # no pidfile, sockets or runtime.json: only what a stopped machine has, plus its logs
    vm.delete()
    assert not vm.directory.exists()


def test_kill_9_is_detected_and_start_recovers(qemu: QemuFixture) -> None:
    vm = qemu.machine("crash").create()
    pid = vm.start().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)

    assert _runtime(vm).running is False
    reported = {r.key: r for r in qemu.loop.run(vm.provider.inventory())}
    assert reported[vm.key].running is False

    recovered = vm.start()
    assert recovered.running
    assert recovered.pid != pid
    assert vm.succeed("hostname").strip() == vm.name
    assert vm.name in vm.fetch()
    vm.delete()
