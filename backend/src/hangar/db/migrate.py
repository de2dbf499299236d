"""Run and check the Alembic migrations shipped inside the package.

Migrations run through a sync driver (`sqlite`, `postgresql+psycopg`) so they can be called from the
CLI, from tests and from inside a running event loop alike.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hangar.db.engine import install_sqlite_pragmas, sync_database_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
FIX_COMMAND = "uv run hangar migrate"


class DatabaseNotMigratedError(RuntimeError):
    """The database schema is missing or older than this code; the message says how to fix it."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' would be read as interpolation by configparser (e.g. in passwords).
    config.set_main_option("sqlalchemy.url", sync_database_url(url).replace("%", "%%"))
    return config


def _prepare_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if make_url(url).get_backend_name() == "sqlite" and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest)."""
    _prepare_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Take the database back to `revision` (`base` removes every table)."""
    command.downgrade(alembic_config(url), revision)


def _linear_history() -> list[str]:
    """Revision ids from the first to the newest (the history has no branches)."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def migrate_to(url: str, revision: str = "head") -> str | None:
    """Upgrade or downgrade to `revision` (`head`, `base` or an id); returns the new revision."""
    history = _linear_history()
    current = current_revision_sync(url)
    position: dict[str, int] = {rev: index for index, rev in enumerate(history)}
    position.update(head=len(history) - 1, base=-1)
    target = position.get(revision)
    if target is None:
        known = ", ".join(["head", "base", *history])
        raise ValueError(f"unknown revision {revision!r}; one of: {known}")
    if target < (position[current] if current is not None else -1):
        downgrade(url, revision)
    else:
        upgrade(url, revision)
    return current_revision_sync(url)


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def current_revision_sync(url: str) -> str | None:
    _prepare_sqlite_dir(url)
    engine = create_engine(sync_database_url(url))
    install_sqlite_pragmas(engine)
    try:
        with engine.connect() as connection:
            return _current_revision(connection)
    finally:
        engine.dispose()


def problem(current: str | None, url: str) -> str | None:
    """Why a database at revision `current` cannot be used, or None when it is current."""
    head = head_revision()
    if current == head:
        return None
    where = make_url(url).render_as_string(hide_password=True)
    state = "has no schema" if current is None else f"is at revision {current}, not {head}"
    return f"database {where} {state}; run `{FIX_COMMAND}` first"


async def check_current(engine: AsyncEngine) -> None:
    """Raise DatabaseNotMigratedError unless the database is at the head revision."""
    async with engine.connect() as connection:
        current = await connection.run_sync(_current_revision)
    reason = problem(current, str(engine.url))
    if reason is not None:
        raise DatabaseNotMigratedError(reason)
