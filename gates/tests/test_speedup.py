"""The speedup advice on synthetic suites of each shape, and one real run of the timing plugin.

The suites are timing data (what `gates.pytest_plugins.timing` records), built by a small scheduler
that hands each test, in order, to the worker that is free first — as xdist's load scheduling does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gates.parallel.speedup import (
    EFFICIENCY,
    SERIALLY,
    SuiteTiming,
    TestTiming,
    TimingError,
    advise,
    read_timing,
)
from gates.pytest_plugins import timing

START = 1_700_000_000.0


def run(
    durations: Mapping[str, float],
    workers: int = 0,
    *,
    startup: float,
    first_extra: float = 0.0,
    gap: float = 0.0005,
    tail: float = 0.05,
) -> SuiteTiming:
    """A recorded run: each test in order goes to the worker free first; `first_extra` is added
    to each worker's first test (a session fixture); `workers=0` is serial ("main")."""
    names = ["main"] if workers == 0 else [f"gw{i}" for i in range(workers)]
    free = dict.fromkeys(names, START + startup)
    started: set[str] = set()
    tests = []
    for nodeid, duration in durations.items():
        worker = min(names, key=lambda w: free[w])
        seconds = duration + (0.0 if worker in started else first_extra)
        started.add(worker)
        begin = free[worker]
        tests.append(TestTiming(nodeid, worker, begin, begin + seconds, seconds))
        free[worker] = begin + seconds + gap
    finish = max(t.stop for t in tests) + tail
    return SuiteTiming(START, finish, workers, tuple(tests))


def suite(count: int, seconds: float, prefix: str = "t.py::test_") -> dict[str, float]:
    return {f"{prefix}{i:04d}": seconds for i in range(count)}


def text(advice: Any) -> str:
    return "\n".join([advice.summary, *advice.lines])


# -- the shapes -------------------------------------------------------------------------------


def test_many_tiny_tests_where_start_up_dominates_run_serially_and_pass() -> None:
    tests = suite(300, 0.002)
    serial = run(tests, startup=0.5)
    parallel = run(tests, 2, startup=1.2)

    advice = advise(serial, parallel, cores=2, min_speedup="auto")

    assert advice.outcome == "passed"
    assert advice.summary.startswith("run serially:")
    assert advice.recommended == SERIALLY
    assert advice.metrics["recommended_workers"] == 0
    assert "recommended: run serially" in text(advice)
    assert advice.metrics["bounds"]["1"] == pytest.approx(1.0)  # type: ignore[index]
    assert advice.metrics["bound"] < 1.1  # type: ignore[operator]
    assert advice.metrics["causes"] == {}


def test_a_few_long_tests_allow_a_good_bound_and_measured_near_it_passes() -> None:
    tests = suite(8, 1.0)
    serial = run(tests, startup=0.3)
    parallel = run(tests, 4, startup=0.8)

    advice = advise(serial, parallel, cores=4, min_speedup="auto")

    assert advice.outcome == "passed", text(advice)
    assert advice.metrics["bound"] > 2.5  # type: ignore[operator]
    assert advice.metrics["efficiency"] == pytest.approx(1.0, abs=0.02)
    assert advice.recommended == 4
    assert advice.summary.startswith("speedup 2.9")
    assert "of the 2.9" in advice.summary


def test_a_few_long_tests_measured_far_below_the_bound_fails_naming_contention() -> None:
    tests = suite(8, 1.0)
    serial = run(tests, startup=0.3)
    parallel = run(dict.fromkeys(tests, 2.5), 4, startup=0.8)  # every test 2.5x slower

    advice = advise(serial, parallel, cores=4, min_speedup="auto")

    assert advice.outcome == "failed"
    assert advice.metrics["efficiency"] < EFFICIENCY  # type: ignore[operator]
    assert "(need 70%)" in advice.summary
    assert "across the board" in advice.summary
    assert "CPU contention" in advice.summary
    assert "inflation" in advice.metrics["causes"]  # type: ignore[operator]


def test_a_serializing_fixture_fails_naming_the_lock_and_the_inflated_tests() -> None:
    free = suite(30, 0.1, "t.py::test_free_")
    locked = suite(10, 0.3, "t.py::test_db_")
    serial = run({**free, **locked}, startup=0.3)
    # Under 4 workers the tests that share the lock wait for each other.
    parallel = run({**free, **dict.fromkeys(locked, 1.2)}, 4, startup=0.8)

    advice = advise(serial, parallel, cores=4, min_speedup="auto")

    assert advice.outcome == "failed"
    assert "lock or shared resource" in advice.summary
    assert "test_db_" in advice.summary
    inflated = next(line for line in advice.lines if "inflated most:" in line)
    assert "test_db_" in inflated
    assert "test_free_" not in inflated
    assert "300 ms → 1.2 s" in inflated
    assert next(iter(advice.metrics["causes"])) == "inflation"  # type: ignore[call-overload]


