"""The sliding-window limiter behind the login rate limit."""

from __future__ import annotations

from hangar.service.ratelimit import SlidingWindow


def test_sliding_window_forgets_old_hits() -> None:
    now = [1000.0]
    window = SlidingWindow(limit=2, window=10, clock=lambda: now[0])
    window.hit("k")
    now[0] += 4
    window.hit("k")
    assert window.retry_after("k") == 6
    now[0] += 6  # the first hit leaves the window
    assert window.retry_after("k") is None
    window.hit("k")
    assert window.retry_after("k") == 4
    now[0] += 100
    assert window.retry_after("k") is None
    window.hit("other")
    window.reset("other")
    assert window.retry_after("other") is None
