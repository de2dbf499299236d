"""The bench tier's `measure` fixture: the one way a benchmark times its code.

`HANGAR_BENCH_SLOWDOWN="test_a=1.25,test_b=2"` makes the named benchmarks that many times slower
(a busy wait after each call). It exists only so the gate's self-checks and `invoke calibrate`
can prove a slowdown is caught; it lives here, in the test kit, never in product code.

The tier's conftest takes the fixture by importing it (`from testkit.bench import measure`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_benchmark.fixture import BenchmarkFixture

SLOWDOWN_VARIABLE = "HANGAR_BENCH_SLOWDOWN"

Measure = Callable[..., Any]
Setup = Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]


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
