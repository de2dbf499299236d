"""Login, logout, who am I, password change."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from hangar.api.auth import SESSION_COOKIE, Reader, Writer
from hangar.api.context import HangarDep
from hangar.api.contract import raises
from hangar.api.schemas import LoginIn, PasswordChangeIn, SessionOut, UserOut
from hangar.service.errors import NotAuthenticatedError, RateLimitedError

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", responses=raises(401, 429))
async def login(
    body: LoginIn, request: Request, response: Response, hangar: HangarDep
) -> SessionOut:
    address = request.client.host if request.client else "unknown"
    user_key, address_key = f"user:{body.username}", f"address:{address}"
    waits = [
        wait
        for wait in (
            hangar.logins_by_user.retry_after(user_key),
            hangar.logins_by_address.retry_after(address_key),
        )
        if wait is not None
    ]
    if waits:
        wait = max(waits)
        raise RateLimitedError(f"too many failed logins; try again in {wait} s", wait)
    user = await hangar.users.authenticate(body.username, body.password)
    if user is None:
        hangar.logins_by_user.hit(user_key)
        hangar.logins_by_address.hit(address_key)
        raise NotAuthenticatedError("wrong username or password")
    hangar.logins_by_user.reset(user_key)
    session = await hangar.users.open_session(user)
    response.set_cookie(
        SESSION_COOKIE,
        session.session_secret,
        max_age=int(hangar.users.session_lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return SessionOut(user=UserOut.model_validate(user), csrf_token=session.csrf_token)


@router.post("/logout", status_code=204)
async def logout(principal: Writer, response: Response, hangar: HangarDep) -> None:
    if principal.session_secret is not None:
        await hangar.users.close_session(principal.session_secret)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


@router.get("/me")
async def me(principal: Reader, hangar: HangarDep) -> SessionOut:
    csrf = None
    if principal.session_secret is not None:
        csrf = hangar.users.csrf_token(principal.session_secret)
    return SessionOut(user=UserOut.model_validate(principal.user), csrf_token=csrf)


@router.post("/password", status_code=204)
async def change_password(body: PasswordChangeIn, principal: Writer, hangar: HangarDep) -> None:
    await hangar.users.change_password(principal.user.id, body.current_password, body.new_password)
