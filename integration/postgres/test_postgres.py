"""The service on a real PostgreSQL server: migrations both ways, and the machine API end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import make_url

from hangar.api.app import create_app
from hangar.db import migrate
from hangar.settings import Settings

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


@pytest_asyncio.fixture
async def app(postgres_database: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
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
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture
async def admin(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hangar.test") as client:
        response = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield client


async def wait_for_operation(client: httpx.AsyncClient, operation_id: str) -> dict[str, object]:
    """Poll one operation until it finishes (bounded by the test timeout)."""
    while True:
        operation = (await client.get(f"/api/v1/operations/{operation_id}")).json()
        if operation["status"] in {"succeeded", "failed"}:
            return dict(operation)
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_machine_lifecycle_on_postgres(admin: httpx.AsyncClient) -> None:
    ready = await admin.get("/ready")
    assert ready.status_code == 200, ready.text

    created = await admin.post(
        "/api/v1/machines",
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
    operation = await wait_for_operation(admin, created.json()["operation"]["id"])
    assert operation["status"] == "succeeded", operation
    assert (await admin.get(f"/api/v1/machines/{machine_id}")).json()["state"] == "running"

    stopped = await admin.post(f"/api/v1/machines/{machine_id}/stop")
    assert (await wait_for_operation(admin, stopped.json()["operation"]["id"]))["status"] == (
        "succeeded"
    )

    log = (await admin.get("/api/v1/events/log", params={"machine_id": machine_id})).json()
    ids = [event["id"] for event in log]
    assert ids == sorted(ids, reverse=True), "events come newest first with increasing ids"
    states = [event["state"] for event in reversed(log) if event["kind"] == "state"]
    assert states[-1] == "stopped"
    assert "running" in states

    deleted = await admin.delete(f"/api/v1/machines/{machine_id}")
    assert (await wait_for_operation(admin, deleted.json()["operation"]["id"]))["status"] == (
        "succeeded"
    )
    assert (await admin.get(f"/api/v1/machines/{machine_id}")).status_code == 404


@pytest.mark.asyncio
async def test_duplicate_name_is_a_conflict_on_postgres(admin: httpx.AsyncClient) -> None:
    body = {
        "name": "pg-dup",
        "provider": "fake",
        "image": "debian-12",
        "cpus": 1,
        "memory_mb": 128,
        "start": False,
    }
    first = await admin.post("/api/v1/machines", json=body)
    assert first.status_code == 202, first.text
    second = await admin.post("/api/v1/machines", json=body)
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "conflict"
