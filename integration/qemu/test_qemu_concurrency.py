"""Several machines started at the same time each come up with their own endpoint."""

from __future__ import annotations

import time

import pytest

from testkit.qemu import QemuFixture

pytestmark = pytest.mark.timeout(300)


def test_three_machines_start_concurrently(qemu: QemuFixture) -> None:
    vms = [qemu.machine(f"fleet{i}").create() for i in range(3)]
    started = time.monotonic()
    futures = [qemu.loop.submit(vm.provider.start(vm.key)) for vm in vms]
    runtimes = [future.result(240) for future in futures]
    print(f"three concurrent boots to readiness: {time.monotonic() - started:.2f}s")

    assert all(runtime.running for runtime in runtimes)
    assert len({runtime.endpoint for runtime in runtimes}) == 3
    for vm in vms:
        assert f"hangar machine {vm.name}" in vm.fetch()
    inventory = {r.key: r for r in qemu.loop.run(vms[0].provider.inventory())}
    assert all(inventory[vm.key].running for vm in vms)

    deletions = [qemu.loop.submit(vm.provider.delete(vm.key)) for vm in vms]
    for future in deletions:
        future.result(120)
    assert all(vm.runtime() is None for vm in vms)
