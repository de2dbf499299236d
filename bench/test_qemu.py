"""Benchmarks of the real `qemu` provider: the `tiny` guest under the accelerator that
`hangar.providers.qemu.accel` chose (TCG here; KVM only where a probe saw a guest boot with it).

The machines come from the shared QEMU harness (`testkit.qemu`, via the `qemu` fixture of
bench/conftest.py): tagged with the run id, swept when a run was killed,
deleted at the end, with a watchdog over a hung run. Whatever a round needs but does not time
(creating a machine, checking the result, deleting) runs in `measure`'s per-round setup and
teardown, and every teardown asserts that what was timed really happened.

Round counts keep the four benchmarks at about 25-30 s on a 2-core TCG host, a third of it the
four cold boots (2.5-4 s each): the bench gate runs them once per side and alternation round, and
more short rounds tell more than a few long ones (docs/gates.md, Calibration).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hangar.providers.base import Runtime
from hangar.providers.qemu import monitor, qemu_img
from hangar.providers.qemu.store import load_machine
from testkit.qemu import Machine, QemuFixture

pytestmark = pytest.mark.timeout(300)

Measure = Callable[..., Any]  # the `measure` fixture of conftest.py
BOOT_ROUNDS = 3  # plus one warm-up boot
QMP_ROUNDS = 30
HOT_PLUG_ROUNDS = 10
SNAPSHOT_ROUNDS = 15
DISK_MB = 16
DISK_SECTORS = DISK_MB * 2048  # /sys/block/*/size counts 512-byte sectors
# What the guest kernel logs each time it probes the hot-plugged disk.
PROBED = f"[vdb] {DISK_SECTORS} 512-byte logical blocks"


@pytest.fixture(scope="module")
def running(qemu: QemuFixture) -> Iterator[Machine]:
    """One running guest shared by the benchmarks that only talk to it."""
    vm = qemu.machine("bench").create()
    try:
        vm.start()
        yield vm
    finally:
        vm.delete()


@pytest.fixture
def stopped(qemu: QemuFixture) -> Iterator[Machine]:
    """A stopped machine that has run: its system disk and a data disk hold written data."""
    vm = qemu.machine("snap").create()
    run, provider = qemu.loop.run, vm.provider
    try:
        run(provider.create_disk(vm.key, "data", DISK_MB))
        run(provider.attach_disk(vm.key, "data"))  # while stopped: on the command line at start
        vm.start()
        for device in ("/dev/vda", "/dev/vdb"):
            vm.succeed(f"head -c 1048576 /dev/urandom | dd of={device} bs=64k 2>/dev/null; sync")
        vm.stop()
        yield vm
    finally:
        vm.delete()


def test_qemu_cold_boot(qemu: QemuFixture, measure: Measure) -> None:
    """`start()` of a freshly created machine until the guest is ready: QEMU launched, the
    readiness line of the guest's control shell on the serial console, the endpoint's port read
    back over QMP. Created before the round; checked (exec answers, the page answers at the
    endpoint) and deleted after it."""
    suffixes = (f"boot{n}" for n in itertools.count())
    booted: list[str] = []
    checked: list[str] = []

    def create() -> tuple[tuple[Machine], dict[str, Any]]:
        return (qemu.machine(next(suffixes)).create(),), {}

    def boot(vm: Machine) -> Runtime:
        booted.append(vm.key)
        return vm.start()

    def check_and_delete(vm: Machine) -> None:
        try:
            runtime = vm.runtime()
            assert runtime is not None
            assert runtime.running
            assert runtime.endpoint
            assert vm.succeed("hostname").strip() == vm.name  # the guest answers exec
            assert f"hangar machine {vm.name}" in vm.fetch()  # and its page, at the endpoint
            checked.append(vm.key)
        finally:
            vm.delete()

    measure(boot, rounds=BOOT_ROUNDS, warmup_rounds=1, setup=create, teardown=check_and_delete)
    assert checked == booted != []


def test_qemu_snapshot_create(stopped: Machine, qemu: QemuFixture, measure: Measure) -> None:
    """`create_snapshot()` of a stopped machine: internal qcow2 snapshots of its system disk and
    its data disk (qemu-img). Each snapshot is checked on both disks and deleted after the
    round."""
    provider, run = stopped.provider, qemu.loop.run
    files = [provider.paths(stopped.key).system_disk, provider.paths(stopped.key).disk("data")]
    names = (f"bench{n}" for n in itertools.count())
    taken: list[str] = []
    checked: list[str] = []

    def name() -> tuple[tuple[str], dict[str, Any]]:
        return (next(names),), {}

    def snapshot(name: str) -> None:
        taken.append(name)
        run(provider.create_snapshot(stopped.key, name), 60)

    def check_and_delete(name: str) -> None:
        assert run(provider.snapshots(stopped.key)) == [name]
        for path in files:
            assert run(qemu_img.snapshots(provider.qemu_img, path)) == [name], path
        run(provider.delete_snapshot(stopped.key, name), 60)
        assert run(provider.snapshots(stopped.key)) == []
        checked.append(name)

    measure(snapshot, rounds=SNAPSHOT_ROUNDS, setup=name, teardown=check_and_delete)
    assert checked == taken != []


def test_qmp_round_trip(running: Machine, qemu: QemuFixture, measure: Measure) -> None:
    """One QMP exchange as the provider makes each: connect to the machine's monitor socket
    (qemu.qmp, capabilities negotiation), `query-status`, disconnect."""
    socket = running.provider.paths(running.key).qmp
    answers: list[Any] = []

    async def query_status() -> Any:
        async with monitor.session(socket) as mon:
            return await mon.execute("query-status")

    def round_trip() -> None:
        answers.append(qemu.loop.run(query_status(), 30))

    measure(round_trip, rounds=QMP_ROUNDS)
    assert answers
    assert all(answer["status"] == "running" for answer in answers), answers


def test_qemu_disk_hot_plug_unplug(running: Machine, qemu: QemuFixture, measure: Measure) -> None:
    """`attach_disk()` then `detach_disk()` of a 16 MiB data disk on a running machine, as one
    unit: blockdev-add + device_add, then device_del, the guest releasing the device
    (DEVICE_DELETED) and blockdev-del. After each round the guest's kernel log must show one
    more probe of the disk, and the disk must be gone from the guest and detached in the
    provider's record."""
    provider, run, key = running.provider, qemu.loop.run, running.key
    run(provider.create_disk(key, "plug", DISK_MB))
    plugged: list[int] = []
    checked: list[int] = []

    def probes() -> int:
        return int(running.succeed(f"dmesg | grep -cF '{PROBED}' || true").strip())

    seen = [probes()]

    def plug_unplug() -> None:
        plugged.append(len(plugged))
        run(provider.attach_disk(key, "plug"), 60)
        run(provider.detach_disk(key, "plug"), 60)

    def check() -> None:
        now = probes()
        assert now == seen[-1] + 1, f"the guest probed the disk {now - seen[-1]} times this round"
        seen.append(now)
        running.fail("test -e /sys/block/vdb")
        disk = load_machine(provider.paths(key).record, key).disks["plug"]
        assert (disk.attached, disk.slot) == (False, None)
        assert "plug" in run(provider.disk_inventory())[key]  # the file stays, only unplugged
        checked.append(len(checked))

    try:
        measure(plug_unplug, rounds=HOT_PLUG_ROUNDS, teardown=check)
    finally:
        run(provider.detach_disk(key, "plug"), 60)
        run(provider.delete_disk(key, "plug"))
    assert checked == plugged != []
