"""Migrations, the startup check and the SQLite connection settings."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from hangar.api.app import create_app
from hangar.db import migrate
from hangar.db.engine import create_engine, sync_database_url
from hangar.db.models import Base
from hangar.settings import Settings

from .conftest import make_settings

pytestmark = pytest.mark.asyncio


def tables(path: Path) -> set[str]:
    # sqlite3's own context manager commits but does not close (3.13 warns about that).
    with closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return {name for (name,) in rows if not name.startswith("sqlite_")}


async def test_upgrade_head_then_downgrade_base(tmp_path: Path) -> None:
    path = tmp_path / "db" / "hangar.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url)
    assert tables(path) == set(Base.metadata.tables) | {"alembic_version"}
    assert migrate.current_revision_sync(url) == migrate.head_revision()
    migrate.downgrade(url, "base")
    assert tables(path) == {"alembic_version"}
    assert migrate.current_revision_sync(url) is None
    migrate.upgrade(url)
    assert migrate.current_revision_sync(url) == migrate.head_revision()


async def test_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine as create_sync_engine

    url = f"sqlite+aiosqlite:///{tmp_path / 'hangar.db'}"
    migrate.upgrade(url)
    engine = create_sync_engine(sync_database_url(url))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


async def test_app_refuses_an_unmigrated_database(settings: Settings) -> None:
    app = create_app(settings)
    with pytest.raises(migrate.DatabaseNotMigratedError, match="uv run hangar migrate"):
        async with app.router.lifespan_context(app):
            pass


async def test_app_refuses_an_outdated_database(migrated: Settings) -> None:
    engine = create_engine(migrated.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
        with pytest.raises(migrate.DatabaseNotMigratedError, match="revision 0000"):
            await migrate.check_current(engine)
    finally:
        await engine.dispose()


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(migrated: Settings) -> None:
    engine = create_engine(migrated.database_url)
    try:
        async with engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar()
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    assert (journal, foreign_keys) == ("wal", 1)
    assert "machines" in names


async def test_not_migrated_message_names_database_and_fix(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    reason = migrate.problem(None, settings.database_url)
    assert reason is not None
    assert "has no schema" in reason
    assert str(settings.data_dir) in reason
    assert migrate.problem(migrate.head_revision(), settings.database_url) is None


async def test_sync_url_of_each_driver() -> None:
    assert sync_database_url("sqlite+aiosqlite:////x/h.db") == "sqlite:////x/h.db"
    assert sync_database_url("postgresql+asyncpg://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert sync_database_url("postgresql+psycopg://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
