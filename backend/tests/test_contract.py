"""GET /api/v1/openapi.json is the contract: tests built from it cover a new endpoint by themselves.

Every mutating operation refuses a caller who is not signed in (401) and a viewer (403); every path
answers a method it lacks with 405 and the `Allow` header the document implies; docs/api.md names
exactly the document's operations and every error status the document declares."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hangar.api.contract import contract
from hangar.providers.registry import FACTORIES

from .conftest import client_for
from .test_bad_input import assert_error_shape

API_DOC = Path(__file__).parents[2] / "docs" / "api.md"
MUTATING = ("post", "put", "patch", "delete")
# Mutations that are not admin-only, each with why.
OPEN = {
    ("post", "/api/v1/auth/login"): "it is how a caller signs in",
}
OWN = {
    ("post", "/api/v1/auth/logout"): "anyone signed in may end their own session",
    ("post", "/api/v1/auth/password"): "anyone signed in may change their own password",
    ("post", "/api/v1/tokens"): "a viewer may make API tokens for scripts that read",
    ("delete", "/api/v1/tokens/{token_id}"): "a viewer may revoke their own tokens",
}
# What the document serves but does not list as operations.
NOT_OPERATIONS = {("get", "/api/v1/openapi.json"), ("get", "/api/docs")}


def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(app: FastAPI) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, ops in document(app)["paths"].items()
        for method in ops
        if method in {"get", *MUTATING}
    ]


def mutations(app: FastAPI) -> list[tuple[str, str]]:
    return [(m, p) for m, p in operations(app) if m in MUTATING]


def concrete(path: str) -> str:
    """A path of the template with every parameter filled by a name that exists nowhere."""
    return re.sub(r"\{[^}]+\}", "no-such-id", path)


@pytest.mark.asyncio
async def test_the_document_has_mutations_to_check(app: FastAPI) -> None:
    found = mutations(app)
    assert ("post", "/api/v1/machines") in found
    assert set(OPEN) | set(OWN) <= set(found), "OPEN and OWN name only operations that exist"


@pytest.mark.asyncio
async def test_every_mutation_but_login_answers_401_without_a_caller(app: FastAPI) -> None:
    refused: list[tuple[str, str]] = []
    async with client_for(app) as anonymous:
        for method, path in mutations(app):
            if (method, path) in OPEN:
                continue
            response = await anonymous.request(method.upper(), concrete(path))
            assert_error_shape(response, 401, "not_authenticated")
            declared = document(app)["paths"][path][method]["responses"]
            assert "401" in declared, f"{method.upper()} {path} does not declare its 401"
            refused.append((method, path))
    assert len(refused) == len(mutations(app)) - len(OPEN)


@pytest.mark.asyncio
async def test_every_admin_mutation_answers_403_to_a_viewer(
    app: FastAPI, viewer: httpx.AsyncClient
) -> None:
    refused: list[tuple[str, str]] = []
    for method, path in mutations(app):
        if (method, path) in OPEN or (method, path) in OWN:
            continue
        response = await viewer.request(method.upper(), concrete(path))
        error = assert_error_shape(response, 403, "forbidden")
        assert "viewer" in error["message"]
        assert "403" in document(app)["paths"][path][method]["responses"]
        refused.append((method, path))
    assert len(refused) == len(mutations(app)) - len(OPEN) - len(OWN)


@pytest.mark.asyncio
async def test_a_viewer_is_not_refused_what_is_their_own(viewer: httpx.AsyncClient) -> None:
    """OWN names only what a viewer may do: none of it is refused for the role (logout last, as
    it ends the viewer's session)."""
    for method, path in sorted(OWN, key=lambda op: op[1].endswith("/logout")):
        response = await viewer.request(method.upper(), concrete(path))
        assert response.status_code != 403, (method, path, response.text)
        assert response.status_code < 500, (method, path, response.text)


@pytest.mark.asyncio
async def test_every_cookie_mutation_without_csrf_answers_403(
    app: FastAPI, viewer: httpx.AsyncClient
) -> None:
    del viewer.headers["X-CSRF-Token"]
    for method, path in mutations(app):
        if (method, path) in OPEN:
            continue
        response = await viewer.request(method.upper(), concrete(path))
        assert_error_shape(response, 403, "csrf_failed")


@pytest.mark.asyncio
async def test_a_missing_method_is_405_with_every_method_of_the_path(
    app: FastAPI, admin: httpx.AsyncClient
) -> None:
    for path, ops in document(app)["paths"].items():
        response = await admin.request("PATCH", concrete(path))
        assert_error_shape(response, 405, "method_not_allowed")
        allowed = {method.strip() for method in response.headers["allow"].split(",")}
        assert allowed == {method.upper() for method in ops}, path


@pytest.mark.asyncio
async def test_every_error_answer_is_declared_in_the_error_shape(app: FastAPI) -> None:
    doc = document(app)
    for path, ops in doc["paths"].items():
        for method, operation in ops.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


@pytest.mark.asyncio
async def test_closed_sets_are_enums(app: FastAPI) -> None:
    schemas = document(app)["components"]["schemas"]
    assert schemas["MachineIn"]["properties"]["provider"]["enum"] == ["fake"]  # what it enabled
    assert "start" in schemas["FaultIn"]["properties"]["action"]["enum"]
    assert "running" in schemas["MachineOut"]["properties"]["state"]["enum"]


@pytest.mark.asyncio
async def test_the_provider_enum_is_what_this_server_accepts(
    app: FastAPI, admin: httpx.AsyncClient
) -> None:
    """A provider the document allows is not refused as a field error; one it leaves out is."""
    allowed = document(app)["components"]["schemas"]["MachineIn"]["properties"]["provider"]
    assert allowed["enum"] == sorted(app.state.settings.providers)
    body = {"name": "m1", "image": "debian-12", "cpus": 1, "memory_mb": 64, "start": False}
    for provider in allowed["enum"]:
        response = await admin.post("/api/v1/machines", json={**body, "provider": provider})
        assert response.status_code == 202, response.text
    for provider in sorted(set(FACTORIES) - set(allowed["enum"])):
        response = await admin.post("/api/v1/machines", json={**body, "provider": provider})
        assert_error_shape(response, 422, "validation_error")


def test_a_runtime_enum_must_name_a_field_of_the_document() -> None:
    with pytest.raises(ValueError, match=r"no field MachineIn\.flavour"):
        contract(FastAPI(), [], enums={("MachineIn", "flavour"): ["x"]})


@pytest.mark.asyncio
async def test_content_types_other_than_json_are_declared(app: FastAPI) -> None:
    paths = document(app)["paths"]
    assert list(paths["/api/v1/events"]["get"]["responses"]["200"]["content"]) == [
        "text/event-stream"
    ]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]


