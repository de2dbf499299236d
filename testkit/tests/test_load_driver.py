"""The load driver's parts (`testkit.load`): the open-loop schedule, the figures, the
exactly-once check and the async wait. Nothing here asserts how long anything took."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from testkit.load import (
    Outcome,
    cpu_seconds,
    delivery_faults,
    latency_figures,
    nearest_rank,
    open_clients,
    open_loop,
    until,
    write_report,
)
from testkit.waiting import WaitTimeoutError

GUARD_S = 10.0  # only so a broken schedule fails instead of hanging


def test_open_loop_schedules_every_call_at_its_due_time_and_keeps_the_order() -> None:
    dues: list[tuple[int, float]] = []

    async def fire(index: int, due: float) -> int:
        dues.append((index, due))
        await asyncio.sleep(0.001 * (5 - index))  # later calls finish first
        return index * 10

    results = asyncio.run(open_loop(5, 1000.0, fire))

    assert results == [0, 10, 20, 30, 40]
    assert [index for index, _ in dues] == [0, 1, 2, 3, 4]
    start = dues[0][1]
    assert [due - start for _, due in dues] == pytest.approx([0.0, 0.001, 0.002, 0.003, 0.004])


def test_open_loop_does_not_wait_for_an_answer_before_the_next_call() -> None:
    """The first call answers only once the last has started: a closed loop would never end."""
    count = 4

    async def scenario() -> list[str]:
        last_started = asyncio.Event()

        async def fire(index: int, due: float) -> str:
            if index == count - 1:
                last_started.set()
            await last_started.wait()
            return f"answer {index}"

        return await asyncio.wait_for(open_loop(count, 500.0, fire), GUARD_S)

    assert asyncio.run(scenario()) == [f"answer {index}" for index in range(count)]


def test_open_loop_cancels_the_running_calls_when_one_raises() -> None:
    cancelled: list[int] = []

    async def fire(index: int, due: float) -> None:
        if index == 2:
            raise RuntimeError("driver bug")
        try:
            await asyncio.sleep(GUARD_S)
        except asyncio.CancelledError:
            cancelled.append(index)
            raise

    with pytest.raises(RuntimeError, match="driver bug"):
        asyncio.run(open_loop(3, 1000.0, fire))
    assert sorted(cancelled) == [0, 1]


def test_nearest_rank_gives_measured_values() -> None:
    ordered = [float(x) for x in range(1, 101)]
    assert nearest_rank(ordered, 0.5) == 50.0
    assert nearest_rank(ordered, 0.99) == 99.0
    assert nearest_rank(ordered, 1.0) == 100.0
    assert nearest_rank([7.0], 0.5) == 7.0
    with pytest.raises(ValueError, match="no samples"):
        nearest_rank([], 0.5)


def test_latency_figures_in_milliseconds() -> None:
    samples = [x / 1000 for x in range(100, 0, -1)]  # 1 ms to 100 ms, unsorted
    assert latency_figures(samples) == {
        "count": 100,
        "p50_ms": 50.0,
        "p99_ms": 99.0,
        "max_ms": 100.0,
    }
    assert latency_figures([]) == {"count": 0}


def test_outcome_splits_latency_into_lag_and_service() -> None:
    outcome = Outcome("machines", due=10.0, sent=10.25, done=10.75, status=200)
    assert (outcome.latency, outcome.lag, outcome.service) == (0.75, 0.25, 0.5)
    assert outcome.answered
    assert not Outcome("machines", 1.0, 1.0, 31.0, None, "ReadTimeout").answered


def test_delivery_faults_accepts_each_event_once_in_order() -> None:
    assert delivery_faults([3, 4, 7], [3, 4, 7]) == []
    assert delivery_faults([], []) == []


@pytest.mark.parametrize(
    ("received", "fault"),
    [
        ([3, 7], "missing 4"),
        ([3, 4, 4, 7], "delivered more than once 4"),
        ([3, 4, 5, 7], "not in the log 5"),
        ([4, 3, 7], "out of order: 4, 3, 7"),
    ],
)
def test_delivery_faults_names_what_is_wrong(received: list[int], fault: str) -> None:
    assert delivery_faults([3, 4, 7], received) == [fault]


def test_delivery_faults_shortens_long_lists() -> None:
    (fault,) = delivery_faults(list(range(100)), [])
    assert fault == "missing 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 … (100 in all)"


def test_until_returns_once_the_condition_holds() -> None:
    async def scenario() -> list[str]:
        seen: list[str] = []

        async def later() -> None:
            await asyncio.sleep(0.01)
            seen.append("set")

        task = asyncio.ensure_future(later())
        await until(lambda: bool(seen), what="the flag", timeout=GUARD_S, interval=0.001)
        await task
        return seen

    assert asyncio.run(scenario()) == ["set"]


def test_until_names_what_it_waited_for_and_saw() -> None:
    async def scenario() -> None:
        await until(lambda: False, what="3 streams", timeout=0, seen=lambda: "1 open")

    with pytest.raises(WaitTimeoutError, match=r"waiting for 3 streams; last seen: 1 open"):
        asyncio.run(scenario())


def test_cpu_seconds_counts_this_process_work() -> None:
    before, own = cpu_seconds(os.getpid()), time.process_time()
    while time.process_time() - own < 0.1:  # work, not wait: CPU time only grows by working
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.05  # /proc counts in clock ticks (10 ms)


def test_write_report_makes_the_directory(tmp_path: Path) -> None:
    path = write_report(tmp_path / "load" / "x.json", {"requests": {"errors": 0}})
    assert json.loads(path.read_text()) == {"requests": {"errors": 0}}


def test_open_clients_enters_once_all_opened_and_closes_them_all() -> None:
    """No network: each listener says it opened and then waits, as a stream does."""
    seen: list[tuple[int, httpx.AsyncClient]] = []
    cancelled: list[int] = []

    async def listen(index: int, client: httpx.AsyncClient, opened: Callable[[], None]) -> None:
        seen.append((index, client))
        opened()
        try:
            await asyncio.sleep(GUARD_S)
        except asyncio.CancelledError:
            cancelled.append(index)
            raise

    async def scenario() -> int:
        cookies = httpx.Cookies({"session": "s"})
        async with open_clients(
            3, listen, base_url="http://127.0.0.1:9", cookies=cookies, timeout_s=GUARD_S
        ):
            return len(seen)

    assert asyncio.run(scenario()) == 3
    assert sorted(index for index, _ in seen) == [0, 1, 2]
    assert len({id(client) for _, client in seen}) == 3  # a connection pool each
    assert all(client.is_closed for _, client in seen)
    assert sorted(cancelled) == [0, 1, 2]


def test_open_clients_fails_with_the_error_of_a_listener_that_ended() -> None:
    async def listen(index: int, client: httpx.AsyncClient, opened: Callable[[], None]) -> None:
        if index == 1:
            raise ConnectionError("refused")
        opened()
        await asyncio.sleep(GUARD_S)

    async def scenario() -> None:
        async with open_clients(
            2, listen, base_url="http://127.0.0.1:9", cookies=httpx.Cookies(), timeout_s=GUARD_S
        ):
            raise AssertionError("entered without every stream open")

    with pytest.raises(ConnectionError, match="refused"):
        asyncio.run(scenario())
