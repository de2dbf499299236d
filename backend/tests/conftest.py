"""Fixtures of the hangar unit tests: one database file per test, the fake provider with no latency,
an app whose lifespan runs around each test, and clients signed in as admin or viewer.

The `app` of the API tests is built once per test process and its lifespan runs around each test
on a fresh copy of the migrated database in an emptied data dir: every test gets new services
(providers, event bus, rate limits, users, the engine's connections and pool) and new data, as
with an app of its own. What is shared is what `create_app` builds, whose routes FastAPI compiles
on an app's first requests (for a new app per test, that was most of an API test's time), and
the SQLAlchemy engine object: its dialect and its cache of compiled SQL statements (a new engine
compiles every statement again, a few milliseconds each under coverage). Two things of the app
are per app and so shared: its routes (a test that adds one uses `fresh_app`) and its metrics (a
test that counts them uses `fresh_app` too).

Start-up costs paid once per process instead of per test, none of them a subject of the API
tests: the admin that the start-up creates from `admin_password` is already in the `app`'s
database copy (`fresh_app` and test_service still see it created), and so is a session of the
admin, opened as a login opens one, which the `admin` client carries (test_auth logs in through
POST /auth/login; the `viewer` client gets its session opened directly), and the start-up's
migration check compares with the migration head read once (alembic compiles every script to
find it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.ext.asyncio import AsyncEngine

from hangar.api import context
from hangar.api.app import create_app
from hangar.api.auth import SESSION_COOKIE
from hangar.api.context import Hangar
from hangar.db import migrate
from hangar.db.engine import create_engine, create_sessionmaker
from hangar.service import passwords
from hangar.service.users import UserService
from hangar.settings import Settings

if TYPE_CHECKING:
    from .e2b_replay import E2BReplay, RecordedWaits

ADMIN = ("admin", "admin-password")
VIEWER = ("viewer", "viewer-password")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HANGAR_* variable of the person running the tests leaks in; hashing is cheap."""
    without_hangar_variables(monkeypatch)
    monkeypatch.setattr(passwords, "PASSWORD_HASH", CHEAP_HASH)


# Minimal argon2 cost: the tests check behaviour, not hashing strength.
CHEAP_HASH = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1),))


def without_hangar_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Also the E2B SDK's own variables: a person's key must never reach a unit test."""
    for name in list(os.environ):
        if name.startswith(("HANGAR_", "E2B_")):
            monkeypatch.delenv(name)


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "fake_latency_seconds": 0.0,
        "frontend_dir": None,
        "secret_key": "test-secret-key",
        "admin_password": ADMIN[1],
        "shutdown_grace_seconds": 5.0,
        # No observer loop unless a test asks for one: a tick must not change rows mid-test.
        "observer_interval_seconds": 0,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database migrated to head per test process; tests get a copy (migrating is slow)."""
    path = tmp_path_factory.mktemp("template") / "hangar.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@dataclass(frozen=True)
class Template:
    """The shared app's database template and the admin's session opened in it."""

    path: Path
    admin_session: str  # the session cookie's value


@pytest.fixture(scope="session")
def app_template(migrated_template: Path, shared_app: FastAPI) -> Template:
    """The migrated database plus the admin that the app's start-up would create from
    `admin_password` (what test_service and the `fresh_app` tests still see it do), signed in
    once: a browser session of the admin, opened as POST /auth/login would open it."""
    path = migrated_template.with_name("hangar-with-admin.db")
    shutil.copyfile(migrated_template, path)
    settings: Settings = shared_app.state.settings

    async def create_admin() -> str:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            users = UserService(
                create_sessionmaker(engine),
                settings.resolved_secret_key(),
                timedelta(hours=settings.session_hours),
            )
            login = await users.open_session(await users.create_user(*ADMIN))
            return login.session_secret
        finally:
            await engine.dispose()

    with pytest.MonkeyPatch.context() as patch:  # session-scoped: before the autouse fixture
        patch.setattr(passwords, "PASSWORD_HASH", CHEAP_HASH)
        return Template(path, asyncio.run(create_admin()))


@pytest.fixture(scope="session")
def head_revision() -> str | None:
    """The head of the migration scripts, read once per process (alembic compiles every script)."""
    return migrate.head_revision()


