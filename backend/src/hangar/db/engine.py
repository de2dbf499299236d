"""Engine construction. SQLite gets WAL, enforced foreign keys and a busy timeout on every
connection; other databases get a liveness check of each pooled connection before use, so a
server that restarted costs no request its connection."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# What a database that does not answer raises: refused or lost connections, a SQLite file locked
# beyond the busy timeout, a pool with no connection to give. Each is the database's state, not a
# bug: the API answers 503 (the client may retry) and the operation runner writes again later.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    sa.OperationalError,
    sa.InterfaceError,
    sa.TimeoutError,
)

# How long a SQLite connection waits for another writer's lock before "database is locked".
DEFAULT_BUSY_TIMEOUT_S = 5.0


def _sqlite_pragmas(busy_timeout_s: float, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (SSE replay, list pages) run while an operation writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL is still safe against corruption; it skips an fsync per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Past it a request answers 503 (api/errors.py) instead of waiting on: the lock is another
        # process's (a backup, a person's sqlite3 shell), and the service recovers once it goes.
        cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
    finally:
        cursor.close()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def install_sqlite_pragmas(engine: Engine, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
    """Apply the connection pragmas to a (sync) engine; the async engine passes its sync_engine."""
    if is_sqlite(str(engine.url)):
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_timeout_s))


def create_engine(url: str, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> AsyncEngine:
    """The service's async engine for a URL from `Settings.database_url`.

    A pooled PostgreSQL connection is pinged before use: after the server restarted, the first
    request gets a new connection instead of failing on the dead one."""
    if is_sqlite(url):
        engine = create_async_engine(url)
        install_sqlite_pragmas(engine.sync_engine, busy_timeout_s)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


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