# ---------------------------------------------------------------- docs/api.md against the document
ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)`((?: \\\| `[^`]+`)*)", re.M)
INLINE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`")
STATUS_ROW = re.compile(r"^\| (\d{3}) \|", re.M)


def template(path: str) -> str:
    """Parameters named alike, so the doc's `{id}` is the document's `{machine_id}`."""
    return re.sub(r"\{[^}]+\}", "{}", path.split("?")[0])


def documented_operations(text: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for method, path, alternatives in ROW.findall(text):
        found.add((method.lower(), template(path)))
        for last in re.findall(r"`([^`]+)`", alternatives):
            found.add((method.lower(), template(path.rsplit("/", 1)[0] + "/" + last)))
    for method, path in INLINE.findall(text):
        found.add((method.lower(), template(path)))
    return found


def test_the_doc_parser_reads_rows_alternatives_and_inline_mentions() -> None:
    text = "| POST | `/a/{id}/start` \\| `stop` | - |\n- `GET /health` - ok\n"
    assert documented_operations(text) == {
        ("post", "/a/{}/start"),
        ("post", "/a/{}/stop"),
        ("get", "/health"),
    }


@pytest.mark.asyncio
async def test_docs_api_md_names_exactly_the_documents_operations(app: FastAPI) -> None:
    in_doc = documented_operations(API_DOC.read_text())
    in_document = {(method, template(path)) for method, path in operations(app)}
    not_operations = {(method, template(path)) for method, path in NOT_OPERATIONS}
    assert sorted(in_document - in_doc) == [], "operations docs/api.md does not describe"
    assert sorted(in_doc - in_document - not_operations) == [], "docs/api.md names these"


@pytest.mark.asyncio
async def test_docs_api_md_explains_every_error_status_the_document_declares(
    app: FastAPI,
) -> None:
    explained = set(STATUS_ROW.findall(API_DOC.read_text()))
    declared = {
        status
        for ops in document(app)["paths"].values()
        for operation in ops.values()
        for status in operation["responses"]
        if int(status) >= 400
    }
    assert declared, "the document declares error answers"
    assert sorted(declared - explained) == [], "error statuses docs/api.md does not explain"
