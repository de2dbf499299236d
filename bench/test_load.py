"""Load test over real HTTP: a load test of the bench tier, not a benchmark (the bench gate never
runs it; see conftest.py).

A `hangar serve` process (the fake provider with the product's 0.5 s latency, SQLite), loopback
only, and for 30 s:

- 100 requests per second, 3,000 in all, on an open-loop schedule (`testkit.load.open_loop`):
  the reads a dashboard makes, in turn — a page of machines, one machine, the event log, the
  operations — over one signed-in client's connection pool;
- 10 machine creations at once (with start), 5 s in, while the requests go on;
- 50 SSE clients, each on its own connection, resuming with `Last-Event-ID` from the newest
  event before the run, connected from before the first request until the last event arrived.

Asserted: every request answered 200 (error rate 0); the 10 creations accepted with distinct ids,
all running with their operations succeeded; every event the log holds after the resume point
delivered to every client exactly once, in order. Recorded, never asserted: p50/p99/max of the
request latency (per route too), of each creation until its machine ran, and of each event from
its creation until a stream had it; in `test-results/load/` and the session's summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest

from testkit.load import (
    REPORTS,
    Outcome,
    cpu_seconds,
    delivery_faults,
    latency_figures,
    machine_description,
    open_clients,
    open_loop,
    until,
    write_report,
)
from testkit.server import LiveServer

RATE_PER_S = 100
DURATION_S = 30
REQUESTS = RATE_PER_S * DURATION_S
CREATIONS = 10
CREATE_AT_S = 5.0  # into the run: the requests are at their rate when the creations start
CLIENTS = 50
FAKE_LATENCY_S = 0.5  # the product's default (read by conftest's `server`)
# Requests in flight at once, and the connections they use: more wait, cheaply, for a turn (an
# httpx pool with hundreds of queued requests spends the driver's CPU on its queue).
CONNECTIONS = 20
REQUEST_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 60.0
API = "/api/v1"
READS = ("machines", "machine", "events", "operations")

pytestmark = [pytest.mark.load, pytest.mark.timeout(300)]


@dataclass
class Stream:
    """One SSE client's view: the event ids in the order they came, each event's delay (from its
    creation to its arrival, wall clock), and when it first saw each machine running."""

    ids: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    running: dict[str, float] = field(default_factory=dict)

    def receive(self, event: dict[str, Any], now: float) -> None:
        self.ids.append(int(event["id"]))
        self.delays.append(now - datetime.fromisoformat(event["created_at"]).timestamp())
        if event["kind"] == "state" and event["state"] == "running":
            self.running.setdefault(event["machine_id"], now)

    async def listen(
        self, client: httpx.AsyncClient, after: int, opened: Callable[[], None]
    ) -> None:
        headers = {"Last-Event-ID": str(after)}
        async with client.stream("GET", f"{API}/events", headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            opened()
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    self.receive(json.loads(line[len("data:") :]), time.time())


@contextlib.asynccontextmanager
async def open_streams(
    server: LiveServer, cookies: httpx.Cookies, after: int
) -> AsyncIterator[list[Stream]]:
    """`CLIENTS` streams, each on its own connection, all open on entry; closed on the way out."""
    streams = [Stream() for _ in range(CLIENTS)]

    async def listen(index: int, client: httpx.AsyncClient, opened: Callable[[], None]) -> None:
        await streams[index].listen(client, after, opened)

    async with open_clients(
        CLIENTS, listen, base_url=server.url, cookies=cookies, timeout_s=REQUEST_TIMEOUT_S
    ):
        yield streams


@dataclass(frozen=True)
class Created:
    machine_id: str
    operation_id: str
    sent: float  # wall clock, as the streams' arrival times


async def sign_in(server: LiveServer) -> httpx.AsyncClient:
    """A client signed in as the admin (cookie and CSRF header), as the web UI is."""
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    api = httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT_S, limits=limits)
    credentials = {"username": server.admin.username, "password": server.admin.password}
    response = await api.post(f"{API}/auth/login", json=credentials)
    assert response.status_code == 200, response.text
    api.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return api


async def create(api: httpx.AsyncClient, name: str, *, start: bool) -> Created:
    body = {"name": name, "provider": "fake", "image": "debian-12", "start": start}
    body |= {"cpus": 1, "memory_mb": 256}
    sent = time.time()
    response = await api.post(f"{API}/machines", json=body)
    assert response.status_code == 202, response.text
    answer = response.json()
    return Created(answer["machine"]["id"], answer["operation"]["id"], sent)


async def create_at_once(api: httpx.AsyncClient, created: list[Created]) -> None:
    """`CREATIONS` creations started together `CREATE_AT_S` into the run; `created` fills as
    they are accepted (the reads turn to them)."""
    await asyncio.sleep(CREATE_AT_S)

    async def one(index: int) -> None:
        created.append(await create(api, f"load-{index}", start=True))

    await asyncio.gather(*(one(index) for index in range(CREATIONS)))


def read_path(index: int, seed: str, created: Sequence[Created]) -> tuple[str, str]:
    """The route and path of request `index`: the reads in turn; one machine is a created one
    once there are some, else the machine made before the run."""
    route = READS[index % len(READS)]
    if route == "machine":
        ids = [c.machine_id for c in created] or [seed]
        return route, f"{API}/machines/{ids[(index // len(READS)) % len(ids)]}"
    return route, f"{API}/{'events/log' if route == 'events' else route}"


async def read(api: httpx.AsyncClient, route: str, path: str, due: float) -> Outcome:
    """One request, its failure turned into an outcome (never raised)."""
    loop = asyncio.get_running_loop()
    sent = loop.time()
    try:
        response = await api.get(path)
    except httpx.HTTPError as error:
        return Outcome(route, due, sent, loop.time(), None, f"{type(error).__name__}: {error}")
    wrong = "" if response.status_code == 200 else response.text[:200]
    return Outcome(route, due, sent, loop.time(), response.status_code, wrong)


async def newest_event_id(api: httpx.AsyncClient) -> int:
    response = await api.get(f"{API}/events/log", params={"limit": 1})
    assert response.status_code == 200, response.text
    return max((event["id"] for event in response.json()), default=0)


async def event_ids_after(api: httpx.AsyncClient, after: int) -> list[int]:
    """The ids of the log's events after `after`, oldest first (paged newest first)."""
    ids: list[int] = []
    before: int | None = None
    while True:
        params = {"limit": 500} | ({"before": before} if before else {})
        response = await api.get(f"{API}/events/log", params=params)
        assert response.status_code == 200, response.text
        page = [event["id"] for event in response.json()]
        ids += [i for i in page if i > after]
        if len(page) < 500 or min(page) <= after:
            return sorted(ids)
        before = min(page)


