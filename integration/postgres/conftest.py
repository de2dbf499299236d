"""A throwaway PostgreSQL server for the integration tier: the `postgres` fixture of
`testkit.postgres` (real `initdb` + `pg_ctl`, one per run, in a dir tagged with the run; ended by
the run's reaper if the run is killed), and a fresh database per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from testkit.postgres import PostgresServer, postgres

__all__ = ["PostgresServer", "postgres", "postgres_database"]


@pytest.fixture
def postgres_database(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards); yields its SQLAlchemy URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres.url(name)
    finally:
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
