"""One error shape for every failure: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException as StarletteHTTPException

from hangar.api.contract import declared_methods
from hangar.db.engine import DATABASE_DOWN
from hangar.service import errors

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.HangarError], int] = {
    errors.NotAuthenticatedError: 401,
    errors.ForbiddenError: 403,
    errors.CsrfError: 403,
    errors.WrongPasswordError: 403,
    errors.NotFoundError: 404,
    errors.InvalidTransitionError: 409,
    errors.BusyError: 409,
    errors.ConflictError: 409,
    errors.DiskAttachedError: 409,
    errors.UnsupportedError: 409,
    errors.InvalidInputError: 422,
    errors.RateLimitedError: 429,
}

CODE_OF_STATUS = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[int | str, ...] | list[int | str]) -> str:
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts)


def _message(error: dict[str, Any]) -> str:
    return str(error.get("msg", "is invalid")).removeprefix("Value error, ")


async def _hangar_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.HangarError)
    status = next(
        (code for kind, code in STATUS_OF.items() if isinstance(exc, kind)),
        400,
    )
    headers = None
    if isinstance(exc, errors.RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after)}
    return error_response(status, exc.code, exc.message, exc.details, headers)


def allowed_methods(request: Request) -> str:
    """The `Allow` header of a 405: every method of the request's path.

    Starlette names only the first route whose path matches, and a path such as
    /api/v1/machines/{id} is several routes (GET, DELETE): the OpenAPI document knows them all.
    The document's own page and the web UI's files are GET only."""
    return ", ".join(
        sorted(declared_methods(request.app.openapi(), request.url.path) or {"GET", "HEAD"})
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    headers = dict(exc.headers) if exc.headers else None
    declared = declared_methods(request.app.openapi(), request.url.path)
    if status == 404 and message == "Not Found" and declared and request.method not in declared:
        # With the web UI mounted at `/`, a GET on a POST-only path of the API reaches the UI,
        # which has no such file: the path exists, the method does not.
        status = 405
    code = CODE_OF_STATUS.get(status, "error" if status >= 500 else "bad_request")
    if status == 404 and message == "Not Found":
        message = f"nothing at {request.url.path}; see docs/api.md for the paths of the API"
    elif status == 405:
        allowed = allowed_methods(request)
        headers = {k: v for k, v in (headers or {}).items() if k.lower() != "allow"}
        headers["Allow"] = allowed
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    return error_response(status, code, message, headers=headers)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = list(exc.errors())
    malformed = [e for e in problems if e.get("type") == "json_invalid"]
    if malformed:
        reason = malformed[0].get("ctx", {}).get("error", "invalid JSON")
        return error_response(400, "bad_request", f"malformed JSON body: {reason}")
    content_type = request.headers.get("content-type", "")
    body_problem = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in problems)
    if body_problem and content_type and not _is_json(content_type):
        return error_response(
            400,
            "bad_request",
            f"the body must be JSON (Content-Type: application/json), not {content_type!r}",
        )
    fields = [{"field": _field(e.get("loc", ())), "message": _message(e)} for e in problems]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(422, "validation_error", summary, {"fields": fields})


def database_reason(exc: BaseException) -> str:
    """The database's own first line (`database is locked`, `connection failed: …`)."""
    cause = exc.orig if isinstance(exc, sa.DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(
        503,
        "database_unavailable",
        f"the database does not answer ({database_reason(exc)}); try again shortly "
        "(GET /ready says when it is back)",
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        500, "internal_error", "the server failed unexpectedly; the error was logged"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.HangarError, _hangar_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for kind in DATABASE_DOWN:
        app.add_exception_handler(kind, _database_down)
    app.add_exception_handler(Exception, _unexpected)
