"""The reaper, with a real "run": a Python process (in a session of its own) that imports
`testkit.runs`, makes a tagged dir, starts sleeping processes the ways a run does (tagged by its
environment only, registered as a process group with its environment scrubbed, a "postmaster"
registered by its pidfile with SIGQUIT) and is then killed with `kill -9` — or ends normally.
The real QEMU, PostgreSQL and server of a killed integration run: integration/reaper/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import runs
from testkit.waiting import wait_until

# The run: prints what it made (as JSON, to the file argv[1]), then sleeps, or exits if argv[2].
RUN = r"""
import json, signal, subprocess, sys, time
from pathlib import Path
from testkit import runs

QUIT = ("import signal, sys, time\n"
        "def quit(*_):\n"
        "    open(sys.argv[1], 'w').write('SIGQUIT'); sys.exit(0)\n"
        "signal.signal(signal.SIGQUIT, quit)\n"
        "time.sleep(300)\n")
directory = runs.new_dir("unit", runs.SOCKET_ROOT)
data = directory / "data"
data.mkdir()
runs.register_pidfile(data / "postmaster.pid", stop=signal.SIGQUIT)
postmaster = subprocess.Popen(
    [sys.executable, "-c", QUIT, sys.argv[1] + ".quit", "-D", str(data)], start_new_session=True
)
(data / "postmaster.pid").write_text(f"{postmaster.pid}\n")
tagged = subprocess.Popen(["sleep", "300"], start_new_session=True)
scrubbed = subprocess.Popen(["sleep", "300"], env={"PATH": "/usr/bin:/bin"}, start_new_session=True)
runs.register_process(scrubbed.pid, group=True)
made = {"run": runs.RUN_ID, "dir": str(directory), "reaper": runs.start_reaper().pid,
        "pids": [postmaster.pid, tagged.pid, scrubbed.pid]}
if len(sys.argv) > 2:  # a run that used multiprocessing: its resource tracker lives to its end
    from multiprocessing import resource_tracker
    resource_tracker.ensure_running()
    made["tracker"] = resource_tracker._resource_tracker._pid
Path(sys.argv[1]).write_text(json.dumps(made))
if len(sys.argv) > 2:
    sys.exit(0)
time.sleep(300)
"""


class Run:
    """The run's process and what it reported; `leftovers()` is what of it still exists."""

    def __init__(self, report: Path, *, exit_at_once: bool = False) -> None:
        self.report = report
        argv = [sys.executable, "-c", RUN, str(report), *(["exit"] if exit_at_once else [])]
        self.process = subprocess.Popen(argv, start_new_session=True, stderr=subprocess.PIPE)
        self.made: dict[str, Any] = {}

    def wait_ready(self) -> dict[str, Any]:
        text = wait_until(
            lambda: self.report.read_text() if self.report.exists() else "",
            what="the run to start its processes",
            timeout=30,
            ignoring=(OSError,),
        )
        self.made = json.loads(text)
        return self.made

    def leftovers(self) -> list[str]:
        pids = [*self.made.get("pids", []), self.made.get("reaper", 0)]
        alive = [f"pid {pid}" for pid in pids if pid and runs.read_cmdline(pid) is not None]
        run = self.made.get("run", "")
        dirs = [str(path) for path in runs.SOCKET_ROOT.glob(f"{runs.TEST_PREFIX}{run}*")]
        return alive + (dirs if run else [])

    def clean_up(self) -> None:
        """Whatever happened: the run's process group is killed and everything of it reaped."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        assert self.process.stderr is not None
        self.process.stderr.close()
        if self.made:
            runs.reap(self.made["run"])
            reaper = int(self.made["reaper"])
            if runs.read_cmdline(reaper) is not None:
                os.kill(reaper, signal.SIGKILL)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Any]:
    made: list[Run] = []

    def make(**options: bool) -> Run:
        made.append(Run(tmp_path / f"run{len(made)}.json", **options))
        return made[-1]

    yield make
    for run in made:
        run.clean_up()


def test_a_run_killed_with_kill_9_leaves_nothing(make_run: Any, tmp_path: Path) -> None:
    run = make_run()
    made = run.wait_ready()
    # 3 processes, the reaper (once its exec is done), the tagged dir, the journal
    wait_until(run.leftovers, until=lambda left: len(left) == 6, what="all of the run", timeout=10)
    assert runs.read_cmdline(made["reaper"]) is not None

    os.killpg(run.process.pid, signal.SIGKILL)  # the run's whole process group

    wait_until(run.leftovers, until=lambda left: not left, what="nothing of the run", timeout=10)
    assert (tmp_path / "run0.json.quit").read_text() == "SIGQUIT"  # the pidfile's signal first


def test_at_a_normal_end_the_reaper_ends_what_teardown_left(make_run: Any) -> None:
    run = make_run(exit_at_once=True)
    assert run.process.wait(30) == 0  # returns once the reaper is done (atexit waits for it)
    run.wait_ready()
    assert run.leftovers() == []
    assert run.process.stderr is not None
    said = run.process.stderr.read().decode()
    assert f"the reaper of run {run.made['run']} ended what teardown left" in said
    assert f"sleep pid {run.made['pids'][1]}" in said
    # multiprocessing's resource tracker is the run's own helper, stopped before the reaper
    # looks: neither ended by it nor reported as left.
    assert f"pid {run.made['tracker']}" not in said
    assert runs.read_cmdline(run.made["tracker"]) is None


def test_the_reaper_refuses_a_bad_run_id() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "testkit.reaper", "not-a-run"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=30,
    )
    assert result.returncode == 2
    assert "usage: python -m testkit.reaper <run id>" in result.stderr
    assert "got ['not-a-run']" in result.stderr


def test_the_reaper_is_started_once_per_process_in_a_session_of_its_own() -> None:
    reaper = runs.start_reaper()
    assert runs.start_reaper() is reaper
    assert os.getsid(reaper.pid) == reaper.pid  # a kill -9 of our process group spares it
    assert runs.journal_dir(runs.RUN_ID).is_dir()
    argv = wait_until(  # until its exec is done, a child's command line is not yet its own
        lambda: runs.read_cmdline(reaper.pid),
        until=lambda argv: argv is not None and argv[-2:] == ("testkit.reaper", runs.RUN_ID),
        what=f"the reaper pid {reaper.pid} to run",
        timeout=10,
        interval=0.01,
    )
    assert argv is not None
    assert argv[-3:] == ("-m", "testkit.reaper", runs.RUN_ID)
    assert runs.runs_of(reaper.pid) == frozenset()  # no sweeper takes it for a run's process
