"""`kill -9` of the API server on the `qemu` provider, twice on one guest: while the machine boots
(create with start) and while it powers off (stop). QEMU runs as a daemon of its own, so it
outlives the server; after each restart the operation is `failed` as interrupted (or, for a stop
that won the race, `succeeded`), the machine is in a stable state, the observer finds no orphan,
and the machine recovers: `start` adopts the QEMU that kept booting, `delete` leaves no QEMU
process and no file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hangar.providers.qemu import process
from testkit import runs
from testkit.qemu import QemuFixture, seed_data_dir
from testkit.server import LiveServer, User
from testkit.waiting import wait_until

from .support import (
    INTERRUPTED,
    ORPHANS,
    assert_events_kept,
    assert_settled,
    event_log,
    kill_9,
    reconcile,
    wait_running,
)

pytestmark = pytest.mark.timeout(600)

ADMIN = User("admin", "admin-password-chaos", "admin")


def qemu_pids(data_dir: Path) -> list[int]:
    """The QEMU processes of the machines of the service on `data_dir` (by their pidfiles)."""
    return [q.pid for q in process.scan() if q.pidfile and data_dir in q.pidfile.parents]


@pytest.fixture
def server(qemu: QemuFixture, tiny_image: Path) -> Iterator[LiveServer]:
    """`hangar serve` with the qemu provider on a data dir in this run's temp dir; whatever QEMU
    of it survives the test is killed (the run's teardown also checks)."""
    data_dir = seed_data_dir(qemu.provider.data_dir.parent / "chaos", tiny_image)
    live = LiveServer(
        data_dir,
        providers="qemu",
        admin=ADMIN,
        viewer=None,
        extra_env={"HANGAR_OBSERVER_INTERVAL_SECONDS": "0"},
    )
    try:
        yield live.start()
    finally:
        live.stop()
        for pid in qemu_pids(data_dir):
            os.kill(pid, 9)


def test_kill_9_while_a_qemu_machine_boots_and_while_it_stops(server: LiveServer) -> None:
    name = f"chaos-{runs.RUN_ID}"
    body = {"name": name, "provider": "qemu", "image": "tiny", "cpus": 1, "memory_mb": 256}
    with server.client() as client:
        created = client.ok("POST", "/machines", json=body)
        machine_id = created["machine"]["id"]
        wait_running(client, created["operation"])
        pidfile = server.data_dir / "qemu" / "machines" / machine_id / "qemu.pid"
        daemon = wait_until(
            lambda: process.running(pidfile, machine_id),
            what="QEMU to daemonize (its pidfile names a running QEMU)",
            timeout=120,
            interval=0.1,
        )
        assert client.machine(machine_id)["state"] == "starting"
        before = event_log(client)
    kill_9(server)
    assert daemon is not None
    # QEMU's launching parent exits once the daemon is up; the daemon outlives the server.
    booting = wait_until(
        lambda: qemu_pids(server.data_dir),
        until=lambda pids: pids == [daemon.pid],
        what="QEMU's daemon alone to run",
        timeout=30,
    )
    server.start()

    with server.client() as client:
        assert_settled(client, created["operation"]["id"])
        machine = client.machine(machine_id)
        assert (machine["state"], machine["error"]) == ("error", INTERRUPTED)
        assert_events_kept(before, event_log(client))
        assert [f for f in reconcile(client) if f["kind"] in ORPHANS] == []
        # start adopts the QEMU that kept booting: the same process, now with its endpoint.
        assert client.act(machine_id, "start")["status"] == "succeeded"
        machine = client.machine(machine_id)
        assert machine["state"] == "running"
        assert qemu_pids(server.data_dir) == booting
        assert machine["endpoint"], machine
        assert f"hangar machine {name}" in httpx.get(machine["endpoint"], timeout=10).text

        stopping = client.ok("POST", f"/machines/{machine_id}/stop")["operation"]
        wait_running(client, stopping)
        before = event_log(client)
    kill_9(server)
    server.start()

    with server.client() as client:
        stopped = client.ok("GET", f"/operations/{stopping['id']}")
        if stopped["status"] == "succeeded":  # the guest powered off before the kill landed
            assert client.machine(machine_id)["state"] == "stopped"
        else:
            assert_settled(client, stopping["id"])
        assert_events_kept(before, event_log(client))
        findings = reconcile(client)
        assert [f for f in findings if f["kind"] in ORPHANS] == []
        assert client.machine(machine_id)["state"] in {"stopped", "error"}

        deleted = client.ok("DELETE", f"/machines/{machine_id}")["operation"]
        assert client.wait(deleted)["status"] == "succeeded"
    assert qemu_pids(server.data_dir) == []
    assert not (server.data_dir / "qemu" / "machines" / machine_id).exists()
