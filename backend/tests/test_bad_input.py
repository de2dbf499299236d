"""Every field of every request, given something wrong: a clear error in one shape, never 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from .conftest import Api, client_for

pytestmark = pytest.mark.asyncio

GOOD_MACHINE = {
    "name": "web-1",
    "provider": "fake",
    "image": "debian-12",
    "cpus": 1,
    "memory_mb": 64,
}


PASSWORD = "/api/v1/auth/password"


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def field_names(error: dict[str, Any]) -> list[str]:
    return [f["field"] for f in error["details"]["fields"]]


@pytest.mark.parametrize(
    ("field", "value", "hint"),
    [
        ("name", "", "DNS label"),
        ("name", "-web", "DNS label"),
        ("name", "web-", "DNS label"),
        ("name", "Web", "DNS label"),
        ("name", "web_1", "DNS label"),
        ("name", "a" * 64, "63"),
        ("name", 7, "string"),
        ("name", None, "string"),
        ("provider", "", "at least 1"),
        ("provider", "nope", "enabled: fake"),
        ("provider", 1, "string"),
        ("image", "", "at least 1"),
        ("cpus", 0, "greater than or equal to 1"),
        ("cpus", 9, "less than or equal to 8"),
        ("cpus", "2", "integer"),
        ("cpus", 1.5, "integer"),
        ("cpus", True, "integer"),
        ("cpus", 1e300, "less than or equal to 8"),
        ("memory_mb", 63, "64"),
        ("memory_mb", 16385, "16384"),
        ("memory_mb", [], "integer"),
        ("start", "yes", "boolean"),
        ("start", 1, "boolean"),
        ("colour", "blue", "Extra inputs"),
    ],
)
async def test_create_machine_rejects(api: Api, field: str, value: object, hint: str) -> None:
    body = {**GOOD_MACHINE, field: value}
    error = assert_error_shape(
        await api.client.post("/api/v1/machines", json=body), 422, "validation_error"
    )
    assert field_names(error) == [field]
    assert hint in error["details"]["fields"][0]["message"]
    assert field in error["message"]
    assert (await api.client.get("/api/v1/machines")).json()["total"] == 0


async def test_an_image_the_provider_lacks_is_a_conflict_naming_the_field(api: Api) -> None:
    """Any image name is well formed (the document cannot list images: they come and go while
    the server runs), so one the provider lacks now is a 409, not a 422; the field is named."""
    body = {**GOOD_MACHINE, "image": "windows-95"}
    error = assert_error_shape(
        await api.client.post("/api/v1/machines", json=body), 409, "conflict"
    )
    assert field_names(error) == ["image"]
    assert "debian-12" in error["details"]["fields"][0]["message"]
    assert (await api.client.get("/api/v1/machines")).json()["total"] == 0


async def test_integers_may_be_written_as_whole_floats(api: Api) -> None:
    """JSON Schema's `integer` (the document's type) includes 2.0: every integer of a body takes
    it, and stores the integer."""
    body = {**GOOD_MACHINE, "cpus": 2.0, "memory_mb": 128.0, "start": False}
    created = await api.client.post("/api/v1/machines", json=body)
    assert created.status_code == 202, created.text
    machine = created.json()["machine"]
    assert (machine["cpus"], machine["memory_mb"]) == (2, 128)
    assert isinstance(machine["cpus"], int)
    await api.settle()
    disk = await api.client.post(
        f"/api/v1/machines/{machine['id']}/disks", json={"name": "data", "size_mb": 16.0}
    )
    assert disk.status_code == 202, disk.text
    assert disk.json()["disk"]["size_mb"] == 16
    fault = await api.client.post(
        "/api/v1/providers/fake/faults", json={"action": "start", "times": 1.0}
    )
    assert fault.status_code == 204, fault.text


@pytest.mark.parametrize("missing", sorted(set(GOOD_MACHINE)))
async def test_create_machine_requires(api: Api, missing: str) -> None:
    body = {k: v for k, v in GOOD_MACHINE.items() if k != missing}
    error = assert_error_shape(
        await api.client.post("/api/v1/machines", json=body), 422, "validation_error"
    )
    assert field_names(error) == [missing]


@pytest.mark.parametrize(
    ("path_suffix", "body", "field"),
    [
        ("clone", {"name": "Bad"}, "name"),
        ("clone", {}, "name"),
        ("disks", {"name": "data", "size_mb": 0}, "size_mb"),
        ("disks", {"name": "data", "size_mb": 65537}, "size_mb"),
        ("disks", {"name": "-data", "size_mb": 1}, "name"),
        ("disks", {"name": "data", "size_mb": "1"}, "size_mb"),
        ("snapshots", {"name": ""}, "name"),
        ("snapshots", {"name": "x" * 64}, "name"),
        ("snapshots", {"name": "ok", "extra": 1}, "extra"),
    ],
)
async def test_machine_sub_resources_reject(
    api: Api, path_suffix: str, body: dict[str, object], field: str
) -> None:
    machine = await api.create("web-1", start=False)
    response = await api.client.post(f"/api/v1/machines/{machine['id']}/{path_suffix}", json=body)
    error = assert_error_shape(response, 422, "validation_error")
    assert field_names(error) == [field]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "launch"}, "action"),
        ({"action": ""}, "action"),
        ({"action": "start", "times": 0}, "times"),
        ({"action": "start", "times": 1001}, "times"),
        ({"action": "start", "message": ""}, "message"),
    ],
)
async def test_fault_injection_rejects(api: Api, body: dict[str, object], field: str) -> None:
    response = await api.client.post("/api/v1/providers/fake/faults", json=body)
    error = assert_error_shape(response, 422, "validation_error")
    assert field_names(error) == [field]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/tokens", {"name": ""}, "name"),
        ("/api/v1/tokens", {"name": "x" * 101}, "name"),
        ("/api/v1/tokens", {}, "name"),
        (PASSWORD, {"current_password": "admin-password", "new_password": "short"}, "new_password"),
        (PASSWORD, {"current_password": "", "new_password": "long-enough"}, "current_password"),
    ],
)  # fmt: skip
async def test_auth_and_token_bodies_reject(
    api: Api, path: str, body: dict[str, object], field: str
) -> None:
    error = assert_error_shape(await api.client.post(path, json=body), 422, "validation_error")
    assert field_names(error) == [field]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "", "password": "x"}, "username"),
        ({"username": "admin", "password": ""}, "password"),
        ({"username": "u" * 65, "password": "x"}, "username"),
        ({"username": "admin"}, "password"),
    ],
)
async def test_login_rejects(app: FastAPI, body: dict[str, object], field: str) -> None:
    async with client_for(app) as client:
        response = await client.post("/api/v1/auth/login", json=body)
    error = assert_error_shape(response, 422, "validation_error")
    assert field_names(error) == [field]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/machines", {"limit": 0}, "limit"),
        ("/api/v1/machines", {"limit": 501}, "limit"),
        ("/api/v1/machines", {"limit": "many"}, "limit"),
        ("/api/v1/machines", {"offset": -1}, "offset"),
        # Beyond SQLite's 64-bit integers: refused here, not an overflow (a 500) in the database.
        ("/api/v1/machines", {"offset": 2**63}, "offset"),
        ("/api/v1/machines", {"state": "sleeping"}, "state"),
        ("/api/v1/machines", {"name": "x" * 64}, "name"),
        ("/api/v1/events/log", {"limit": 0}, "limit"),
        ("/api/v1/events/log", {"before": 0}, "before"),
        ("/api/v1/events/log", {"before": "x"}, "before"),
        ("/api/v1/events/log", {"before": 2**63}, "before"),
        ("/api/v1/events", {"after": -1}, "after"),
        ("/api/v1/events", {"after": 2**63}, "after"),
        ("/api/v1/operations", {"limit": 501}, "limit"),
    ],
)
async def test_query_parameters_reject(
    api: Api, path: str, params: dict[str, str | int], field: str
) -> None:
    error = assert_error_shape(await api.client.get(path, params=params), 422, "validation_error")
    assert field_names(error) == [field]


@pytest.mark.parametrize("lines", [0, 1001, "all"])
async def test_console_lines_reject(api: Api, lines: str | int) -> None:
    machine = await api.create("web-1")
    response = await api.client.get(
        f"/api/v1/machines/{machine['id']}/console", params={"lines": lines}
    )
    assert field_names(assert_error_shape(response, 422, "validation_error")) == ["lines"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"name": "web-1",}', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"name=web-1", "application/x-www-form-urlencoded"),
        (b"web-1", "text/plain"),
    ],
)
async def test_malformed_bodies_are_400(api: Api, content: bytes, content_type: str) -> None:
    response = await api.client.post(
        "/api/v1/machines", content=content, headers={"content-type": content_type}
    )
    assert_error_shape(response, 400, "bad_request")


@pytest.mark.parametrize("body", [[], "web-1", 42, None])
async def test_non_object_json_is_422(api: Api, body: object) -> None:
    response = await api.client.post("/api/v1/machines", json=body)
    assert_error_shape(response, 422, "validation_error")


async def test_unknown_path_is_404_in_the_error_shape(api: Api) -> None:
    error = assert_error_shape(await api.client.get("/api/v1/nothing"), 404, "not_found")
    assert "/api/v1/nothing" in error["message"]


async def test_wrong_method_is_405_in_the_error_shape(api: Api) -> None:
    error = assert_error_shape(await api.client.put("/api/v1/machines"), 405, "method_not_allowed")
    assert "GET" in error["message"]


async def test_unexpected_exception_is_500_in_the_error_shape(fresh_app: FastAPI) -> None:
    async def explode() -> None:
        raise RuntimeError("boom")

    fresh_app.add_api_route("/api/v1/explode", explode)  # its own app: the route does not leak
    async with client_for(fresh_app, raise_app_exceptions=False) as client:
        response = await client.get("/api/v1/explode")
    error = assert_error_shape(response, 500, "internal_error")
    assert "boom" not in error["message"]  # internals stay in the log
