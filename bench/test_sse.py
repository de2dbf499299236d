"""SSE fan-out over real HTTP: a `hangar serve` process (fake provider, no latency) and 50
clients, each holding its own `GET /api/v1/events` stream on its own TCP connection.

What a round times: `POST /api/v1/machines` (not started) until every one of the 50 streams has
received that machine's last event of the create (`create succeeded`, right after `… is
stopped`). Every event of the create (provisioning, the operation, stopped, succeeded) goes
through the fan-out to all 50 streams, so the figure is what a dashboard with 50 open tabs waits
for. The next round starts with the streams idle: no event of this round is left to arrive and
be read in the next round's time.
The server is conftest.py's `server` (one per module; no fake latency here).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from testkit.load import open_clients
from testkit.server import LiveServer

CLIENTS = 50
ROUND_TIMEOUT_S = 30.0
Measure = Callable[..., Any]  # the `measure` fixture of conftest.py


class Streams:
    """`CLIENTS` open event streams; `arrived[machine_id]` counts the streams that have seen
    that machine's last event of the create (`create succeeded`), and `done[machine_id]`
    resolves when all of them have."""

    def __init__(self) -> None:
        self.arrived: dict[str, int] = {}
        self.done: dict[str, asyncio.Future[None]] = {}

    def future(self, machine_id: str) -> asyncio.Future[None]:
        future = self.done.setdefault(machine_id, asyncio.get_running_loop().create_future())
        if self.arrived.get(machine_id, 0) >= CLIENTS and not future.done():
            future.set_result(None)
        return future

    def _saw_created(self, machine_id: str) -> None:
        self.arrived[machine_id] = self.arrived.get(machine_id, 0) + 1
        if self.arrived[machine_id] >= CLIENTS:
            self.future(machine_id)

    async def listen(self, client: httpx.AsyncClient, opened: Callable[[], None]) -> None:
        async with client.stream("GET", "/api/v1/events") as response:
            assert response.status_code == 200, await response.aread()
            opened()
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[len("data:") :])
                if event["kind"] == "operation" and event["message"] == "create succeeded":
                    self._saw_created(event["machine_id"])


@contextlib.asynccontextmanager
async def open_streams(server: LiveServer, cookies: httpx.Cookies) -> AsyncIterator[Streams]:
    """Open the streams, each on its own connection, and close them all on the way out."""
    streams = Streams()

    async def listen(_: int, client: httpx.AsyncClient, opened: Callable[[], None]) -> None:
        await streams.listen(client, opened)

    async with open_clients(
        CLIENTS, listen, base_url=server.url, cookies=cookies, timeout_s=ROUND_TIMEOUT_S
    ):
        yield streams


def test_sse_fan_out_http(
    server: LiveServer, loop: asyncio.Runner, measure: Measure, tmp_path: Path
) -> None:
    """Create a machine through the API; time until all 50 SSE streams have its last event."""
    names = (f"sse-{n}" for n in itertools.count())

    async def log_in() -> tuple[httpx.AsyncClient, httpx.Cookies]:
        api = httpx.AsyncClient(base_url=server.url, timeout=ROUND_TIMEOUT_S)
        response = await api.post(
            "/api/v1/auth/login",
            json={"username": server.admin.username, "password": server.admin.password},
        )
        assert response.status_code == 200, response.text
        api.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        return api, api.cookies

    api, cookies = loop.run(log_in())
    streams_context = open_streams(server, cookies)
    streams = loop.run(streams_context.__aenter__())

    async def create_and_fan_out() -> None:
        body = {"name": next(names), "provider": "fake", "image": "debian-12", "start": False}
        body |= {"cpus": 1, "memory_mb": 256}
        response = await api.post("/api/v1/machines", json=body)
        assert response.status_code == 202, response.text
        machine_id = response.json()["machine"]["id"]
        await asyncio.wait_for(streams.future(machine_id), ROUND_TIMEOUT_S)

    try:
        measure(lambda: loop.run(create_and_fan_out()), rounds=30)
        # Every machine's last event reached every stream exactly once.
        assert set(streams.arrived.values()) == {CLIENTS}, streams.arrived
    finally:
        loop.run(streams_context.__aexit__(None, None, None))
        loop.run(api.aclose())
