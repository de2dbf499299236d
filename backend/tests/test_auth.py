"""Login, sessions, CSRF, roles, password change, API tokens and the login rate limit."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from hangar.db.models import Session, utcnow
from hangar.service.ratelimit import SlidingWindow

from .conftest import ADMIN, VIEWER, client_for, hangar_of, log_in
from .test_bad_input import assert_error_shape

pytestmark = pytest.mark.asyncio


async def test_login_sets_an_httponly_lax_cookie(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(
        "/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["username"] == "admin"
    assert body["user"]["role"] == "admin"
    assert set(body["user"]) == {"id", "username", "role"}
    assert body["csrf_token"]
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("hangar_session=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


async def test_wrong_password_and_unknown_user_are_401(anonymous: httpx.AsyncClient) -> None:
    for username, password in (("admin", "wrong-password"), ("nobody", "whatever")):
        response = await anonymous.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"


async def test_me_with_cookie_returns_the_csrf_token(admin: httpx.AsyncClient) -> None:
    me = (await admin.get("/api/v1/auth/me")).json()
    assert me["user"]["username"] == "admin"
    assert me["csrf_token"] == admin.headers["X-CSRF-Token"]


async def test_requests_without_credentials_are_401(anonymous: httpx.AsyncClient) -> None:
    for path in ("/api/v1/auth/me", "/api/v1/machines", "/api/v1/tokens", "/api/v1/providers"):
        response = await anonymous.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated"


async def test_unsupported_authorization_scheme_is_401(anonymous: httpx.AsyncClient) -> None:
    for value in ("Basic YWRtaW46eA==", "Bearer", "Bearer not-a-hangar-token"):
        response = await anonymous.get("/api/v1/auth/me", headers={"Authorization": value})
        assert response.status_code == 401, value


async def test_cookie_mutation_needs_the_csrf_token(admin: httpx.AsyncClient) -> None:
    token = admin.headers.pop("X-CSRF-Token")
    missing = await admin.post("/api/v1/tokens", json={"name": "ci"})
    assert missing.status_code == 403
    assert missing.json()["error"]["code"] == "csrf_failed"
    wrong = await admin.post("/api/v1/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": "x"})
    assert wrong.json()["error"]["code"] == "csrf_failed"
    right = await admin.post("/api/v1/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": token})
    assert right.status_code == 201


async def test_logout_ends_the_session(admin: httpx.AsyncClient, app: FastAPI) -> None:
    cookie = admin.cookies["hangar_session"]
    response = await admin.post("/api/v1/auth/logout")
    assert response.status_code == 204
    assert "hangar_session" not in admin.cookies
    # The old cookie is dead on the server too, not only forgotten by this client.
    async with client_for(app) as replay:
        replay.cookies.set("hangar_session", cookie)
        assert (await replay.get("/api/v1/auth/me")).status_code == 401


async def test_expired_session_is_401(admin: httpx.AsyncClient, app: FastAPI) -> None:
    engine = hangar_of(app).engine
    async with engine.begin() as connection:
        await connection.execute(update(Session).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = await admin.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert "log in again" in response.json()["error"]["message"]


async def test_password_change(admin: httpx.AsyncClient, app: FastAPI) -> None:
    response = await admin.post(
        "/api/v1/auth/password",
        json={"current_password": ADMIN[1], "new_password": "a-new-password"},
    )
    assert response.status_code == 204
    async with client_for(app) as client:
        old = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN[1]}
        )
        assert old.status_code == 401
        await log_in(client, "admin", "a-new-password")


async def test_a_wrong_current_password_is_403_naming_the_field(admin: httpx.AsyncClient) -> None:
    """Well formed, so not a 422 (the document allows any such string); not a 401 either, which
    would sign the person out of the web UI."""
    response = await admin.post(
        "/api/v1/auth/password",
        json={"current_password": "not-the-password", "new_password": "a-new-password"},
    )
    error = assert_error_shape(response, 403, "wrong_password")
    assert error["details"]["fields"] == [
        {"field": "current_password", "message": "is not your current password"}
    ]


async def test_viewer_may_manage_own_password_and_tokens(viewer: httpx.AsyncClient) -> None:
    assert (await viewer.post("/api/v1/tokens", json={"name": "read"})).status_code == 201
    response = await viewer.post(
        "/api/v1/auth/password",
        json={"current_password": VIEWER[1], "new_password": "viewer-password-2"},
    )
    assert response.status_code == 204


# ---------------------------------------------------------------- API tokens
async def test_token_lifecycle(admin: httpx.AsyncClient, app: FastAPI) -> None:
    created = await admin.post("/api/v1/tokens", json={"name": "ci"})
    assert created.status_code == 201
    token = created.json()
    assert token["token"].startswith("hgr_")
    assert set(token) == {"id", "name", "created_at", "last_used_at", "revoked_at", "token"}

    listed = (await admin.get("/api/v1/tokens")).json()
    assert [t["id"] for t in listed] == [token["id"]]
    assert "token" not in listed[0]
    assert listed[0]["last_used_at"] is None

    async with client_for(app) as script:
        script.headers["Authorization"] = f"Bearer {token['token']}"
        me = (await script.get("/api/v1/auth/me")).json()
        assert me == {"user": me["user"], "csrf_token": None}
        # Bearer callers need no CSRF token.
        body = {
            "name": "web-1",
            "provider": "fake",
            "image": "debian-12",
            "cpus": 1,
            "memory_mb": 64,
        }
        assert (await script.post("/api/v1/machines", json=body)).status_code == 202
        await hangar_of(app).machines.wait_idle(10)

        used = (await admin.get("/api/v1/tokens")).json()[0]
        assert used["last_used_at"] is not None

        assert (await admin.delete(f"/api/v1/tokens/{token['id']}")).status_code == 204
        refused = await script.get("/api/v1/auth/me")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["error"]["message"]

    revoked = (await admin.get("/api/v1/tokens")).json()[0]
    assert revoked["revoked_at"] is not None
    assert (await admin.delete(f"/api/v1/tokens/{token['id']}")).status_code == 204


async def test_tokens_of_others_are_invisible(
    admin: httpx.AsyncClient, viewer: httpx.AsyncClient
) -> None:
    token = (await admin.post("/api/v1/tokens", json={"name": "admin-only"})).json()
    assert (await viewer.get("/api/v1/tokens")).json() == []
    response = await viewer.delete(f"/api/v1/tokens/{token['id']}")
    assert response.status_code == 404
    assert (await admin.delete("/api/v1/tokens/unknown")).status_code == 404


# ---------------------------------------------------------------- rate limit
async def test_failed_logins_per_username_are_rate_limited(app: FastAPI) -> None:
    limit = hangar_of(app).settings.login_attempts_per_user
    async with client_for(app) as client:
        for _ in range(limit):
            response = await client.post(
                "/api/v1/auth/login", json={"username": "admin", "password": "guess-guess"}
            )
            assert response.status_code == 401
        limited = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN[1]}
        )
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        # Another username from another address is not affected.
        other = await client.post(
            "/api/v1/auth/login", json={"username": "someone", "password": "guess-guess"}
        )
        assert other.status_code == 401


async def test_failed_logins_per_address_are_rate_limited(app: FastAPI) -> None:
    hangar = hangar_of(app)
    hangar.logins_by_address = SlidingWindow(3, 60)
    async with client_for(app) as client:
        for attempt in range(3):
            response = await client.post(
                "/api/v1/auth/login", json={"username": f"user{attempt}", "password": "x"}
            )
            assert response.status_code == 401
        limited = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN[1]}
        )
        assert limited.status_code == 429


async def test_a_successful_login_clears_the_username_failures(app: FastAPI) -> None:
    limit = hangar_of(app).settings.login_attempts_per_user
    async with client_for(app) as client:
        for _ in range(limit - 1):
            await client.post("/api/v1/auth/login", json={"username": "admin", "password": "bad"})
        await log_in(client, *ADMIN)
        for _ in range(limit - 1):
            response = await client.post(
                "/api/v1/auth/login", json={"username": "admin", "password": "bad"}
            )
            assert response.status_code == 401
