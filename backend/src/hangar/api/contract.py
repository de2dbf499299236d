"""The OpenAPI document declares every answer an operation can give, in the API's error shape.

What a route can answer follows from what it depends on, so it is derived, not listed per route:
a signed-in caller (401), a writer or an admin (403: CSRF, role), an id in the path (404), query,
header or body parameters (422; a body also 400 for malformed JSON or another content type), the
service's state (503: the database does not answer).
What only a handler knows (a conflict, a rate limit) it declares with `raises(...)`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute

from hangar.api.auth import admin_principal, current_principal, writing_principal
from hangar.api.context import get_hangar

# What each error status means, for the document's descriptions (docs/api.md says more).
MEANING = {
    400: "Malformed JSON, or a body that is not application/json",
    401: "Not signed in: no or expired session, unknown or revoked token",
    403: "Not allowed: a viewer tried a mutation, a cookie mutation lacks X-CSRF-Token, or the "
    "current password is wrong",
    404: "Unknown id in the path (or the provider is not enabled)",
    409: "The state machine refuses, another operation runs, the name is taken, or the provider "
    "lacks the capability or the image",
    422: "A field is wrong: details.fields lists {field, message}",
    429: "Too many failed logins; Retry-After says when to try again",
    503: "The database does not answer (briefly unavailable, locked); /ready: or not migrated",
}
HEADERS_OF = {
    429: {
        "Retry-After": {
            "description": "Seconds until the next attempt is allowed",
            "schema": {"type": "string"},
        }
    },
}
ERROR_SCHEMA = "Error"


class ErrorBody(BaseModel):
    code: str = Field(description="A stable, machine-readable code, e.g. invalid_transition")
    message: str = Field(description="What went wrong, for a person")
    details: dict[str, Any] = Field(description="More, per code (e.g. fields, state)")


class Error(BaseModel):
    """Every error answer of the API has this shape."""

    error: ErrorBody


def raises(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route decorator: the error statuses only its handler knows of."""
    return {status: {"description": MEANING[status]} for status in statuses}


def _dependants(dependant: Dependant) -> list[Dependant]:
    """The route's dependant and all it depends on, recursively."""
    found = [dependant]
    for sub in dependant.dependencies:
        found += _dependants(sub)
    return found


def derived_statuses(route: APIRoute) -> set[int]:
    """The error statuses a route can answer because of its dependencies and parameters."""
    dependants = _dependants(route.dependant)
    calls = {dependant.call for dependant in dependants}
    statuses: set[int] = set()
    if current_principal in calls:
        statuses.add(401)
    if calls & {writing_principal, admin_principal}:
        statuses.add(403)
    if any(d.path_params for d in dependants):
        statuses.add(404)
    if any(d.query_params or d.header_params or d.body_params for d in dependants):
        statuses.add(422)
    if any(d.body_params for d in dependants):
        statuses.add(400)
    if get_hangar in calls:  # the service's database: it may not answer for a while
        statuses.add(503)
    return statuses


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": MEANING.get(status, "An error"),
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        },
    }
    if status in HEADERS_OF:
        response["headers"] = HEADERS_OF[status]
    return response


# A closed set that only the running server knows (e.g. its enabled providers): the schema's
# name, the field, and the values the server accepts there.
RuntimeEnums = Mapping[tuple[str, str], Iterable[str]]


def _narrow(schemas: dict[str, Any], enums: RuntimeEnums) -> None:
    """Put the server's own closed sets in place of the code's, so that a value the document
    allows is one this server accepts."""
    for (schema, name), values in enums.items():
        try:
            field = schemas[schema]["properties"][name]
        except KeyError:
            raise ValueError(f"the document has no field {schema}.{name} to narrow") from None
        field["enum"] = sorted(values)


def contract(
    app: FastAPI, routes: Iterable[BaseRoute], enums: RuntimeEnums | None = None
) -> dict[str, Any]:
    """The OpenAPI document of `app` with every error answer declared in the error shape;
    `routes` are the routers' own routes (the app keeps its included routers nested); `enums`
    replaces closed sets by what this server accepts."""
    document = get_openapi(
        title=app.title, version=app.version, routes=app.routes, description=app.description
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    error = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error.pop("$defs"))
    schemas[ERROR_SCHEMA] = error
    # FastAPI's own 422 shape is not what the API answers (errors.py reshapes it).
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    _narrow(schemas, enums or {})
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        declared = {int(status) for status in route.responses if str(status).isdigit()}
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            responses = operation["responses"]
            # FastAPI declares a 422 wherever there are parameters, in its own shape.
            generated = {int(status) for status in responses}
            for status in sorted(derived_statuses(route) | declared | generated):
                if status >= 400:
                    responses[str(status)] = _error_response(status)
    return document


def install_contract(
    app: FastAPI, routers: Iterable[APIRouter], enums: RuntimeEnums | None = None
) -> None:
    """`app.openapi()` (and so GET /api/v1/openapi.json) serves `contract(...)`, built once."""
    routes = [route for router in routers for route in router.routes]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract(app, routes, enums)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def declared_methods(document: dict[str, Any], path: str) -> set[str]:
    """The methods the document declares for the concrete `path` (the `Allow` of a 405)."""
    methods: set[str] = set()
    for template, operations in document.get("paths", {}).items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {method.upper() for method in operations}
    return methods
