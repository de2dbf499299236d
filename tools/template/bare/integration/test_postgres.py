"""A real PostgreSQL answers a real query: the integration tier's smallest proof of life."""

from __future__ import annotations

import psycopg

from integration.conftest import PostgresServer


def test_a_table_round_trip(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.conninfo(), autocommit=True) as connection:
        connection.execute("CREATE TEMPORARY TABLE visits (page text NOT NULL, hits int NOT NULL)")
        connection.execute("INSERT INTO visits VALUES ('/', 2), ('/health', 1)")
        rows = connection.execute("SELECT page, hits FROM visits ORDER BY hits DESC").fetchall()
        version = connection.execute("SHOW server_version").fetchone()
    assert rows == [("/", 2), ("/health", 1)]
    assert version is not None