def test_a_session_fixture_paid_by_every_worker_fails_naming_start_up() -> None:
    tests = suite(40, 0.1)
    serial = run(tests, startup=0.3, first_extra=3.0)
    parallel = run(tests, 4, startup=0.8, first_extra=3.0)

    advice = advise(serial, parallel, cores=4, min_speedup="auto")

    assert advice.outcome == "failed", text(advice)
    assert "per-worker start-up" in advice.summary
    assert "first test takes 3.0 s longer" in advice.summary
    assert "worker_setup" in advice.metrics["causes"]  # type: ignore[operator]


def test_slow_worker_start_up_fails_even_when_measured_matches_the_bound() -> None:
    tests = suite(40, 0.5)
    serial = run(tests, startup=0.3)
    parallel = run(tests, 4, startup=6.0)  # e.g. a conftest that works hard in every worker

    advice = advise(serial, parallel, cores=4, min_speedup="auto")

    assert advice.metrics["efficiency"] == pytest.approx(1.0, abs=0.02)
    assert advice.outcome == "failed"
    assert advice.summary.startswith("speedup 1.8")
    assert "per-worker start-up: workers take 6.0 s to reach their first test" in (advice.summary)
    assert "against 300 ms serially" in advice.summary
    assert next(iter(advice.metrics["causes"])) == "startup"  # type: ignore[call-overload]


def test_one_huge_test_bounds_the_speedup_and_is_named() -> None:
    tests = {"t.py::test_huge": 8.0, **suite(20, 0.1)}
    serial = run(tests, startup=0.3)
    parallel = run(tests, 4, startup=0.8)

    advice = advise(serial, parallel, cores=4, min_speedup="auto")

    assert advice.metrics["longest_test"] == "t.py::test_huge"
    assert advice.metrics["longest_test_s"] == 8.0
    assert "the longest test t.py::test_huge (8.0 s) bounds it" in advice.summary
    assert any("t.py::test_huge 8.0 s — it bounds the speedup" in line for line in advice.lines)
    assert advice.metrics["bound"] < 1.3  # type: ignore[operator]
    assert "imbalance" not in advice.metrics["causes"]  # type: ignore[operator]


def test_a_huge_test_scheduled_last_shows_as_imbalance() -> None:
    tests = {**suite(160, 0.1), "t.py::test_huge": 6.0}
    serial = run(tests, startup=0.3)
    parallel = run(tests, 4, startup=0.8)

    advice = advise(serial, parallel, cores=4, min_speedup="auto")

    assert advice.outcome == "failed", text(advice)
    assert "imbalance:" in advice.summary
    assert "t.py::test_huge" in advice.summary
    assert "--dist worksteal" in text(advice)


def test_a_numeric_min_speedup_means_exactly_that_number_with_the_same_advice() -> None:
    tests = suite(8, 1.0)
    serial = run(tests, startup=0.3)
    parallel = run(tests, 4, startup=0.8)
    auto = advise(serial, parallel, cores=4, min_speedup="auto")
    measured = auto.metrics["speedup"]
    assert isinstance(measured, float)

    met = advise(serial, parallel, cores=4, min_speedup=measured - 0.01)  # metrics round
    missed = advise(serial, parallel, cores=4, min_speedup=measured + 0.5)

    assert met.outcome == "passed"
    assert missed.outcome == "failed"
    assert missed.summary.startswith(f"speedup {measured:.2f}x with 4 workers (need ")
    assert "the suite allows at most" in missed.summary
    assert met.lines == missed.lines == auto.lines
    assert missed.metrics["criterion"] == "fixed"


def test_a_numeric_min_speedup_passes_a_suite_auto_would_fail() -> None:
    tests = suite(8, 1.0)
    serial = run(tests, startup=0.3)
    parallel = run(dict.fromkeys(tests, 2.5), 4, startup=0.8)

    assert advise(serial, parallel, cores=4, min_speedup=1.2).outcome == "passed"
    assert advise(serial, parallel, cores=4, min_speedup="auto").outcome == "failed"


def test_tests_in_only_one_run_are_reported_not_compared() -> None:
    serial = run({**suite(8, 1.0), "t.py::test_gone": 1.0}, startup=0.3)
    parallel = run({**suite(8, 1.0), "t.py::test_new": 1.0}, 4, startup=0.8)

    advice = advise(serial, parallel, cores=4, min_speedup="auto")

    assert advice.metrics["only_serial"] == 1
    assert advice.metrics["only_parallel"] == 1
    assert "only in the serial run (1 test, not compared): t.py::test_gone" in advice.lines
    assert "only in the xdist run (1 test, not compared): t.py::test_new" in advice.lines


