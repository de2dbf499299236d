"""The service on a real PostgreSQL server: migrations both ways, and the machine API end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from hangar.api.app import create_app
from hangar.db import migrate
from hangar.settings import Settings
from testkit.client import ApiClient, in_process
from testkit.loop import LoopThread

ADMIN_PASSWORD = "postgres-admin-password"


def tables(url: str) -> set[str]:
    parsed = make_url(url)
    dsn = f"host={parsed.host} port={parsed.port} user={parsed.username} dbname={parsed.database}"
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def test_migrations_upgrade_and_downgrade(postgres_database: str) -> None:
    migrate.upgrade(postgres_database)
    assert migrate.current_revision_sync(postgres_database) == migrate.head_revision()
    assert {"machines", "events", "operations", "users"} <= tables(postgres_database)

    migrate.downgrade(postgres_database, "base")
    assert migrate.current_revision_sync(postgres_database) is None
    assert tables(postgres_database) <= {"alembic_version"}

    migrate.upgrade(postgres_database)  # and up again from nothing
    assert migrate.current_revision_sync(postgres_database) == migrate.head_revision()


@pytest.fixture
def admin(postgres_database: str, tmp_path: Path) -> Iterator[ApiClient]:
    """The service on the test's database, in this process, spoken to as the admin."""
    migrate.upgrade(postgres_database)
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "database_url": postgres_database,
            "providers": ["fake"],
            "fake_latency_seconds": 0.0,
            "frontend_dir": None,
            "admin_password": ADMIN_PASSWORD,
        }
    )
    loop = LoopThread("postgres-it-loop")
    try:
        with in_process(create_app(settings), loop) as http:
            yield ApiClient(http, "admin", ADMIN_PASSWORD)
    finally:
        loop.close()


def test_machine_lifecycle_on_postgres(admin: ApiClient) -> None:
    ready = admin.http.request("GET", "/ready")
    assert ready.status_code == 200, ready.text

    created = admin.call(
        "POST",
        "/machines",
        json={
            "name": "pg-web-1",
            "provider": "fake",
            "image": "debian-12",
            "cpus": 1,
            "memory_mb": 128,
        },
    )
    assert created.status_code == 202, created.text
    machine_id = created.json()["machine"]["id"]
    operation = admin.wait(created.json()["operation"])
    assert operation["status"] == "succeeded", operation
    assert admin.machine(machine_id)["state"] == "running"

    stopped = admin.call("POST", f"/machines/{machine_id}/stop")
    assert admin.wait(stopped.json()["operation"])["status"] == "succeeded"

    log = admin.ok("GET", "/events/log", params={"machine_id": machine_id})
    ids = [event["id"] for event in log]
    assert ids == sorted(ids, reverse=True), "events come newest first with increasing ids"
    states = [event["state"] for event in reversed(log) if event["kind"] == "state"]
    assert states[-1] == "stopped"
    assert "running" in states

    deleted = admin.call("DELETE", f"/machines/{machine_id}")
    assert admin.wait(deleted.json()["operation"])["status"] == "succeeded"
    assert admin.call("GET", f"/machines/{machine_id}").status_code == 404


def test_duplicate_name_is_a_conflict_on_postgres(admin: ApiClient) -> None:
    body = {
        "name": "pg-dup",
        "provider": "fake",
        "image": "debian-12",
        "cpus": 1,
        "memory_mb": 128,
        "start": False,
    }
    first = admin.call("POST", "/machines", json=body)
    assert first.status_code == 202, first.text
    second = admin.call("POST", "/machines", json=body)
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "conflict"
