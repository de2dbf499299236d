"""A database that does not answer for a while: requests get a 503 in the error shape, /ready says
why, operations that were running record their end once it answers again, and nothing needs a
restart. Here the SQLite file is locked by another connection beyond the busy timeout (a backup,
a person's sqlite3 shell); the integration tier stops and starts a real PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from hangar.api.app import create_app
from hangar.providers.base import MachineSpec
from hangar.providers.fake import FakeProvider
from hangar.settings import Settings

from .conftest import ADMIN, client_for, hangar_of, log_in
from .test_bad_input import assert_error_shape

pytestmark = pytest.mark.asyncio

MACHINE = {"provider": "fake", "image": "debian-12", "cpus": 1, "memory_mb": 256}


@contextmanager
def locked(database: Path) -> Iterator[None]:
    """Hold SQLite's write lock on `database` from another connection, as another process would."""
    other = sqlite3.connect(database, isolation_level=None, timeout=10)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


@pytest_asyncio.fixture
async def impatient(migrated: Settings, known_head: None) -> AsyncIterator[FastAPI]:
    """An app whose requests give up on a locked database after 50 ms (default: 5 s)."""
    migrated.database_busy_timeout_seconds = 0.05
    application = create_app(migrated)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture
async def signed_in_admin(impatient: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(impatient) as client:
        await log_in(client, *ADMIN)
        yield client


def database_of(app: FastAPI) -> Path:
    settings: Settings = app.state.settings
    return settings.data_dir / "hangar.db"


async def test_a_locked_database_is_a_503_and_the_service_recovers_without_a_restart(
    impatient: FastAPI, signed_in_admin: httpx.AsyncClient
) -> None:
    with locked(database_of(impatient)):
        refused = await signed_in_admin.post("/api/v1/machines", json={"name": "m1", **MACHINE})
        error = assert_error_shape(refused, 503, "database_unavailable")
        assert "database is locked" in error["message"]
        assert "GET /ready" in error["message"]
        ready = await signed_in_admin.get("/ready")
        error = assert_error_shape(ready, 503, "not_ready")
        assert error["message"] == "database does not answer: database is locked"
    assert (await signed_in_admin.get("/ready")).status_code == 200
    created = await signed_in_admin.post("/api/v1/machines", json={"name": "m1", **MACHINE})
    assert created.status_code == 202, created.text
    await hangar_of(impatient).machines.wait_idle(10)
    listed = (await signed_in_admin.get("/api/v1/machines")).json()
    assert [(m["name"], m["state"]) for m in listed["items"]] == [("m1", "running")]


async def test_an_operation_records_its_end_once_the_database_answers_again(
    impatient: FastAPI, signed_in_admin: httpx.AsyncClient
) -> None:
    machines = hangar_of(impatient).machines
    fake = machines.providers["fake"]
    fake.latency = 0.2  # type: ignore[attr-defined]  # the lock is taken while the provider works
    created = await signed_in_admin.post("/api/v1/machines", json={"name": "m1", **MACHINE})
    assert created.status_code == 202, created.text
    operation_id = created.json()["operation"]["id"]
    # Past the provider's work: every write of the operation meets the lock meanwhile.
    with locked(database_of(impatient)), pytest.raises(TimeoutError):
        await machines.wait_idle(0.6)  # 0.2 s of provider work, then writes that retry
    await machines.wait_idle(10)
    operation = (await signed_in_admin.get(f"/api/v1/operations/{operation_id}")).json()
    assert operation["status"] == "succeeded", operation
    machine = await signed_in_admin.get(f"/api/v1/machines/{created.json()['machine']['id']}")
    assert machine.json()["state"] == "running"


class LockingFake(FakeProvider):
    """Locks the database (from another connection) as its create ends, for `hold` seconds: the
    create's own write of `starting`, between the provider's create and start, meets the lock."""

    def __init__(self, database: Path, hold: float) -> None:
        super().__init__()
        self.database, self.hold = database, hold

    async def create(self, spec: MachineSpec) -> None:
        await super().create(spec)
        other = sqlite3.connect(self.database, isolation_level=None, timeout=10)
        other.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(self.hold, other.close)


async def test_a_create_writes_starting_once_the_database_answers_again(
    impatient: FastAPI, signed_in_admin: httpx.AsyncClient
) -> None:
    machines = hangar_of(impatient).machines
    machines.providers["fake"] = LockingFake(database_of(impatient), hold=0.5)
    created = await signed_in_admin.post("/api/v1/machines", json={"name": "m1", **MACHINE})
    assert created.status_code == 202, created.text
    await machines.wait_idle(10)
    operation_id = created.json()["operation"]["id"]
    operation = (await signed_in_admin.get(f"/api/v1/operations/{operation_id}")).json()
    assert (operation["status"], operation["error"]) == ("succeeded", None)
    machine = await machines.get_machine(created.json()["machine"]["id"])
    assert machine.state == "running"


async def test_every_route_that_uses_the_database_declares_its_503(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            declared = "503" in operation["responses"]
            assert declared == (path != "/health"), (method, path)
