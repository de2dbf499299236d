"""Password hashing with argon2 (pwdlib). Hashing is CPU-bound, so it runs in a worker thread."""

from __future__ import annotations

from anyio import to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# Module attribute on purpose: tests swap in cheap argon2 parameters to stay fast.
PASSWORD_HASH = PasswordHash((Argon2Hasher(),))

MIN_PASSWORD_LENGTH = 8


def hash_password_sync(password: str) -> str:
    return PASSWORD_HASH.hash(password)


async def hash_password(password: str) -> str:
    return await to_thread.run_sync(hash_password_sync, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """True when `password` matches; with no hash, still spends the time (no user enumeration)."""
    if password_hash is None:
        await to_thread.run_sync(PASSWORD_HASH.hash, password)
        return False
    return await to_thread.run_sync(PASSWORD_HASH.verify, password, password_hash)
