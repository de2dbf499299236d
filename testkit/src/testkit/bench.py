"""The bench tier's `measure` fixture: the one way a benchmark times its code.

`HANGAR_BENCH_SLOWDOWN="test_a=1.25,test_b=2"` makes the named benchmarks that many times slower
(a busy wait after each call). It exists only so the gate's self-checks and `invoke calibrate`
can prove a slowdown is caught; it lives here, in the test kit, never in product code.

Instruction mode (`TESTKIT_BENCH_INSTRUCTIONS=DIR`, set by the bench gate, which runs pytest
under valgrind's callgrind with `--instr-atstart=no --dump-after=callgrind_stop_instrumentation`):
a benchmark marked `cpu_bound` runs its warm-up calls, then `WINDOW_CALLS` calls inside one
callgrind window (one window per call when it has a setup or teardown, which stay outside; the
garbage collector collected before and off inside), and
appends its node id to `DIR/windows.txt` once per window, so the gate knows whose dump each
numbered dump is. Benchmarks not marked `cpu_bound` are skipped. The slowdown switch then adds
real work that instructions count: factor f makes round((f - 1) * WINDOW_CALLS) extra calls
(1.05 is one extra call of 20, +5 %); a busy wait would be a different instruction mix.

The tier's conftest takes the fixture by importing it (`from testkit.bench import measure`).
"""

from __future__ import annotations

import gc
import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_benchmark.fixture import BenchmarkFixture

SLOWDOWN_VARIABLE = "HANGAR_BENCH_SLOWDOWN"
INSTRUCTIONS_VARIABLE = "TESTKIT_BENCH_INSTRUCTIONS"
WINDOWS_FILE = "windows.txt"  # in the instruction directory: one node id per window, in order
WINDOW_CALLS = 20
CPU_BOUND = "cpu_bound"

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
    directory = os.environ.get(INSTRUCTIONS_VARIABLE)
    if directory:
        return instruction_mode(benchmark, request, Path(directory), factor)

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


def extra_calls(factor: float, calls: int = WINDOW_CALLS) -> int:
    """The slowdown switch in instruction mode: extra calls of the function inside the window."""
    return max(0, round((factor - 1) * calls))


def callgrind_hooks() -> Any:
    """pytest-codspeed's C module of callgrind client requests (it ships no stub)."""
    return importlib.import_module("pytest_codspeed.instruments.hooks.dist_instrument_hooks")


class Windows:
    """callgrind windows around calls; each stop dumps one file, named in `DIR/windows.txt`."""

    def __init__(self, directory: Path, node_id: str) -> None:
        hooks = callgrind_hooks()
        if not hooks.instrument_hooks_is_instrumented(hooks.instrument_hooks_init()):
            raise pytest.UsageError(
                f"{INSTRUCTIONS_VARIABLE} is set but this process does not run under valgrind "
                "--tool=callgrind: the bench gate sets it for its instruction run; unset it"
            )
        self.hooks = hooks
        self.sidecar = directory / WINDOWS_FILE
        self.node_id = node_id

    def run(self, calls: list[Callable[[], object]]) -> None:
        """The calls inside one window, with the cyclic garbage collector collected before and
        off during it: when it runs depends on what the process allocated before (temp paths,
        timings), which differs from run to run."""
        with self.sidecar.open("a") as sidecar:
            sidecar.write(self.node_id + "\n")
        gc.collect()
        gc.disable()
        try:
            self.hooks.callgrind_start_instrumentation()
            for call in calls:
                call()
            self.hooks.callgrind_stop_instrumentation()
        finally:
            gc.enable()


def instruction_mode(
    benchmark: BenchmarkFixture, request: pytest.FixtureRequest, directory: Path, factor: float
) -> Measure:
    """`measure` of the instruction run: warm-up calls, then the counted window(s)."""
    if request.node.get_closest_marker(CPU_BOUND) is None:
        pytest.skip(f"instruction mode ({INSTRUCTIONS_VARIABLE}) counts cpu_bound benchmarks only")
    windows = Windows(directory, request.node.nodeid)

    def run(
        function: Callable[..., object],
        *,
        rounds: int = 30,
        iterations: int = 1,
        warmup_rounds: int | None = None,
        setup: Setup | None = None,
        teardown: Callable[..., object] | None = None,
    ) -> object:
        del iterations  # the window's calls are WINDOW_CALLS, whatever the timed runs use
        results: list[object] = []

        def call() -> None:
            args, kwargs = setup() if setup is not None else ((), {})
            results.append(function(*args, **kwargs))
            if teardown is not None:
                teardown(*args, **kwargs)

        def counted() -> None:
            for _ in range(max(1, min(rounds, 3) if warmup_rounds is None else warmup_rounds)):
                call()
            calls = WINDOW_CALLS + extra_calls(factor)
            if setup is None and teardown is None:
                windows.run([lambda: results.append(function())] * calls)
            else:  # setup and teardown stay outside: one window per call
                for _ in range(calls):
                    args, kwargs = setup() if setup is not None else ((), {})
                    windows.run([lambda: results.append(function(*args, **kwargs))])  # noqa: B023
                    if teardown is not None:
                        teardown(*args, **kwargs)

        # One untimed call through the fixture (the gate passes --benchmark-disable), so
        # pytest-benchmark sees it used.
        benchmark.pedantic(counted, rounds=1, iterations=1, warmup_rounds=0)
        return results[-1]

    return run
