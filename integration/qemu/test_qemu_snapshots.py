"""Internal qcow2 snapshots (taken while stopped) and clones whose writes stay independent."""

from __future__ import annotations

import pytest

from hangar.providers.base import NotFoundError, ProviderError
from testkit.qemu import Machine, QemuFixture

pytestmark = pytest.mark.timeout(240)

WRITE = "printf '%s' {text} | dd of={device} bs=512 conv=sync 2>/dev/null && sync"
READ = "dd if={device} bs=512 count=1 2>/dev/null | tr -d '\\0'"


def write(vm: Machine, device: str, text: str) -> None:
    vm.succeed(WRITE.format(text=text, device=device))


def read(vm: Machine, device: str) -> str:
    return vm.succeed(READ.format(device=device))


def test_snapshot_rollback_restores_disk_content(qemu: QemuFixture) -> None:
    vm = qemu.machine("snap").create()
    provider, run = vm.provider, qemu.loop.run
    run(provider.create_disk(vm.key, "data", 16))
    run(provider.attach_disk(vm.key, "data"))  # while stopped: on the command line at start

    vm.start()
    write(vm, "/dev/vdb", "before-snapshot")
    vm.stop()
    run(provider.create_snapshot(vm.key, "s1"))
    assert run(provider.snapshots(vm.key)) == ["s1"]

    vm.start()
    with pytest.raises(ProviderError, match="is running; a snapshot needs it stopped"):
        run(provider.create_snapshot(vm.key, "s2"))
    assert read(vm, "/dev/vdb") == "before-snapshot"
    write(vm, "/dev/vdb", "overwritten")
    assert read(vm, "/dev/vdb") == "overwritten"
    vm.stop()

    run(provider.rollback_snapshot(vm.key, "s1"))
    vm.start()
    assert read(vm, "/dev/vdb") == "before-snapshot"
    vm.stop()

    with pytest.raises(NotFoundError):
        run(provider.rollback_snapshot(vm.key, "nope"))
    run(provider.delete_snapshot(vm.key, "s1"))
    assert run(provider.snapshots(vm.key)) == []
    vm.delete()


def test_clone_boots_and_writes_stay_independent(qemu: QemuFixture) -> None:
    source = qemu.machine("origin").create()
    source.start()
    write(source, "/dev/vda", "from-source")
    source.stop()

    clone = qemu.machine("copy")
    qemu.loop.run(source.provider.clone(source.key, clone.spec))
    qemu.created.append(clone.key)

    # Boot both at once: the clone must not depend on the source's files being idle.
    both = [qemu.loop.submit(source.provider.start(vm.key)) for vm in (source, clone)]
    for future in both:
        assert future.result(180).running
    assert read(clone, "/dev/vda") == "from-source"
    assert clone.name in clone.fetch()

    write(clone, "/dev/vda", "clone-wrote")
    write(source, "/dev/vda", "source-wrote")
    assert read(clone, "/dev/vda") == "clone-wrote"
    assert read(source, "/dev/vda") == "source-wrote"

    # And after a reboot, from disk rather than the guests' page cache.
    for vm in (source, clone):
        vm.stop()
        vm.start()
    assert read(clone, "/dev/vda") == "clone-wrote"
    assert read(source, "/dev/vda") == "source-wrote"
    source.delete()
    assert read(clone, "/dev/vda") == "clone-wrote"  # the clone does not need its source
    clone.delete()
