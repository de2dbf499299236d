"""Errors the service raises. Each has a stable `code`; the API maps the type to an HTTP status."""

from __future__ import annotations

from typing import Any


class HangarError(Exception):
    """Base of every expected error; `message` is shown to the person who caused it."""

    code = "error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class NotFoundError(HangarError):
    code = "not_found"


class InvalidTransitionError(HangarError):
    code = "invalid_transition"


class BusyError(HangarError):
    code = "busy"


class ConflictError(HangarError):
    code = "conflict"


class DiskAttachedError(HangarError):
    code = "disk_attached"


class UnsupportedError(HangarError):
    code = "unsupported"


class InvalidInputError(HangarError):
    """One field is wrong in a way only the service can tell (e.g. a password too short)."""

    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", {"fields": [{"field": field, "message": message}]})


class NotAuthenticatedError(HangarError):
    code = "not_authenticated"


class ForbiddenError(HangarError):
    code = "forbidden"


class CsrfError(HangarError):
    code = "csrf_failed"


class WrongPasswordError(HangarError):
    """A signed-in caller's proof of their password failed: not a malformed field (the request
    was well formed), and not a lost session (which would sign the person out)."""

    code = "wrong_password"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", {"fields": [{"field": field, "message": message}]})


class RateLimitedError(HangarError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after
