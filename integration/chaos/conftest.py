"""The chaos scenarios' fixtures: a tagged dir per test for a live server's data (removed after
the test, whatever happened), and a PostgreSQL cluster of their own (they stop it)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.postgres.conftest import postgres, postgres_database
from testkit import runs

__all__ = ["chaos_dir", "postgres", "postgres_database"]


@pytest.fixture
def chaos_dir() -> Iterator[Path]:
    """`<temp>/hangar-test-<run id>-chaos…`: the sweeper ends a server a killed run left in it."""
    path = runs.new_dir("chaos")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
