"""A pytest plugin that records when each test ran, serially or under pytest-xdist.

Loaded as `-p gates_timing` (a copy of this file, see gates.pytest_plugins) with
`GATES_TIMING_REPORT=PATH`; without the variable it does nothing. It records in the process that
owns the session (the xdist controller, or the only process of a serial run) from the test reports:
under xdist the workers send theirs to the controller, each naming its worker (`report.worker_id`,
e.g. "gw0"). At session finish it writes PATH atomically:

    {
      "format": 1,
      "session_start": 1700000000.0,   # epoch s, controller's pytest_sessionstart (before
                                       # collection and before xdist starts its workers)
      "session_finish": 1700000012.5,  # epoch s, controller's pytest_sessionfinish
      "workers": 2,                    # xdist workers started; 0 = serial
      "machine_cpu_s": 24.1,           # CPU time every process of the machine used meanwhile
                                       # (Linux: /proc/stat; absent elsewhere)
      "session_cpu_s": 23.5,           # of which this session's processes: the controller,
                                       # its workers and what they started and waited for
      "cores": 2,                      # the machine's CPUs
      "tests": [
        {"nodeid": "t.py::test_a", "worker": "gw0",   # "main" when serial
         "start": 1700000001.2,        # setup start (epoch s)
         "stop": 1700000001.3,         # teardown stop (epoch s)
         "duration": 0.1,              # setup + call + teardown, s
         "outcome": "passed"}          # passed | failed | error | skipped
      ]
    }

Tests are listed in the order their last report arrived. Times come from pytest's own reports
(`start`, `stop`, `duration`), so the serial and the xdist run are measured the same way. The two
CPU figures tell how much of the machine other work took while the session ran (a wall-clock
speedup measured on a busy machine says nothing about the suite).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the gate engine imports this module in environments without pytest
    import pytest

REPORT_VARIABLE = "GATES_TIMING_REPORT"
FORMAT = 1
SERIAL_WORKER = "main"


@dataclass
class _Test:
    """What the reports of one test's phases add up to so far."""

    worker: str
    start: float
    stop: float
    duration: float
    outcome: str

    def as_json(self, nodeid: str) -> dict[str, object]:
        return {
            "nodeid": nodeid,
            "worker": self.worker,
            "start": self.start,
            "stop": self.stop,
            "duration": round(self.duration, 6),
            "outcome": self.outcome,
        }


def _outcome(when: str, outcome: str, before: str | None) -> str:
    """The test's outcome after a phase's report: a failing setup or teardown is an error, a
    failing call a failure, a skip in setup or call a skip; the worst phase wins."""
    if outcome == "failed":
        return "failed" if when == "call" else "error"
    if before in {"failed", "error", "skipped"}:
        return before
    return "skipped" if outcome == "skipped" else "passed"


CPU_OUTPUT = "gates_cpu_s"  # what a worker reports of its CPU time (xdist's workeroutput)


def machine_cpu_s() -> float | None:
    """CPU seconds every process of the machine has used since boot (Linux), else None."""
    try:
        with Path("/proc/stat").open() as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
    ticks = [int(value) for value in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_s(with_children: bool = True) -> float:
    """This process's CPU seconds, with those of the children it waited for."""
    times = os.times()
    children = times.children_user + times.children_system if with_children else 0.0
    return times.user + times.system + children


class Recorder:
    """Collects the per-test times in the controller and writes them at session finish."""

    def __init__(self, target: Path, workers: int) -> None:
        self.target = target
        self.workers = workers
        self.session_start = 0.0
        self.machine_start: float | None = None
        self.cpu_start = 0.0
        self.workers_cpu = 0.0
        self.tests: dict[str, _Test] = {}

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # xdist starts its workers in its own pytest_sessionstart, marked trylast, so this
        # one runs first: the start-up the workers cost lies after this instant.
        self.session_start = time.time()
        self.machine_start = machine_cpu_s()
        self.cpu_start = own_cpu_s(with_children=not self.workers)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        worker = _worker_of(report)
        # A report xdist makes up for a crashed worker has no times: it happened now.
        now = time.time()
        start = float(getattr(report, "start", 0.0) or now)
        stop = float(getattr(report, "stop", 0.0) or now)
        seen = self.tests.get(report.nodeid)
        if seen is None or report.when == "setup":
            # A setup report opens the test (again, if a plugin reruns it).
            self.tests[report.nodeid] = _Test(
                worker, start, stop, report.duration, _outcome(report.when, report.outcome, None)
            )
            return
        seen.stop = max(seen.stop, stop)
        seen.duration += report.duration
        seen.outcome = _outcome(report.when, report.outcome, seen.outcome)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Under xdist the workers' time comes from their reports: counting the controller's
        # children too would count a reaped worker twice.
        own = own_cpu_s(with_children=not self.workers) - self.cpu_start
        machine_end = machine_cpu_s()
        document: dict[str, object] = {
            "format": FORMAT,
            "session_start": self.session_start,
            "session_finish": time.time(),
            "workers": self.workers,
            "session_cpu_s": round(own + self.workers_cpu, 3),
            "cores": os.cpu_count() or 1,
        }
        if self.machine_start is not None and machine_end is not None:
            document["machine_cpu_s"] = round(machine_end - self.machine_start, 3)
        document["tests"] = [test.as_json(nodeid) for nodeid, test in self.tests.items()]

        # Written beside the target, then renamed: a reader never sees half of it.
        self.target.parent.mkdir(parents=True, exist_ok=True)
        partial = self.target.with_name(f".{self.target.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(document, indent=1))
        partial.replace(self.target)


def _worker_of(report: Any) -> str:
    """The xdist worker that ran the test ("gw0"…), or "main" in a serial run."""
    worker = getattr(report, "worker_id", None)  # set by the worker in each report it sends
    if worker is None:
        # Reports xdist makes up in the controller (a crashed worker) carry only the node.
        gateway = getattr(getattr(report, "node", None), "gateway", None)
        worker = getattr(gateway, "id", None)
    return str(worker) if worker else SERIAL_WORKER


def _worker_count(config: pytest.Config) -> int:
    """How many xdist workers this session starts: one per `--tx` (which `-n N` and `-n auto`
    become in xdist's pytest_cmdline_main, before pytest_configure); 0 when not distributed."""
    option = config.option
    if getattr(option, "dist", "no") == "no":
        return 0
    return len(getattr(option, "tx", None) or [])


class WorkersCpu:
    """In an xdist controller: adds up the CPU time each worker reported as it ended."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        output = getattr(node, "workeroutput", None) or {}
        self.recorder.workers_cpu += float(output.get(CPU_OUTPUT, 0.0))


class WorkerCpu:
    """In an xdist worker: hands the controller the CPU time the worker used. All of it, from
    its start: the controller starts its workers after the session's start."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        output = getattr(self.config, "workeroutput", None)
        if output is not None:
            output[CPU_OUTPUT] = own_cpu_s()


def pytest_configure(config: pytest.Config) -> None:
    target = os.environ.get(REPORT_VARIABLE)
    if not target:
        return
    # Workers inherit the variable and load the plugin too; only the controller records.
    if hasattr(config, "workerinput"):
        config.pluginmanager.register(WorkerCpu(config), "gates-timing-worker-cpu")
        return
    recorder = Recorder(Path(target), _worker_count(config))
    config.pluginmanager.register(recorder, "gates-timing-recorder")
    if recorder.workers:
        config.pluginmanager.register(WorkersCpu(recorder), "gates-timing-workers-cpu")