@pytest.fixture
def known_head(head_revision: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's start-up check compares with the head read once (the scripts do not change)."""
    monkeypatch.setattr(migrate, "head_revision", lambda: head_revision)


@pytest.fixture
def migrated(settings: Settings, migrated_template: Path) -> Settings:
    settings.ensure_data_dir()
    shutil.copyfile(migrated_template, settings.data_dir / "hangar.db")
    return settings


@pytest.fixture(scope="session")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """The app the API tests share (see the module docstring); its data dir is emptied per test."""
    with pytest.MonkeyPatch.context() as patch:  # session-scoped: before the autouse fixture
        without_hangar_variables(patch)
        return create_app(make_settings(tmp_path_factory.mktemp("shared-app")))


@pytest.fixture(scope="session")
def shared_engine(shared_app: FastAPI) -> AsyncEngine:
    """The engine object that the shared app's lifespans use (see `app`)."""
    return create_engine(shared_app.state.settings.database_url)


@pytest_asyncio.fixture
async def app(
    shared_app: FastAPI,
    shared_engine: AsyncEngine,
    app_template: Template,
    known_head: None,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[FastAPI]:
    """The shared app, started on a fresh data dir holding a copy of the migrated database
    (with its admin already there) and stopped after the test. Its start-up takes the shared
    engine instead of creating one (connections, pool and database are new per test)."""
    settings: Settings = shared_app.state.settings

    def engine_for(url: str, busy_timeout_s: float) -> AsyncEngine:
        if url == settings.database_url:
            return shared_engine
        return create_engine(url, busy_timeout_s)

    monkeypatch.setattr(context, "create_engine", engine_for)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    settings.ensure_data_dir()
    shutil.copyfile(app_template.path, settings.data_dir / "hangar.db")
    async with shared_app.router.lifespan_context(shared_app):
        yield shared_app


@pytest_asyncio.fixture
async def fresh_app(migrated: Settings, known_head: None) -> AsyncIterator[FastAPI]:
    """An app of the test's own, for a test that changes the app itself or counts its metrics."""
    application = create_app(migrated)
    async with application.router.lifespan_context(application):
        yield application


def hangar_of(app: FastAPI) -> Hangar:
    hangar: Hangar = app.state.hangar
    return hangar


def client_for(app: FastAPI, **kwargs: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, **kwargs)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://hangar.test")


@pytest_asyncio.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


async def log_in(client: httpx.AsyncClient, username: str, password: str) -> str:
    """Log in with the cookie; set the CSRF header on the client; return the CSRF token."""
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    csrf: str = response.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = csrf
    return csrf


async def signed_in(app: FastAPI, client: httpx.AsyncClient, username: str) -> None:
    """What a login leaves on a client (the session cookie, the CSRF header), without the request.

    The fixtures' clients are signed in this way: the login itself (password check, rate limits,
    cookie attributes) is test_auth's subject, through the API with `log_in`."""
    users = hangar_of(app).users
    login = await users.open_session(await users.get_user(username))
    signed_in_with(app, client, login.session_secret)


def signed_in_with(app: FastAPI, client: httpx.AsyncClient, session_secret: str) -> None:
    client.cookies.set(SESSION_COOKIE, session_secret, domain="hangar.test", path="/")
    client.headers["X-CSRF-Token"] = hangar_of(app).users.csrf_token(session_secret)


@pytest_asyncio.fixture
async def admin(app: FastAPI, app_template: Template) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in with the admin's session that is already in the database copy."""
    async with client_for(app) as client:
        signed_in_with(app, client, app_template.admin_session)
        yield client


@pytest_asyncio.fixture
async def viewer(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    await hangar_of(app).users.create_user(*VIEWER, role="viewer")
    async with client_for(app) as client:
        await signed_in(app, client, VIEWER[0])
        yield client


@dataclass
class Api:
    """Intention-revealing helpers over the admin client (what a script would do)."""

    client: httpx.AsyncClient
    app: FastAPI

    async def settle(self) -> None:
        """Wait (bounded) until no operation runs."""
        await hangar_of(self.app).machines.wait_idle(10)

    async def create(
        self, name: str = "web-1", *, start: bool = True, **fields: object
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "provider": "fake",
            "image": "debian-12",
            "cpus": 1,
            "memory_mb": 256,
            "start": start,
        }
        body.update(fields)
        response = await self.client.post("/api/v1/machines", json=body)
        assert response.status_code == 202, response.text
        await self.settle()
        return await self.machine(response.json()["machine"]["id"])

    async def machine(self, machine_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/machines/{machine_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def act(self, machine_id: str, action: str) -> dict[str, Any]:
        """POST an action, wait for it, return the finished operation."""
        response = await self.client.post(f"/api/v1/machines/{machine_id}/{action}")
        assert response.status_code == 202, response.text
        return await self.finished(response.json()["operation"]["id"])

    async def finished(self, operation_id: str) -> dict[str, Any]:
        await self.settle()
        response = await self.client.get(f"/api/v1/operations/{operation_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def fault(self, action: str, message: str = "injected fault", times: int = 1) -> None:
        response = await self.client.post(
            "/api/v1/providers/fake/faults",
            json={"action": action, "message": message, "times": times},
        )
        assert response.status_code == 204, response.text


@pytest.fixture
def api(admin: httpx.AsyncClient, app: FastAPI) -> Api:
    return Api(admin, app)


# ------------------------------------------------------------------ the E2B tests (test_e2b_*)
@pytest.fixture
def e2b_replay() -> Iterator[E2BReplay]:
    """E2B's control plane replayed, every exchange checked against its OpenAPI description."""
    from .e2b_replay import replaying_e2b  # imported by the tests that use it

    with replaying_e2b() as replay:
        yield replay


@pytest.fixture
def waits() -> RecordedWaits:
    """The E2B provider's backoff `sleep`, recording the waits instead of waiting."""
    from .e2b_replay import RecordedWaits

    return RecordedWaits()
