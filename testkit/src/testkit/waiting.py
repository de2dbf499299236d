"""One deadline behind every wait: `retry` calls until a call succeeds, `wait_until` polls until
a value is right. Past the deadline both raise `WaitTimeoutError`, naming what was awaited, how
long, and the last thing seen (a value or an error), so a failed wait says what it waited *for*.

Both take `clock` and `sleep` (default `time.monotonic`, `time.sleep`) so their tests need no real
time. Each attempt runs at least once, also with a zero timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["NotYet", "WaitTimeoutError", "retry", "wait_until"]

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], None]


class WaitTimeoutError(AssertionError):
    """A wait ran out of time. An AssertionError, so pytest shows it as a test's failure."""

    def __init__(self, what: str, timeout: float, last: str) -> None:
        super().__init__(f"timed out after {timeout:g} s waiting for {what}; last seen: {last}")
        self.what = what
        self.timeout = timeout
        self.last = last


class NotYet(Exception):  # noqa: N818 -- a state, not a failure: "not yet"
    """Raised by an attempt to say "not yet"; its message is what it saw."""


def retry(
    attempt: Callable[[], T],
    *,
    what: str,
    timeout: float,
    interval: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (NotYet,),
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> T:
    """Call `attempt` until it returns; returns what it returned.

    An exception of a `retry_on` type means "not yet": it is kept as the last observation and the
    attempt is made again after `interval` seconds. Any other exception ends the wait at once
    (that is how an attempt says "this will never happen"). Past `timeout` seconds raise
    `WaitTimeoutError(what, timeout, last)`, chained from the last exception.
    """
    deadline = clock() + timeout
    while True:
        try:
            return attempt()
        except retry_on as error:
            if clock() >= deadline:
                raise WaitTimeoutError(what, timeout, str(error) or repr(error)) from error
        sleep(max(0.0, min(interval, deadline - clock())))


def wait_until(
    probe: Callable[[], T],
    *,
    what: str,
    timeout: float,
    until: Callable[[T], object] = bool,
    interval: float = 0.1,
    ignoring: tuple[type[BaseException], ...] = (),
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> T:
    """Call `probe` until `until(value)` is true (by default: the value itself); return the value.

    An exception of an `ignoring` type counts as "not yet" (a server that does not answer yet);
    any other ends the wait at once. Past `timeout` raise `WaitTimeoutError`, whose last observation
    is the last value (its repr) or the last ignored error.
    """

    def attempt() -> T:
        try:
            value = probe()
        except ignoring as error:
            raise NotYet(repr(error)) from error
        if not until(value):
            raise NotYet(repr(value))
        return value

    return retry(attempt, what=what, timeout=timeout, interval=interval, clock=clock, sleep=sleep)
