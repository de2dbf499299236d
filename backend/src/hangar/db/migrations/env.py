"""Alembic environment: online migrations through a sync engine built from the config's URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from hangar.db.engine import install_sqlite_pragmas
from hangar.db.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "hangar.db.migrate.alembic_config sets sqlalchemy.url"

engine = create_engine(url, poolclass=pool.NullPool)
install_sqlite_pragmas(engine)
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,  # SQLite can only ALTER by copying the table
        )
        with context.begin_transaction():
            context.run_migrations()
finally:
    engine.dispose()
