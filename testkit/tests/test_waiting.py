"""`retry` and `wait_until` on a fake clock: no test here sleeps for real."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from testkit.waiting import NotYet, WaitTimeoutError, retry, wait_until


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"slept a negative time: {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def answers(*values: object) -> Callable[[], object]:
    """A probe that gives `values` one by one, then keeps giving the last."""
    given: Iterator[object] = iter(values)
    last: list[object] = []

    def probe() -> object:
        value = next(given, last[0] if last else None)
        last[:] = [value]
        if isinstance(value, BaseException):
            raise value
        return value

    return probe


def test_wait_until_returns_the_first_value_that_is_right(clock: FakeClock) -> None:
    value = wait_until(
        answers(0, 0, 7), what="a number", timeout=10, interval=0.5, clock=clock, sleep=clock.sleep
    )
    assert value == 7
    assert clock.sleeps == [0.5, 0.5]


def test_until_decides_what_is_right(clock: FakeClock) -> None:
    state = wait_until(
        answers("starting", "running"),
        until=lambda s: s == "running",
        what="the machine to run",
        timeout=5,
        clock=clock,
        sleep=clock.sleep,
    )
    assert state == "running"


def test_a_timeout_names_what_was_awaited_how_long_and_the_last_value(clock: FakeClock) -> None:
    with pytest.raises(WaitTimeoutError) as timeout:
        wait_until(
            answers("starting", "stopping"),
            until=lambda s: s == "running",
            what="machine m-1 to be running",
            timeout=2,
            interval=0.5,
            clock=clock,
            sleep=clock.sleep,
        )
    message = str(timeout.value)
    assert message == (
        "timed out after 2 s waiting for machine m-1 to be running; last seen: 'stopping'"
    )
    assert (timeout.value.what, timeout.value.timeout) == ("machine m-1 to be running", 2)
    assert isinstance(timeout.value, AssertionError)  # pytest reports it as a failed test
    assert clock.now == pytest.approx(102.0)  # it waited the whole deadline, not more


def test_the_last_sleep_stops_at_the_deadline(clock: FakeClock) -> None:
    with pytest.raises(WaitTimeoutError):
        wait_until(
            answers(False), what="never", timeout=1.0, interval=0.4, clock=clock, sleep=clock.sleep
        )
    assert clock.sleeps == pytest.approx([0.4, 0.4, 0.2])


def test_ignored_errors_are_not_yet_and_the_last_one_is_reported(clock: FakeClock) -> None:
    probe = answers(ConnectionError("refused"), TimeoutError("slow"))
    with pytest.raises(WaitTimeoutError, match=r"last seen: TimeoutError\('slow'\)") as timeout:
        wait_until(
            probe,
            what="the server to answer",
            timeout=1,
            ignoring=(ConnectionError, TimeoutError),
            clock=clock,
            sleep=clock.sleep,
        )
    assert isinstance(timeout.value.__cause__, NotYet)


def test_an_ignored_error_then_a_value(clock: FakeClock) -> None:
    probe = answers(ConnectionError("refused"), "ready")
    assert (
        wait_until(probe, what="x", timeout=5, ignoring=(OSError,), clock=clock, sleep=clock.sleep)
        == "ready"
    )


def test_any_other_error_ends_the_wait_at_once(clock: FakeClock) -> None:
    probe = answers(None, AssertionError("machine failed: no memory"))
    with pytest.raises(AssertionError, match="machine failed") as failure:
        wait_until(probe, what="x", timeout=60, clock=clock, sleep=clock.sleep)
    assert not isinstance(failure.value, WaitTimeoutError)
    assert clock.sleeps == [0.1]


def test_a_zero_timeout_still_tries_once(clock: FakeClock) -> None:
    assert wait_until(answers("at once"), what="x", timeout=0, clock=clock, sleep=clock.sleep)
    with pytest.raises(WaitTimeoutError):
        wait_until(answers(""), what="x", timeout=0, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_retry_calls_until_an_attempt_returns(clock: FakeClock) -> None:
    attempts: list[int] = []

    def attempt() -> str:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise NotYet(f"attempt {len(attempts)}")
        return "done"

    assert retry(attempt, what="x", timeout=5, clock=clock, sleep=clock.sleep) == "done"
    assert attempts == [0, 1, 2]


def test_retry_on_names_the_errors_that_mean_not_yet(clock: FakeClock) -> None:
    def attempt() -> None:
        raise KeyError("busy")

    with pytest.raises(WaitTimeoutError, match=r"waiting for the lock; last seen: 'busy'") as e:
        retry(
            attempt,
            what="the lock",
            timeout=0.3,
            retry_on=(KeyError,),
            clock=clock,
            sleep=clock.sleep,
        )
    assert isinstance(e.value.__cause__, KeyError)
    with pytest.raises(KeyError):  # not named: not retried
        retry(attempt, what="the lock", timeout=5, clock=clock, sleep=clock.sleep)
