"""Users, browser sessions and API tokens.

What callers rely on:
- secrets (session cookies, API tokens) are random and only their sha256 is stored;
- a revoked token or an expired session stops working on the next request;
- the CSRF token of a session is derived from the session secret with the server's secret key, so
  it needs no storage and dies with the session.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hangar.db.models import ApiToken, Session, User, new_id, utcnow
from hangar.service.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    WrongPasswordError,
)
from hangar.service.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password

TOKEN_PREFIX = "hgr_"  # noqa: S105 -- a prefix, not a secret
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
USERNAME_RULE = "1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_username(username: str) -> str:
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidInputError(
            "username", f"{username!r} is not a valid username: {USERNAME_RULE}"
        )
    return username


def check_password(password: str, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(field, f"must be at least {MIN_PASSWORD_LENGTH} characters long")
    return password


def as_aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored datetime is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=utcnow().tzinfo)


@dataclass(frozen=True)
class Login:
    """A new browser session: the cookie value and its CSRF token (both shown once)."""

    user: User
    session_secret: str
    csrf_token: str
    expires_at: datetime


class UserService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        secret_key: str,
        session_lifetime: timedelta = timedelta(hours=12),
    ) -> None:
        self._sessionmaker = sessionmaker
        self._secret_key = secret_key.encode()
        self.session_lifetime = session_lifetime

    # ------------------------------------------------------------------ users
    async def create_user(self, username: str, password: str, role: str = Role.ADMIN) -> User:
        check_username(username)
        check_password(password)
        try:
            role = Role(role)
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise InvalidInputError("role", f"unknown role {role!r}; one of: {allowed}") from None
        password_hash = await hash_password(password)
        async with self._sessionmaker() as session, session.begin():
            taken = await session.scalar(select(User.id).where(User.username == username))
            if taken is not None:
                raise ConflictError(f"a user named {username!r} already exists")
            user = User(
                id=new_id(),
                username=username,
                password_hash=password_hash,
                role=role.value,
                created_at=utcnow(),
            )
            session.add(user)
        return user

    async def count_users(self) -> int:
        async with self._sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(User)) or 0

    async def get_user(self, username: str) -> User:
        async with self._sessionmaker() as session:
            user = await session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFoundError(f"no user named {username!r}")
        return user

    async def ensure_admin(self, password: str, username: str = "admin") -> bool:
        """Create the first admin when there is no user at all. True when it was created."""
        if await self.count_users():
            return False
        await self.create_user(username, password, Role.ADMIN)
        return True

    async def authenticate(self, username: str, password: str) -> User | None:
        async with self._sessionmaker() as session:
            user = await session.scalar(select(User).where(User.username == username))
        ok = await verify_password(password, user.password_hash if user else None)
        return user if ok else None

    async def change_password(self, user_id: str, current: str, new: str) -> None:
        async with self._sessionmaker() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise NotFoundError("the user no longer exists")
        if not await verify_password(current, user.password_hash):
            raise WrongPasswordError("current_password", "is not your current password")
        check_password(new, "new_password")
        new_hash = await hash_password(new)
        async with self._sessionmaker() as session, session.begin():
            row = await session.get(User, user_id)
            if row is not None:
                row.password_hash = new_hash

    # ------------------------------------------------------------------ sessions
    def csrf_token(self, session_secret: str) -> str:
        return hmac.new(self._secret_key, session_secret.encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, session_secret: str, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(
            self.csrf_token(session_secret), candidate
        )

    async def open_session(self, user: User) -> Login:
        secret = secrets.token_urlsafe(32)
        expires_at = utcnow() + self.session_lifetime
        async with self._sessionmaker() as session, session.begin():
            # Expired sessions of anyone are swept here, so the table cannot grow without bound.
            await session.execute(delete(Session).where(Session.expires_at < utcnow()))
            session.add(
                Session(
                    id=digest(secret), user_id=user.id, created_at=utcnow(), expires_at=expires_at
                )
            )
        return Login(user, secret, self.csrf_token(secret), expires_at)

    async def session_user(self, session_secret: str) -> User | None:
        async with self._sessionmaker() as session:
            row = await session.get(Session, digest(session_secret))
            if row is None or as_aware(row.expires_at) <= utcnow():
                return None
            return await session.get(User, row.user_id)

    async def close_session(self, session_secret: str) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(delete(Session).where(Session.id == digest(session_secret)))

    # ------------------------------------------------------------------ API tokens
    async def create_token(self, user_id: str, name: str) -> tuple[ApiToken, str]:
        """A new token and its secret (`hgr_...`), which is never stored and shown only now."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(
            id=new_id(),
            user_id=user_id,
            name=name,
            token_hash=digest(secret),
            created_at=utcnow(),
        )
        async with self._sessionmaker() as session, session.begin():
            session.add(token)
        return token, secret

    async def list_tokens(self, user_id: str | None = None) -> list[ApiToken]:
        query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
        if user_id is not None:
            query = query.where(ApiToken.user_id == user_id)
        async with self._sessionmaker() as session:
            return list(await session.scalars(query))

    async def revoke_token(self, token_id: str, user_id: str | None = None) -> ApiToken:
        """Revoke a token (of `user_id` when given). Revoking twice keeps the first time."""
        async with self._sessionmaker() as session, session.begin():
            token = await session.get(ApiToken, token_id)
            if token is None or (user_id is not None and token.user_id != user_id):
                raise NotFoundError(f"no token with id {token_id!r}")
            if token.revoked_at is None:
                token.revoked_at = utcnow()
        return token

    async def token_user(self, secret: str) -> User | None:
        if not secret.startswith(TOKEN_PREFIX):
            return None
        async with self._sessionmaker() as session, session.begin():
            token = await session.scalar(
                select(ApiToken).where(ApiToken.token_hash == digest(secret))
            )
            if token is None or token.revoked_at is not None:
                return None
            token.last_used_at = utcnow()
            return await session.get(User, token.user_id)
