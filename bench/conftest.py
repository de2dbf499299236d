"""Fixtures of the benchmarks: an event loop shared by fixture and benchmark, the example service
with the fake provider (no latency) on a fresh SQLite file, the real `qemu` provider of the shared
QEMU harness (`testkit.qemu`: run id, sweeper, watchdog, teardown, the cached `tiny` image), and
`measure`, the one way a benchmark times its code.

`HANGAR_BENCH_SLOWDOWN="test_a=1.25,test_b=2"` makes the named benchmarks that many times slower
(a busy wait after each call). It exists only so the gate's self-checks can prove a slowdown is
caught; it lives here, never in product code.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pytest_benchmark.fixture import BenchmarkFixture

from hangar.api.app import create_app
from hangar.api.context import Hangar
from hangar.db import migrate
from hangar.service import passwords
from hangar.settings import Settings
from testkit.qemu import qemu, run_dir, tiny_image, watchdog

__all__ = ["qemu", "qemu_purpose", "run_dir", "tiny_image", "watchdog"]

SLOWDOWN_VARIABLE = "HANGAR_BENCH_SLOWDOWN"
ADMIN_PASSWORD = "admin-password"


def slowdowns(value: str) -> dict[str, float]:
    """Parse `name=factor,name=factor`; a malformed entry is an error, never ignored."""
    factors: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, _, factor = entry.partition("=")
        try:
            factors[name.strip()] = float(factor)
        except ValueError:
            raise pytest.UsageError(
                f"{SLOWDOWN_VARIABLE}: {entry!r} is not NAME=FACTOR (e.g. test_list_page=1.25)"
            ) from None
    return factors


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


Measure = Callable[..., Any]
Setup = Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]


@pytest.fixture
def measure(benchmark: BenchmarkFixture, request: pytest.FixtureRequest) -> Measure:
    """`measure(function, rounds=…, iterations=…)`: time `function` with a fixed number of rounds
    (so a gate run takes a known time), slowed down when the switch names this benchmark.

    Per-round work outside the timing: `setup()` returns `(args, kwargs)` for `function`,
    `teardown(*args, **kwargs)` runs after it (pytest-benchmark's pedantic mode; then
    `iterations` must be 1). `warmup_rounds` defaults to `min(rounds, 3)`. Under
    `--benchmark-disable` the three run once, untimed."""
    factor = slowdowns(os.environ.get(SLOWDOWN_VARIABLE, "")).get(request.node.name, 1.0)

    def run(
        function: Callable[..., object],
        *,
        rounds: int = 30,
        iterations: int = 1,
        warmup_rounds: int | None = None,
        setup: Setup | None = None,
        teardown: Callable[..., object] | None = None,
    ) -> object:
        timed = function
        if factor != 1.0:

            def timed(*args: Any, **kwargs: Any) -> object:
                started = time.perf_counter()
                result = function(*args, **kwargs)
                deadline = started + (time.perf_counter() - started) * factor
                while time.perf_counter() < deadline:
                    pass
                return result

        if benchmark.disabled and teardown is not None:
            # --benchmark-disable: pytest-benchmark calls the function once, after setup but
            # without teardown; fold the teardown in, so the run still checks what was done.
            after = teardown

            def timed(*args: Any, **kwargs: Any) -> object:
                result = function(*args, **kwargs)
                after(*args, **kwargs)
                return result

        return benchmark.pedantic(
            timed,
            rounds=rounds,
            iterations=iterations,
            warmup_rounds=min(rounds, 3) if warmup_rounds is None else warmup_rounds,
            setup=setup,
            teardown=teardown,
        )

    return run


@pytest.fixture(scope="session")
def qemu_purpose() -> str:
    """How the QEMU harness names these tests in a skip, a failure or the watchdog's message."""
    return "QEMU benchmarks"


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
