"""The database unavailable for a while under a running `hangar serve`: its SQLite file locked by
another process beyond the busy timeout, or its PostgreSQL server stopped and then started again.
Meanwhile requests answer 503 in the error shape and /ready says why; afterwards the same server
process (no restart) answers again, and an operation that ran through it records its end."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration.postgres.conftest import PostgresServer
from testkit import runs
from testkit.client import ApiClient
from testkit.server import LiveServer, User
from testkit.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

ADMIN = User("admin", "admin-password-chaos", "admin")
LATENCY_S = 1.0
MACHINE = {"provider": "fake", "image": "debian-12", "cpus": 1, "memory_mb": 128}


def serve(data_dir: Path, **env: str) -> LiveServer:
    return LiveServer(
        data_dir,
        admin=ADMIN,
        viewer=None,
        fake_latency_s=LATENCY_S,
        extra_env={"HANGAR_OBSERVER_INTERVAL_SECONDS": "1", **env},
    ).start()


@contextmanager
def locked(database: Path) -> Iterator[None]:
    """Hold SQLite's write lock on `database` from this process, as a backup or a person's
    sqlite3 shell would; released on leaving, whatever happened."""
    other = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.close()  # rolls the transaction back


def assert_503(answer: httpx.Response, code: str) -> str:
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    return message


def ready(server: LiveServer) -> httpx.Response:
    return httpx.get(f"{server.url}/ready", timeout=30)


def wait_ready(server: LiveServer) -> None:
    wait_until(
        lambda: ready(server).status_code,
        until=lambda status: status == 200,
        what="/ready to answer 200 again",
        timeout=60,
        interval=0.2,
    )


def create(client: ApiClient, name: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.ok("POST", "/machines", json={"name": name, **MACHINE})
    return answer


def test_a_locked_sqlite_file_is_a_503_and_the_server_recovers(chaos_dir: Path) -> None:
    server = serve(chaos_dir / "data", HANGAR_DATABASE_BUSY_TIMEOUT_SECONDS="0.2")
    try:
        assert server.process is not None
        pid = server.process.pid
        with server.client() as client:
            running = create(client, f"through-{runs.RUN_ID}")  # its provider work takes 1 s
            with locked(server.data_dir / "hangar.db"):
                refused = client.call("POST", "/machines", json={"name": "later", **MACHINE})
                assert "database is locked" in assert_503(refused, "database_unavailable")
                reason = assert_503(ready(server), "not_ready")
                assert reason == "database does not answer: database is locked"
                # Until the lock goes, the operation cannot record its end.
                assert client.ok("GET", f"/operations/{running['operation']['id']}")["status"] in {
                    "pending",
                    "running",
                }
            wait_ready(server)
            finished = client.wait(running["operation"])
            assert finished["status"] == "succeeded", finished
            later = create(client, f"after-{runs.RUN_ID}")
            assert client.wait(later["operation"])["status"] == "succeeded"
            states = {m["name"]: m["state"] for m in client.machines()}
            assert states == {
                running["machine"]["name"]: "running",
                later["machine"]["name"]: "running",
            }
        assert server.process is not None
        assert server.process.pid == pid, "the server restarted"
    finally:
        server.stop()


def test_postgres_stopped_then_started_is_a_503_meanwhile_and_no_restart(
    chaos_dir: Path, postgres: PostgresServer, postgres_database: str
) -> None:
    server = serve(chaos_dir / "data", HANGAR_DATABASE_URL=postgres_database)
    try:
        assert server.process is not None
        pid = server.process.pid
        with server.client() as client:
            running = create(client, f"through-{runs.RUN_ID}")
            postgres.stop()
            try:
                refused = client.call("GET", "/machines")
                assert_503(refused, "database_unavailable")
                reason = assert_503(ready(server), "not_ready")
                assert reason.startswith("database does not answer: "), reason
                assert "connection" in reason, reason  # PostgreSQL's own words
            finally:
                postgres.start()
            wait_ready(server)
            finished = client.wait(running["operation"])
            assert finished["status"] == "succeeded", finished
            assert client.machine(running["machine"]["id"])["state"] == "running"
            later = create(client, f"after-{runs.RUN_ID}")
            assert client.wait(later["operation"])["status"] == "succeeded"
        assert server.process is not None
        assert server.process.pid == pid, "the server restarted"
    finally:
        server.stop()