def test_an_empty_run_fails_with_the_reason() -> None:
    serial = run(suite(3, 0.1), startup=0.3)
    empty = SuiteTiming(START, START + 1, 2, ())

    advice = advise(serial, empty, cores=2, min_speedup="auto")

    assert advice.outcome == "failed"
    assert advice.summary == "the xdist run recorded no test: nothing to compare"


def test_the_metrics_are_json() -> None:
    tests = suite(8, 1.0)
    advice = advise(
        run(tests, startup=0.3), run(tests, 2, startup=0.8), cores=2, min_speedup="auto"
    )
    assert json.loads(json.dumps(advice.metrics)) == advice.metrics


# -- reading reports --------------------------------------------------------------------------


def test_read_timing_reads_what_the_plugin_writes(tmp_path: Path) -> None:
    path = tmp_path / "timing.json"
    path.write_text(
        json.dumps(
            {
                "format": 1,
                "session_start": 10.0,
                "session_finish": 12.0,
                "workers": 0,
                "tests": [
                    {"nodeid": "a", "worker": "main", "start": 10.5, "stop": 11.0,
                     "duration": 0.4, "outcome": "passed"}
                ],
            }
        )
    )  # fmt: skip
    timing_ = read_timing(path)
    assert timing_.wall == 2.0
    assert timing_.startup == 0.5
    assert timing_.tail == 1.0
    assert timing_.tests == (TestTiming("a", "main", 10.5, 11.0, 0.4, "passed"),)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the timing report"),
        ("{", "is not JSON"),
        ('{"session_start": 1, "tests": []}', "lacks or mangles 'session_finish'"),
    ],
)
def test_read_timing_names_a_missing_or_malformed_report(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "timing.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TimingError, match=message):
        read_timing(path)


# -- the plugin -------------------------------------------------------------------------------


def test_the_plugin_does_nothing_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(timing.REPORT_VARIABLE, raising=False)
    registered: list[object] = []
    config = SimpleNamespace(pluginmanager=SimpleNamespace(register=registered.append))
    timing.pytest_configure(config)  # type: ignore[arg-type]
    assert registered == []


def test_the_plugin_records_serially_and_under_xdist(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keeps the project's settings out
    (tmp_path / "test_tiny.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture\n"
        "def broken():\n"
        "    raise RuntimeError('setup fails')\n\n"
        "def test_passes():\n    pass\n\n"
        "def test_fails():\n    assert False\n\n"
        "def test_skips():\n    pytest.skip('not here')\n\n"
        "def test_errors(broken):\n    pass\n"
    )
    # Only the plugins under test: the installed ones (coverage, hypothesis…) cost seconds.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    runs = {"serial": [], "xdist": ["-p", "xdist.plugin", "-n", "2"]}
    # Both runs at once: the test costs one pytest start-up instead of two.
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "gates.pytest_plugins.timing",
        "-p",
        "no:cacheprovider",
    ]
    processes = {
        name: subprocess.Popen(
            [*command, *args, "test_tiny.py"],
            cwd=tmp_path,
            env={**env, timing.REPORT_VARIABLE: str(tmp_path / f"{name}.json")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name, args in runs.items()
    }
    for name, process in processes.items():
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 1, f"{name}: {output.decode()}"  # one test fails

    cpu: dict[str, float] = {}
    for name, workers, names in (("serial", 0, {"main"}), ("xdist", 2, {"gw0", "gw1"})):
        document = json.loads((tmp_path / f"{name}.json").read_text())
        assert set(document) == {
            "format", "session_start", "session_finish", "workers", "tests",
            "session_cpu_s", "cores", "machine_cpu_s",
        }  # fmt: skip
        assert document["cores"] == os.cpu_count()
        assert document["session_cpu_s"] > 0
        assert document["machine_cpu_s"] > 0
        cpu[name] = document["session_cpu_s"]
        assert document["workers"] == workers
        tests = {t["nodeid"].rsplit("::", 1)[1]: t for t in document["tests"]}
        assert {n: t["outcome"] for n, t in tests.items()} == {
            "test_passes": "passed",
            "test_fails": "failed",
            "test_skips": "skipped",
            "test_errors": "error",
        }
        assert {t["worker"] for t in tests.values()} == names
        for test in tests.values():
            assert set(test) == {"nodeid", "worker", "start", "stop", "duration", "outcome"}
            assert document["session_start"] < test["start"] <= test["stop"]
            assert test["stop"] <= document["session_finish"]
            assert test["duration"] >= 0
        assert read_timing(tmp_path / f"{name}.json").workers == workers
    # The xdist run's figure has its two workers' CPU time (each one starts pytest) in it.
    assert cpu["xdist"] > cpu["serial"], cpu
