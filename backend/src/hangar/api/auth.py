"""Who is calling: session cookie (+ CSRF for mutations) or bearer API token; and may they?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request

from hangar.api.context import HangarDep
from hangar.db.models import User
from hangar.service.errors import CsrfError, ForbiddenError, NotAuthenticatedError
from hangar.service.users import Role

SESSION_COOKIE = "hangar_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Principal:
    user: User
    via: Literal["session", "token"]
    session_secret: str | None = None


async def current_principal(request: Request, hangar: HangarDep) -> Principal:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise NotAuthenticatedError("use 'Authorization: Bearer hgr_...' with an API token")
        user = await hangar.users.token_user(credentials.strip())
        if user is None:
            raise NotAuthenticatedError("unknown or revoked API token")
        return Principal(user=user, via="token")
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        user = await hangar.users.session_user(secret)
        if user is None:
            raise NotAuthenticatedError("your session expired or ended; log in again")
        return Principal(user=user, via="session", session_secret=secret)
    raise NotAuthenticatedError("log in first, or send 'Authorization: Bearer hgr_...'")


async def writing_principal(
    request: Request, hangar: HangarDep, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    """A caller who may change their own things; cookie callers must send the CSRF token."""
    if principal.via == "session":
        assert principal.session_secret is not None
        if not hangar.users.csrf_valid(principal.session_secret, request.headers.get(CSRF_HEADER)):
            raise CsrfError(
                f"missing or wrong {CSRF_HEADER} header; use the csrf_token from login or /auth/me"
            )
    return principal


async def admin_principal(
    principal: Annotated[Principal, Depends(writing_principal)],
) -> Principal:
    if principal.user.role != Role.ADMIN:
        raise ForbiddenError(f"user {principal.user.username!r} is a viewer; this needs admin")
    return principal


Reader = Annotated[Principal, Depends(current_principal)]
Writer = Annotated[Principal, Depends(writing_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]
