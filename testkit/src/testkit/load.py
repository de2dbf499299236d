"""The load driver of the bench tier's load tests: an open-loop request schedule, latency
figures, the exactly-once check of an event stream, a deadline wait for async code, the report.

**Why asyncio and httpx, not locust.** Locust (on PyPI, a fine tool for long, interactive load
runs) runs users as gevent greenlets and monkey-patches the standard library, which must happen
before anything else is imported — not something to do inside a pytest process that also runs
asyncio event loops and the test kit. Its users are closed loops (a user waits for an answer,
then for `wait_time`), so a slow answer delays the next request and the figures omit the time
that request would have waited; and the SSE clients and their exactly-once bookkeeping would be
custom code in it anyway. Here one asyncio loop holds the 50 streams, the paced requests and the
creations, with httpx (already the test kit's client) and no new dependency; `open_loop` starts
each request at its due time whether or not earlier ones have answered, and its latency counts
from that due time.

Figures are recorded, never asserted (timings on a shared machine are noise to a test): each load
test writes a JSON report under `test-results/load/` and its summary lines are printed at the end
of the session (bench/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from testkit.waiting import WaitTimeoutError

__all__ = [
    "REPORTS",
    "Outcome",
    "cpu_seconds",
    "delivery_faults",
    "latency_figures",
    "machine_description",
    "nearest_rank",
    "open_clients",
    "open_loop",
    "until",
    "write_report",
]

T = TypeVar("T")

# The reports of the session's load tests, for the summary printed at its end.
REPORTS = pytest.StashKey[list[tuple[Path, list[str]]]]()


@dataclass(frozen=True)
class Outcome:
    """One request of a load run. Times are the event loop's clock (seconds): `due` when the
    schedule wanted it sent, `sent` when it was, `done` when the answer (or the error) came.
    `status` is None when no answer came; `error` says why, or what a wrong answer said."""

    route: str
    due: float
    sent: float
    done: float
    status: int | None
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def latency(self) -> float:
        """From the due time: a request the driver or the server held back waited too."""
        return self.done - self.due

    @property
    def service(self) -> float:
        """From sending to the answer: the server's time (and the wire's), without the wait."""
        return self.done - self.sent

    @property
    def lag(self) -> float:
        """How late it was sent: the driver's own load, or a wait for a free connection when the
        server falls behind. Large values say the server (or the machine) did not keep up."""
        return self.sent - self.due


async def open_loop(count: int, rate: float, fire: Callable[[int, float], Awaitable[T]]) -> list[T]:
    """Start `fire(index, due)` at `due = start + index / rate` for each index below `count`,
    whether or not earlier calls have finished, and return the results in order once all have.

    An open loop: a slow answer never holds back the next request, so the figures include the
    time requests wait behind it. `fire` should turn a failed request into a result; if it raises,
    the calls still running are cancelled and the error propagates."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[asyncio.Future[T]] = []
    try:
        for index in range(count):
            due = start + index / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(fire(index, due)))
        return list(await asyncio.gather(*tasks))
    finally:
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile of sorted samples by the nearest-rank rule: always a measured value."""
    if not ordered:
        raise ValueError("no samples")
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_figures(samples_s: Sequence[float]) -> dict[str, float | int]:
    """Count, p50, p99 and max in milliseconds (rounded to 0.1 ms): what the reports show."""
    if not samples_s:
        return {"count": 0}
    ordered = sorted(samples_s)
    figures: dict[str, float | int] = {"count": len(ordered)}
    for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99), ("max_ms", 1.0)):
        figures[name] = round(nearest_rank(ordered, q) * 1000, 1)
    return figures


def _few(ids: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, ids[:limit]))
    return shown + (f" … ({len(ids)} in all)" if len(ids) > limit else "")


def delivery_faults(expected: Sequence[int], received: Sequence[int]) -> list[str]:
    """How a stream's delivered event ids differ from what it should have delivered (the log's,
    in order): missing ones, ones delivered twice, ones not in the log, a wrong order.
    Empty when every expected event came exactly once and in order."""
    counts = Counter(received)
    known = set(expected)
    faults = []
    missing = [i for i in expected if counts[i] == 0]
    if missing:
        faults.append(f"missing {_few(missing)}")
    twice = sorted(i for i, n in counts.items() if n > 1)
    if twice:
        faults.append(f"delivered more than once {_few(twice)}")
    unknown = sorted(i for i in counts if i not in known)
    if unknown:
        faults.append(f"not in the log {_few(unknown)}")
    if not faults and list(received) != list(expected):
        faults.append(f"out of order: {_few(list(received))}")
    return faults


async def until(
    condition: Callable[[], bool],
    *,
    what: str,
    # As testkit.waiting's: past it, an error that names what was awaited and what was seen.
    timeout: float,  # noqa: ASYNC109
    seen: Callable[[], str] = lambda: "not yet",
    interval: float = 0.05,
) -> None:
    """Return once `condition()` holds, checked every `interval` on the running loop; past
    `timeout` raise WaitTimeoutError naming `what` and `seen()` (what was there last)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            raise WaitTimeoutError(what, timeout, seen())
        await asyncio.sleep(interval)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) that process `pid` has used so far, from /proc (Linux): the
    server's work per request does not depend on how busy the machine is, its latency does."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# What each of `open_clients`' clients runs: `listen(index, client, opened)`, calling `opened()`
# once its stream is open.
Listen = Callable[[int, httpx.AsyncClient, Callable[[], None]], Awaitable[None]]


@contextlib.asynccontextmanager
async def open_clients(
    count: int, listen: Listen, *, base_url: str, cookies: httpx.Cookies, timeout_s: float
) -> AsyncIterator[None]:
    """`count` clients, each on a connection of its own, each running `listen`; entered once
    every one has called `opened()` (a listener that ends first fails the entry with its error,
    and so does `timeout_s`, which is also each client's httpx timeout). On the way out every
    listener is cancelled and every client closed."""
    clients = [
        httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=timeout_s)
        for _ in range(count)
    ]
    opened = 0

    def one_more() -> None:
        nonlocal opened
        opened += 1

    listeners = [
        asyncio.ensure_future(listen(index, client, one_more))
        for index, client in enumerate(clients)
    ]
    try:
        await until(
            lambda: opened == count or any(listener.done() for listener in listeners),
            what=f"{count} streams to open",
            timeout=timeout_s,
            seen=lambda: f"{opened} open",
        )
        for listener in listeners:
            if listener.done():  # a stream that ended before all were open: show why
                listener.result()
                raise AssertionError("a stream ended right after it opened")
        yield
    finally:
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        for client in clients:
            await client.aclose()


def machine_description() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was (the load average) when asked."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def write_report(path: Path, report: dict[str, Any]) -> Path:
    """Write the report as JSON (the directory is made); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
