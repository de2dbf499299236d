"""Fixtures of the fuzz tier: one live backend (the fake provider), the run's seed.

The seed is HANGAR_FUZZ_SEED when set (to reproduce a run), else a new one per run, so every run
explores other inputs; it is printed at the end of the run and in every failure.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from testkit import runs
from testkit.server import LiveServer, running

SEED_ENV = "HANGAR_FUZZ_SEED"
SEED = pytest.StashKey[int]()
SEED_USED = pytest.StashKey[bool]()  # a test ran with it (a collection alone prints nothing)
REQUESTS = pytest.StashKey[dict[str, int]]()  # requests each caller's run sent


def pytest_sessionstart(session: pytest.Session) -> None:
    """Sweep what killed runs left behind (servers, fuzzers, dirs) before this run starts."""
    swept = runs.sweep_once()
    if swept:
        sys.stderr.write(f"\nfuzz: swept leftovers of killed runs: {list(swept)}\n")


def pytest_configure(config: pytest.Config) -> None:
    given = os.environ.get(SEED_ENV, "").strip()
    if given and not given.isdigit():
        raise pytest.UsageError(f"{SEED_ENV} must be a non-negative integer, not {given!r}")
    config.stash[SEED] = int(given) if given else random.SystemRandom().randrange(2**32)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    sent = config.stash.get(REQUESTS, {})
    if sent:
        each = ", ".join(f"{caller} {count}" for caller, count in sent.items())
        terminalreporter.write_line(f"fuzz: {sum(sent.values())} requests ({each})")
    seed = config.stash.get(SEED, None)
    if seed is not None and config.stash.get(SEED_USED, False):
        terminalreporter.write_line(
            f"fuzz: seed {seed}; the same inputs again: {SEED_ENV}={seed} uv run nox -s fuzz"
        )


@pytest.fixture(scope="session")
def seed(pytestconfig: pytest.Config) -> int:
    pytestconfig.stash[SEED_USED] = True
    return pytestconfig.stash[SEED]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One backend with the fake provider (fast: no VM boots); its data dir carries the run's
    tag, so a killed run's server, and the fuzzer that carries the same dir, are swept."""
    server = LiveServer(
        data_dir=tmp_path_factory.mktemp(f"{runs.RUN_TAG}-fuzz"),
        providers="fake",
        fake_latency_s=0.02,  # operations finish between requests, so chains reach every state
    )
    with running(server):
        yield server
