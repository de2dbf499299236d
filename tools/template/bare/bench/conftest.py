"""Fixtures of the benchmarks: `measure`, the one way a benchmark times its code.

`HANGAR_BENCH_SLOWDOWN="test_a=1.25,test_b=2"` makes the named benchmarks that many times slower
(a busy wait after each call). It exists only so `invoke calibrate` can prove a slowdown is
caught; it lives here, never in product code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

SLOWDOWN_VARIABLE = "HANGAR_BENCH_SLOWDOWN"

Measure = Callable[..., object]


def slowdowns(value: str) -> dict[str, float]:
    """Parse `name=factor,name=factor`; a malformed entry is an error, never ignored."""
    factors: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, _, factor = entry.partition("=")
        try:
            factors[name.strip()] = float(factor)
        except ValueError:
            raise pytest.UsageError(
                f"{SLOWDOWN_VARIABLE}: {entry!r} is not NAME=FACTOR (e.g. test_render=1.25)"
            ) from None
    return factors


@pytest.fixture
def measure(benchmark: BenchmarkFixture, request: pytest.FixtureRequest) -> Measure:
    """`measure(function, rounds=30, iterations=1000)`: time `function` in a fixed number of rounds
    (so a gate run takes a known time and its statistics a known effort), each the mean of
    `iterations` calls; slowed down when the switch names this benchmark."""
    factor = slowdowns(os.environ.get(SLOWDOWN_VARIABLE, "")).get(request.node.name, 1.0)

    def run(function: Callable[[], object], rounds: int = 30, iterations: int = 1000) -> object:
        def timed() -> object:
            started = time.perf_counter()
            result = function()
            deadline = started + (time.perf_counter() - started) * factor
            while time.perf_counter() < deadline:
                pass
            return result

        chosen = timed if factor != 1.0 else function
        warmup = min(rounds, 3)
        return benchmark.pedantic(
            chosen, rounds=rounds, iterations=iterations, warmup_rounds=warmup
        )

    return run
