"""Probes, metrics and the static web UI."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from hangar.api.app import create_app
from hangar.settings import Settings

from .conftest import ADMIN, Api, client_for, hangar_of, log_in, make_settings

pytestmark = pytest.mark.asyncio


async def test_health(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_when_migrated(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/ready")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_not_ready_when_the_schema_is_behind(
    anonymous: httpx.AsyncClient, app: FastAPI
) -> None:
    async with hangar_of(app).engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    response = await anonymous.get("/ready")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert "uv run hangar migrate" in error["message"]


async def test_not_ready_when_the_database_fails(
    anonymous: httpx.AsyncClient, app: FastAPI
) -> None:
    async with hangar_of(app).engine.begin() as connection:
        await connection.execute(text("DROP TABLE alembic_version"))
        await connection.execute(text("CREATE TABLE alembic_version (broken INTEGER)"))
    response = await anonymous.get("/ready")
    assert response.status_code == 503
    assert response.json()["error"]["message"].startswith("database does not answer")


async def test_metrics(fresh_app: FastAPI) -> None:
    # An app of its own: the counts below are this test's requests and operations only.
    async with client_for(fresh_app) as admin, client_for(fresh_app) as anonymous:
        await log_in(admin, *ADMIN)
        api = Api(admin, fresh_app)
        await api.create("web-1")
        stopped = await api.create("web-2", start=False)
        await api.fault("start", "nope")
        await api.act(stopped["id"], "start")
        response = await anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text_ = response.text
    assert 'hangar_machines{provider="fake",state="running"} 1.0' in text_
    assert 'hangar_machines{provider="fake",state="error"} 1.0' in text_
    assert 'hangar_operations_total{kind="create",outcome="succeeded"} 2.0' in text_
    assert 'hangar_operations_total{kind="start",outcome="failed"} 1.0' in text_
    assert (
        'hangar_http_requests_total{method="POST",route="/api/v1/machines",status="202"} 2.0'
        in text_
    )
    assert "hangar_http_request_seconds_bucket" in text_


async def test_each_app_has_its_own_metrics(tmp_path: Path) -> None:
    # Two apps in one process: no duplicate-registration error, and counts do not mix.
    first, second = create_app(make_settings(tmp_path)), create_app(make_settings(tmp_path))
    first.state.metrics.operation_finished("start", "succeeded")
    assert b'kind="start",outcome="succeeded"} 1.0' in first.state.metrics.render()
    assert b'kind="start"' not in second.state.metrics.render()


@pytest.fixture
def frontend(tmp_path: Path) -> Path:
    site = tmp_path / "frontend"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>hangar</title>", encoding="utf-8")
    (site / "assets" / "app.js").write_text("console.log('hangar')", encoding="utf-8")
    return site


@pytest.fixture
def ui_app(migrated: Settings, frontend: Path) -> FastAPI:
    migrated.frontend_dir = frontend
    return create_app(migrated)


async def test_static_files_and_history_fallback(ui_app: FastAPI) -> None:
    async with ui_app.router.lifespan_context(ui_app), client_for(ui_app) as client:
        index = await client.get("/")
        assert index.status_code == 200
        assert "<title>hangar</title>" in index.text
        asset = await client.get("/assets/app.js")
        assert asset.text == "console.log('hangar')"
        for path in ("/machines", "/machines/abc/console", "/login?next=/machines"):
            deep = await client.get(path)
            assert deep.status_code == 200, path
            assert deep.text == index.text
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert "hangar_http_requests_total" in (await client.get("/metrics")).text
        for path in ("/api/v1/nothing", "/api", "/api/v2/machines"):
            api_miss = await client.get(path)
            assert api_miss.status_code == 404, path
            assert api_miss.json()["error"]["code"] == "not_found"
        posted = await client.post("/machines")
        assert posted.status_code == 405
        assert posted.json()["error"]["code"] == "method_not_allowed"
        # The UI takes every GET the API has no route for; a POST-only path of the API is a 405.
        for path in ("/api/v1/auth/login", "/api/v1/machines/abc/start"):
            got = await client.get(path)
            assert got.status_code == 405, path
            assert got.json()["error"]["code"] == "method_not_allowed"
            assert got.headers["allow"] == "POST"


async def test_without_frontend_dir_root_is_a_json_404(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_request_metrics_pass_other_scopes_through() -> None:
    from hangar.api.middleware import RequestMetrics
    from hangar.metrics import Metrics

    seen: list[str] = []

    async def inner(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(str(scope["type"]))

    metrics = Metrics()
    middleware = RequestMetrics(inner, metrics)  # type: ignore[arg-type]
    await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
    assert b"hangar_http_requests_total{" not in metrics.render()
