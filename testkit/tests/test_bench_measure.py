"""testkit.bench's instruction mode, without valgrind: what runs inside the callgrind window,
what the sidecar names, the slowdown switch's extra calls, and the refusals (the real callgrind
run is integration/gates/test_bench_instructions.py)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from testkit import bench
from testkit.bench import CPU_BOUND, WINDOW_CALLS, WINDOWS_FILE, extra_calls, instruction_mode


class FakeHooks:
    """callgrind's client requests, recorded: which calls ran inside a window, and the garbage
    collections (a full collection of this test process's heap takes a few hundred ms; the
    fake counts them instead, so each window can check that one came just before it)."""

    def __init__(self, instrumented: bool = True) -> None:
        self.instrumented = instrumented
        self.inside = False
        self.windows: list[list[str]] = []
        self.collections = 0

    def collect(self, generation: int = 2) -> int:
        assert generation == 2, "a partial collection leaves garbage to collect in the window"
        assert not self.inside, "the garbage collector is run inside the window"
        self.collections += 1
        return 0

    def instrument_hooks_init(self) -> object:
        return object()

    def instrument_hooks_is_instrumented(self, _: object) -> bool:
        return self.instrumented

    def callgrind_start_instrumentation(self) -> None:
        assert not gc.isenabled(), "the garbage collector runs inside the window"
        assert self.collections == len(self.windows) + 1, "no collection just before the window"
        self.inside = True
        self.windows.append([])

    def callgrind_stop_instrumentation(self) -> None:
        self.inside = False


class FakeBenchmark:
    """pytest-benchmark's fixture under --benchmark-disable: pedantic calls once."""

    def pedantic(self, function: Callable[[], object], **_: object) -> object:
        return function()


def request(marked: bool = True) -> Any:
    marker = pytest.mark.cpu_bound.mark if marked else None
    node = SimpleNamespace(
        nodeid="bench/test_x.py::test_x",
        get_closest_marker=lambda name: marker if name == CPU_BOUND else None,
    )
    return SimpleNamespace(node=node)


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> FakeHooks:
    fake = FakeHooks()
    monkeypatch.setattr(bench, "callgrind_hooks", lambda: fake)
    monkeypatch.setattr(gc, "collect", fake.collect)
    return fake


def recorder(hooks: FakeHooks, log: list[str], what: str) -> Callable[..., str]:
    def record(*_: object, **__: object) -> str:
        log.append(f"{what}{'!' if hooks.inside else ''}")
        if hooks.inside:
            hooks.windows[-1].append(what)
        return what

    return record


def test_warm_up_then_one_window_of_twenty_calls_named_in_the_sidecar(
    hooks: FakeHooks, tmp_path: Path
) -> None:
    log: list[str] = []
    measure = instruction_mode(FakeBenchmark(), request(), tmp_path, 1.0)  # type: ignore[arg-type]
    assert measure(recorder(hooks, log, "f"), rounds=50, iterations=20) == "f"
    assert log[:3] == ["f", "f", "f"]  # warm-up, uncounted
    assert hooks.windows == [["f"] * WINDOW_CALLS]
    assert (tmp_path / WINDOWS_FILE).read_text() == "bench/test_x.py::test_x\n"
    assert gc.isenabled()


def test_setup_and_teardown_stay_outside_one_window_per_call(
    hooks: FakeHooks, tmp_path: Path
) -> None:
    log: list[str] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        recorder(hooks, log, "setup")()
        return (), {}

    measure = instruction_mode(FakeBenchmark(), request(), tmp_path, 1.0)  # type: ignore[arg-type]
    measure(
        recorder(hooks, log, "f"),
        rounds=5,
        warmup_rounds=1,
        setup=setup,
        teardown=recorder(hooks, log, "teardown"),
    )
    assert hooks.windows == [["f"]] * WINDOW_CALLS
    assert not [entry for entry in log if entry.endswith("!") and entry != "f!"]
    assert (tmp_path / WINDOWS_FILE).read_text().count("\n") == WINDOW_CALLS


@pytest.mark.parametrize(("factor", "extra"), [(1.0, 0), (1.05, 1), (1.25, 5), (2.0, 20), (0.5, 0)])
def test_the_slowdown_switch_makes_real_extra_calls(factor: float, extra: int) -> None:
    assert extra_calls(factor) == extra


def test_a_five_percent_slowdown_is_one_more_call_in_the_window(
    hooks: FakeHooks, tmp_path: Path
) -> None:
    measure = instruction_mode(FakeBenchmark(), request(), tmp_path, 1.05)  # type: ignore[arg-type]
    measure(recorder(hooks, [], "f"))
    assert hooks.windows == [["f"] * (WINDOW_CALLS + 1)]


def test_a_benchmark_not_marked_cpu_bound_is_skipped(hooks: FakeHooks, tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="cpu_bound benchmarks only"):
        instruction_mode(FakeBenchmark(), request(marked=False), tmp_path, 1.0)  # type: ignore[arg-type]
    assert hooks.windows == []


def test_instruction_mode_outside_callgrind_fails_clearly(hooks: FakeHooks, tmp_path: Path) -> None:
    hooks.instrumented = False
    with pytest.raises(pytest.UsageError, match="does not run under valgrind --tool=callgrind"):
        instruction_mode(FakeBenchmark(), request(), tmp_path, 1.0)  # type: ignore[arg-type]
