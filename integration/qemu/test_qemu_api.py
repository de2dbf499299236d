"""The service's HTTP API driving real QEMU machines, with the API server restarted underneath
a running machine (machines are processes of their own and must outlive it)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from hangar.images import tiny
from hangar.images.registry import Registry
from hangar.providers.qemu import process

pytestmark = pytest.mark.timeout(300)

ADMIN_PASSWORD = "admin-password-it"
STATE_TIMEOUT_S = 180.0


def hangar_command() -> list[str]:
    """The `hangar` script of this environment, else the CLI through this interpreter."""
    beside = Path(sys.executable).with_name("hangar")
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-c", "import sys; from hangar.cli import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiServer:
    """`hangar serve` in its own process group, with the qemu provider on this run's data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HANGAR_")}
        env |= {
            "HANGAR_DATA_DIR": str(self.data_dir),
            "HANGAR_PROVIDERS": "qemu",
            "HANGAR_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PYTHONUNBUFFERED": "1",
        }
        command = [*hangar_command(), "serve", "--migrate", "--port", str(self.port)]
        with (self.data_dir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"hangar serve did not become ready:\n{self.log()}")

    def stop(self) -> None:
        server, self.process = self.process, None
        if server is None or server.poll() is not None:
            return
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(15)

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """An admin session (cookie + CSRF header)."""
        with httpx.Client(base_url=self.url, timeout=30) as client:
            answer = client.post(
                "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
            yield client


@pytest.fixture(scope="module")
def server(qemu) -> Iterator[ApiServer]:
    data_dir = qemu.provider.data_dir.parent / "api"
    (data_dir / "qemu").mkdir(parents=True)
    Registry(data_dir).save(Registry(qemu.provider.data_dir).get(tiny.NAME))
    verdict = qemu.provider.data_dir / "qemu" / "accelerator.json"
    if verdict.exists():
        shutil.copy(verdict, data_dir / "qemu" / "accelerator.json")
    api = ApiServer(data_dir)
    api.start()
    try:
        yield api
    finally:
        api.stop()
        for qemu_process in process.scan():  # a failed test may leave its machine running
            if qemu_process.pidfile and data_dir in qemu_process.pidfile.parents:
                os.kill(qemu_process.pid, signal.SIGKILL)


def wait_for_state(client: httpx.Client, machine_id: str, state: str) -> dict[str, object]:
    deadline = time.monotonic() + STATE_TIMEOUT_S
    while True:
        machine: dict[str, object] = client.get(f"/api/v1/machines/{machine_id}").json()
        if machine.get("state") == state:
            return machine
        assert machine.get("state") != "error", f"machine failed: {machine.get('error')}"
        assert time.monotonic() < deadline, f"still {machine.get('state')} after {STATE_TIMEOUT_S}s"
        time.sleep(0.5)


def qemu_pids(data_dir: Path) -> list[int]:
    return [q.pid for q in process.scan() if q.pidfile and data_dir in q.pidfile.parents]


def test_api_runs_a_qemu_machine_that_outlives_a_server_restart(
    server: ApiServer, run_id: str
) -> None:
    name = f"api-{run_id}"
    with server.client() as client:
        providers = client.get("/api/v1/providers").json()
        assert any(p["name"] == "qemu" and "tiny" in p["images"] for p in providers), providers
        body = {"name": name, "provider": "qemu", "image": "tiny", "cpus": 1, "memory_mb": 256}
        created = client.post("/api/v1/machines", json=body)
        assert created.status_code == 202, created.text
        machine_id = created.json()["machine"]["id"]
        machine = wait_for_state(client, machine_id, "running")
        endpoint = str(machine["endpoint"])
        assert f"hangar machine {name}" in httpx.get(endpoint, timeout=10).text
        pids = qemu_pids(server.data_dir)
        assert len(pids) == 1

    server.stop()
    assert qemu_pids(server.data_dir) == pids  # the VM did not go down with the server
    assert f"hangar machine {name}" in httpx.get(endpoint, timeout=10).text
    server.start()

    with server.client() as client:
        assert wait_for_state(client, machine_id, "running")["endpoint"] == endpoint
        console = client.get(f"/api/v1/machines/{machine_id}/console").json()["text"]
        assert f"HANGAR-READY {name}" in console
        assert client.delete(f"/api/v1/machines/{machine_id}").status_code == 202
        deadline = time.monotonic() + 60
        while client.get(f"/api/v1/machines/{machine_id}").status_code != 404:
            assert time.monotonic() < deadline, "the machine was not deleted"
            time.sleep(0.5)
    assert qemu_pids(server.data_dir) == []
    assert not (server.data_dir / "qemu" / "machines" / machine_id).exists()