@dataclass
class Run:
    """What one load run saw, for the checks and the report."""

    outcomes: list[Outcome]
    created: list[Created]
    streams: list[Stream]
    seconds: float  # from the first request due until the last answer or creation
    server_cpu_s: float  # the server process's CPU time in that span
    driver_cpu_s: float  # this process's (the driver's, the streams' included)
    expected: list[int] = field(default_factory=list)  # the log's event ids after the resume


async def settle(api: httpx.AsyncClient, run: Run, after: int) -> None:
    """Wait until every stream saw every creation end running, then read the log and wait until
    every stream has its newest event (what came later is not checked)."""
    machines = [c.machine_id for c in run.created]
    await until(
        lambda: all(m in s.running for s in run.streams for m in machines),
        what=f"every stream to see the {len(machines)} created machines running",
        timeout=SETTLE_TIMEOUT_S,
        seen=lambda: f"fewest seen by a stream: {min(len(s.running) for s in run.streams)}",
    )
    run.expected = await event_ids_after(api, after)
    newest = run.expected[-1]
    await until(
        lambda: all(s.ids and s.ids[-1] >= newest for s in run.streams),
        what=f"every stream to have event {newest}",
        timeout=SETTLE_TIMEOUT_S,
        seen=lambda: f"oldest last id: {min((s.ids[-1] if s.ids else 0) for s in run.streams)}",
    )


async def load_run(server: LiveServer) -> Run:
    """The whole run: a machine to read, the streams, the requests and creations, the settling."""
    api = await sign_in(server)
    try:
        seed = await create(api, "load-seed", start=False)
        after = await newest_event_id(api)
        created: list[Created] = []
        turns = asyncio.Semaphore(CONNECTIONS)

        async def fire(index: int, due: float) -> Outcome:
            async with turns:
                return await read(api, *read_path(index, seed.machine_id, created), due)

        assert server.process is not None
        pid = server.process.pid
        async with open_streams(server, api.cookies, after) as streams:
            started, server_cpu, driver_cpu = (
                time.monotonic(),
                cpu_seconds(pid),
                time.process_time(),
            )
            async with asyncio.TaskGroup() as group:
                traffic = group.create_task(open_loop(REQUESTS, RATE_PER_S, fire))
                group.create_task(create_at_once(api, created))
            run = Run(
                traffic.result(),
                created,
                streams,
                seconds=time.monotonic() - started,
                server_cpu_s=cpu_seconds(pid) - server_cpu,
                driver_cpu_s=time.process_time() - driver_cpu,
            )
            await settle(api, run, after)
        await check_machines(api, created)
        return run
    finally:
        await api.aclose()


