"""SSE fan-out over real HTTP: `hangar serve` processes (fake provider, no latency), each with 50
clients holding their own `GET /api/v1/events` stream on their own TCP connection.

What a round times: `POST /api/v1/machines` (not started) until every one of the server's 50
streams has received that machine's last event of the create (`create succeeded`, right after
`… is stopped`). Every event of the create (provisioning, the operation, stopped, succeeded) goes
through the fan-out to all 50 streams, so the figure is what a dashboard with 50 open tabs waits
for. The next round starts with the streams idle: no event of this round is left to arrive and
be read in the next round's time.

The rounds take the `SERVERS` servers in turn (conftest.py's `servers`, started side by side):
this figure's level moves from server process to server process by about 8 % (and as much
between two sets of streams), so one server per run made a run's 10 % quantile a draw of one
level. Measured here, 8 runs each way, alternately: one server and 90 rounds gave 10 %
quantiles with a spread (standard deviation of their logarithms) of 0.106, three servers taken
in turn 0.058, at about twice the run's time (13 s against 7 s).
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

CLIENTS = 50  # streams per server
SERVERS = 3  # read by conftest.py's `servers`
ROUNDS_PER_SERVER = 30
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


Fanned = tuple[httpx.AsyncClient, Streams]  # one server's logged-in API client, its streams


async def fan(server: LiveServer, stack: contextlib.AsyncExitStack) -> Fanned:
    """Log in to `server` (cookie and CSRF header set) and open its streams; `stack` closes both."""
    api = await stack.enter_async_context(
        httpx.AsyncClient(base_url=server.url, timeout=ROUND_TIMEOUT_S)
    )
    response = await api.post(
        "/api/v1/auth/login",
        json={"username": server.admin.username, "password": server.admin.password},
    )
    assert response.status_code == 200, response.text
    api.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return api, await stack.enter_async_context(open_streams(server, api.cookies))


def test_sse_fan_out_http(
    servers: list[LiveServer], loop: asyncio.Runner, measure: Measure, tmp_path: Path
) -> None:
    """Create a machine through the API of each server in turn; time until all 50 SSE streams
    of that server have its last event."""
    names = (f"sse-{n}" for n in itertools.count())
    stack = contextlib.AsyncExitStack()
    try:
        fanned = [loop.run(fan(server, stack)) for server in servers]
        turns = itertools.cycle(fanned)
        calls = 0

        async def create_and_fan_out() -> None:
            nonlocal calls
            calls += 1
            api, streams = next(turns)
            body = {"name": next(names), "provider": "fake", "image": "debian-12", "start": False}
            body |= {"cpus": 1, "memory_mb": 256}
            response = await api.post("/api/v1/machines", json=body)
            assert response.status_code == 202, response.text
            machine_id = response.json()["machine"]["id"]
            await asyncio.wait_for(streams.future(machine_id), ROUND_TIMEOUT_S)

        # The warm-up rounds take each server once too.
        rounds = ROUNDS_PER_SERVER * len(servers)
        measure(lambda: loop.run(create_and_fan_out()), rounds=rounds, warmup_rounds=len(servers))
        # Every machine's last event reached every stream of its server exactly once, and every
        # server had its share of the rounds.
        for _, streams in fanned:
            assert all(n == CLIENTS for n in streams.arrived.values()), streams.arrived
        created = [len(streams.arrived) for _, streams in fanned]
        assert sum(created) == calls, (created, calls)
        assert max(created) - min(created) <= 1, created
    finally:
        loop.run(stack.aclose())
