"""Engine construction. SQLite gets WAL and enforced foreign keys on every connection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (SSE replay, list pages) run while an operation writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL is still safe against corruption; it skips an fsync per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def install_sqlite_pragmas(engine: Engine) -> None:
    """Apply the connection pragmas to a (sync) engine; the async engine passes its sync_engine."""
    if is_sqlite(str(engine.url)):
        event.listen(engine, "connect", _sqlite_pragmas)


def create_engine(url: str) -> AsyncEngine:
    """The service's async engine for a URL from `Settings.database_url`."""
    engine = create_async_engine(url)
    install_sqlite_pragmas(engine.sync_engine)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Rows are handed to the API after commit; expiring them would need another round trip.
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_database_url(url: str) -> str:
    """The same database through a sync driver, for Alembic and the CLI."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite")
    elif parsed.drivername == "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)