async def check_machines(api: httpx.AsyncClient, created: Sequence[Created]) -> None:
    """Each creation ended with its machine running and its operation succeeded."""
    assert len({c.machine_id for c in created}) == CREATIONS, created
    for creation in created:
        machine = (await api.get(f"{API}/machines/{creation.machine_id}")).json()
        operation = (await api.get(f"{API}/operations/{creation.operation_id}")).json()
        assert (machine["state"], operation["status"]) == ("running", "succeeded"), (
            machine,
            operation,
        )


def report_of(run: Run) -> dict[str, Any]:
    """The figures of a run: requests (overall and per route), creations, event delivery."""
    answered = [o for o in run.outcomes if o.answered]
    return {
        "machine": machine_description(),
        "server": {"provider": "fake", "fake_latency_s": FAKE_LATENCY_S, "database": "SQLite"},
        "requests": {
            "scheduled": REQUESTS,
            "rate_per_s": RATE_PER_S,
            "answered": len(answered),
            "errors": sum(o.status != 200 for o in run.outcomes),
            "seconds": round(run.seconds, 2),
            "answered_per_s": round(len(answered) / run.seconds, 1),
            "server_cpu_ms_per_request": round(run.server_cpu_s / REQUESTS * 1000, 2),
            # The share of one core the server got (one process: about 1 is all it can use);
            # well below 1 while the answers lag behind, the machine's other work had the CPU.
            "server_cpu_share": round(run.server_cpu_s / run.seconds, 2),
            "driver_cpu_ms_per_request": round(run.driver_cpu_s / REQUESTS * 1000, 2),
            "latency": latency_figures([o.latency for o in answered]),
            "service": latency_figures([o.service for o in answered]),
            "send_lag": latency_figures([o.lag for o in run.outcomes]),
            "by_route": {
                route: latency_figures([o.latency for o in answered if o.route == route])
                for route in READS
            },
        },
        "creations": {
            "count": len(run.created),
            "until_running": latency_figures(
                [min(s.running[c.machine_id] for s in run.streams) - c.sent for c in run.created]
            ),
        },
        "events": {
            "clients": len(run.streams),
            "events": len(run.expected),
            "deliveries": sum(len(s.ids) for s in run.streams),
            "delivery": latency_figures([d for s in run.streams for d in s.delays]),
        },
    }


def summary(report: dict[str, Any]) -> list[str]:
    requests, events = report["requests"], report["events"]

    def figures(f: dict[str, Any]) -> str:
        if not f["count"]:
            return "none measured"
        return f"p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, max {f['max_ms']} ms"

    return [
        f"{requests['answered']}/{requests['scheduled']} requests answered in "
        f"{requests['seconds']} s ({requests['answered_per_s']}/s; "
        f"{requests['rate_per_s']}/s scheduled), {requests['errors']} errors",
        f"latency from the due time: {figures(requests['latency'])}",
        f"from sending ({CONNECTIONS} in flight at most): {figures(requests['service'])}",
        f"server CPU {requests['server_cpu_ms_per_request']} ms per request "
        f"(the creations' and streams' work included), {requests['server_cpu_share']:.0%} "
        "of a core",
        f"{report['creations']['count']} creations at once, until running: "
        f"{figures(report['creations']['until_running'])}",
        f"{events['events']} events x {events['clients']} streams, "
        f"{events['deliveries']} deliveries; delivery {figures(events['delivery'])}",
        f"machine: {report['machine']['cpus']} CPUs, load average "
        f"{report['machine']['load_average_1_5_15']}",
    ]


def test_load_http(
    server: LiveServer, loop: asyncio.Runner, request: pytest.FixtureRequest
) -> None:
    """100 requests/s for 30 s, 10 creations at once, 50 SSE clients: nothing lost or doubled."""
    run = loop.run(load_run(server))
    report = report_of(run)  # written before the checks: a failed run's figures say the most
    path = request.config.rootpath / "test-results" / "load" / f"{request.node.name}.json"
    write_report(path, report)
    request.config.stash.setdefault(REPORTS, []).append((path, summary(report)))

    failed = [o for o in run.outcomes if o.status != 200]
    assert len(run.outcomes) == REQUESTS
    assert not failed, f"{len(failed)} of {REQUESTS} requests failed, first: {failed[:5]}"
    assert run.expected, "no event in the log after the resume point"
    faults = {
        index: delivery_faults(run.expected, [i for i in stream.ids if i <= run.expected[-1]])
        for index, stream in enumerate(run.streams)
    }
    assert not any(faults.values()), {k: v for k, v in faults.items() if v}
