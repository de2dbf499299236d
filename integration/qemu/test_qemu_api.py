"""The service's HTTP API driving real QEMU machines, with the API server restarted underneath
a running machine (machines are processes of their own and must outlive it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hangar.providers.qemu import process
from testkit.qemu import QemuFixture, seed_data_dir
from testkit.server import LiveServer, User

pytestmark = pytest.mark.timeout(300)

ADMIN = User("admin", "admin-password-it", "admin")


@pytest.fixture(scope="module")
def server(qemu: QemuFixture, tiny_image: Path) -> Iterator[LiveServer]:
    """`hangar serve` with the qemu provider on a data dir in this run's temp dir."""
    data_dir = seed_data_dir(qemu.provider.data_dir.parent / "api", tiny_image)
    api = LiveServer(data_dir, providers="qemu", admin=ADMIN, viewer=None).start()
    try:
        yield api
    finally:
        api.stop()
        for qemu_process in process.scan():  # a failed test may leave its machine running
            if qemu_process.pidfile and data_dir in qemu_process.pidfile.parents:
                os.kill(qemu_process.pid, signal.SIGKILL)


def qemu_pids(data_dir: Path) -> list[int]:
    return [q.pid for q in process.scan() if q.pidfile and data_dir in q.pidfile.parents]


def test_api_runs_a_qemu_machine_that_outlives_a_server_restart(
    server: LiveServer, run_id: str
) -> None:
    name = f"api-{run_id}"
    with server.client() as client:
        providers = client.ok("GET", "/providers")
        assert any(p["name"] == "qemu" and "tiny" in p["images"] for p in providers), providers
        body = {"name": name, "provider": "qemu", "image": "tiny", "cpus": 1, "memory_mb": 256}
        created = client.call("POST", "/machines", json=body)
        assert created.status_code == 202, created.text
        machine_id = created.json()["machine"]["id"]
        machine = client.wait_for_state(machine_id, "running", interval=0.5)
        endpoint = str(machine["endpoint"])
        assert f"hangar machine {name}" in httpx.get(endpoint, timeout=10).text
        pids = qemu_pids(server.data_dir)
        assert len(pids) == 1

    server.stop()
    assert qemu_pids(server.data_dir) == pids  # the VM did not go down with the server
    assert f"hangar machine {name}" in httpx.get(endpoint, timeout=10).text
    server.start()

    with server.client() as client:
        assert client.wait_for_state(machine_id, "running", interval=0.5)["endpoint"] == endpoint
        console = client.ok("GET", f"/machines/{machine_id}/console")["text"]
        assert f"HANGAR-READY {name}" in console
        assert client.call("DELETE", f"/machines/{machine_id}").status_code == 202
        client.wait_gone(machine_id)
    assert qemu_pids(server.data_dir) == []
    assert not (server.data_dir / "qemu" / "machines" / machine_id).exists()
