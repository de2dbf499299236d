"""Fixtures of the benchmarks: an event loop shared by fixture and benchmark, the example service
with the fake provider (no latency) on a fresh SQLite file, the real `qemu` provider of the shared
QEMU harness (`testkit.qemu`: run id, sweeper, watchdog, teardown, the cached `tiny` image), and
`measure` (`testkit.bench`), the one way a benchmark times its code, slowed down on request by
`HANGAR_BENCH_SLOWDOWN` for the gate's self-checks, and live `hangar serve` processes per module.

Two kinds of test live here, and each is one or the other: a benchmark times its code with
`measure` (the bench gate compares it with the baseline), a load test is marked `load`, asserts
correctness under load and records its latency figures without timing through pytest-benchmark.
The gate runs pytest with `--benchmark-only`, which skips every test that is no benchmark at
collection (no fixture is set up), so a load test costs the gate nothing; the `bench` session
runs both. The figures of the session's load tests are printed at its end.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from hangar.api.app import create_app
from hangar.api.context import Hangar
from hangar.db import migrate
from hangar.service import passwords
from hangar.settings import Settings
from testkit.bench import SLOWDOWN_VARIABLE, measure
from testkit.load import REPORTS
from testkit.qemu import qemu, run_dir, tiny_image, watchdog
from testkit.runs import RUN_TAG
from testkit.server import LiveServer, running_all

# Fixtures defined in the test kit: `measure` (testkit.bench) and the QEMU harness (testkit.qemu).
__all__ = ["measure", "qemu", "qemu_purpose", "run_dir", "tiny_image", "watchdog"]

ADMIN_PASSWORD = "admin-password"
BENCH_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test of bench/ is a benchmark (it uses `measure`) or a load test (marked `load`),
    never both and never neither: a load test timed by pytest-benchmark would be compared by the
    gate, 30 s a round, and an unmarked test that times nothing would be skipped by it unseen."""
    errors = []
    for item in items:
        if BENCH_DIR not in item.path.parents:
            continue
        timed = "benchmark" in getattr(item, "fixturenames", ())
        load = item.get_closest_marker("load") is not None
        if timed == load:
            why = "is marked load and uses measure" if timed else "neither uses measure nor is load"
            errors.append(f"{item.nodeid} {why}")
    if errors:
        raise pytest.UsageError(
            "a bench-tier test is a benchmark (measure) or a load test (marked load):\n  "
            + "\n  ".join(errors)
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures of the session's load tests, and where their reports are."""
    reports = terminalreporter.config.stash.get(REPORTS, [])
    if not reports:
        return
    terminalreporter.section("load tests (figures recorded, not asserted)")
    for path, lines in reports:
        for line in lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"report: {path}")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HANGAR_* setting of the person running leaks in (the slowdown switch is read apart)."""
    for name in list(os.environ):
        if name.startswith("HANGAR_") and name != SLOWDOWN_VARIABLE:
            monkeypatch.delenv(name)
    cheap = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1),))
    monkeypatch.setattr(passwords, "PASSWORD_HASH", cheap)


@pytest.fixture
def loop() -> Iterator[asyncio.Runner]:
    """One event loop for a benchmark: the app lives in it and every measured call runs in it."""
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="session")
def qemu_purpose() -> str:
    """How the QEMU harness names these tests in a skip, a failure or the watchdog's message."""
    return "QEMU benchmarks"


@pytest.fixture(scope="module")
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[LiveServer]]:
    """The module's `hangar serve` processes — `SERVERS` of them (default 1), each on its own
    data dir, started side by side (fake provider; its latency is the module's `FAKE_LATENCY_S`,
    else none), stopped by PID, also when the run is interrupted."""
    latency = float(getattr(request.module, "FAKE_LATENCY_S", 0.0))
    count = int(getattr(request.module, "SERVERS", 1))
    name = request.module.__name__
    lives = [
        LiveServer(
            data_dir=tmp_path_factory.mktemp(f"{RUN_TAG}-{name}"),  # swept if killed
            fake_latency_s=latency,
        )
        for _ in range(count)
    ]
    with running_all(lives):
        yield lives


@pytest.fixture(scope="module")
def server(servers: list[LiveServer]) -> LiveServer:
    """The module's first (usually only) `hangar serve` process."""
    return servers[0]


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "hangar.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def app(tmp_path: Path, migrated_template: Path, loop: asyncio.Runner) -> Iterator[FastAPI]:
    """The example service on a copy of a migrated database, its lifespan entered in `loop`."""
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "fake_latency_seconds": 0.0,
            "frontend_dir": None,
            "secret_key": "bench-secret-key",
            "admin_password": ADMIN_PASSWORD,
            "observer_interval_seconds": 0,
        }
    )
    settings.ensure_data_dir()
    (settings.data_dir / "hangar.db").write_bytes(migrated_template.read_bytes())
    application = create_app(settings)
    lifespan = application.router.lifespan_context(application)
    loop.run(lifespan.__aenter__())
    try:
        yield application
    finally:
        loop.run(lifespan.__aexit__(None, None, None))


@pytest.fixture
def hangar(app: FastAPI) -> Hangar:
    hangar: Hangar = app.state.hangar
    return hangar


@pytest.fixture
def admin(app: FastAPI, loop: asyncio.Runner) -> Iterator[httpx.AsyncClient]:
    """An API client logged in as admin (cookie and CSRF header set)."""
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hangar.test"
    )

    async def log_in() -> None:
        response = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]

    try:
        loop.run(log_in())
        yield client
    finally:
        loop.run(client.aclose())
