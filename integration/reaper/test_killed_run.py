"""Issue 16's acceptance: a test run killed with `kill -9` while its QEMU guest, PostgreSQL
cluster and live server run leaves none of its processes or temp dirs 10 s later — its reaper
ends them, without waiting for a later run's sweeper.

The run is a real pytest run of this tier (`killed_run.py`, in a session of its own), killed by
a SIGKILL to its whole process group: the reaper, in a session of its own, must survive that.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integration.reaper.killed_run import READY_VARIABLE
from testkit import runs
from testkit.postgres import tool
from testkit.qemu import BOOT_TIMEOUT_S
from testkit.waiting import WaitTimeoutError, wait_until

ROOT = Path(__file__).resolve().parents[2]
KILLED_RUN = Path(__file__).with_name("killed_run.py")
# The issue's own bound: everything of a killed run is gone within this many seconds.
GONE_WITHIN_S = 10.0
# Start-up: pytest, a PostgreSQL cluster, a guest's boot, a live server, on shared cores.
READY_WITHIN_S = BOOT_TIMEOUT_S + 120


def start_run(ready: Path, log: Path, image_dir: Path) -> subprocess.Popen[bytes]:
    """`pytest killed_run.py` of this tier, in a session of its own (its pid leads its run id)."""
    argv = [sys.executable, "-m", "pytest", str(KILLED_RUN), "-o", "python_files=killed_run.py"]
    argv += ["-p", "no:randomly", "--timeout", str(READY_WITHIN_S * 2), "-q"]
    env = {**os.environ, READY_VARIABLE: str(ready), "HANGAR_IT_IMAGE_DIR": str(image_dir)}
    with log.open("wb") as output:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def wait_ready(run: subprocess.Popen[bytes], ready: Path, log: Path) -> dict[str, Any]:
    """What the run says it started, once everything runs; its log if it never gets there."""

    def said() -> str:
        if run.poll() is not None:
            raise AssertionError(f"the run ended (status {run.returncode}) before it was ready")
        return ready.read_text() if ready.exists() else ""

    try:
        text = wait_until(said, what="the run to start everything", timeout=READY_WITHIN_S)
    except AssertionError as error:
        raise AssertionError(f"{error}\nits log:\n{log.read_text(errors='replace')}") from None
    made: dict[str, Any] = json.loads(text)
    return made


def leftovers(made: dict[str, Any]) -> list[str]:
    """What of the run still exists: its processes (those that carry its tag, and its reaper)
    and its tagged dirs. A pid reused by another process meanwhile carries no tag: not counted."""
    run_id = made["run"]
    pids = {made["postmaster"], made["server"], *made["qemu"], *made["processes"]}
    alive = [pid for pid in sorted(pids) if run_id in runs.runs_of(pid)]
    alive += [p.pid for p in runs.processes_of(run_id) if p.pid not in alive]
    reaper = runs.read_cmdline(made["reaper"])
    if reaper is not None and reaper[-1] == run_id:
        alive.append(made["reaper"])
    described = [f"pid {pid}: {' '.join(runs.read_cmdline(pid) or ())[:100]}" for pid in alive]
    dirs = [str(p) for root in runs.TEMP_ROOTS for p in root.glob(f"{runs.TEST_PREFIX}{run_id}*")]
    return described + sorted(set(dirs))


def clean_up(run: subprocess.Popen[bytes]) -> None:
    """Whatever happened: the run is killed, and what is left of it — or of any run it led —
    is reaped here."""
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    led = {r for p in runs.tagged_processes() for r in p.runs if r.startswith(f"{run.pid}-")}
    for root in runs.TEMP_ROOTS:
        for path in root.glob(f"{runs.TEST_PREFIX}{run.pid}-*"):
            led.add(runs.run_id_of(path.name) or "")
    for run_id in sorted(led - {""}):
        runs.reap(run_id)


@pytest.mark.slow
@pytest.mark.timeout(READY_WITHIN_S + 120)
def test_a_run_killed_with_kill_9_leaves_nothing_behind(tiny_image: Path, tmp_path: Path) -> None:
    for name in ("initdb", "pg_ctl"):
        tool(name)  # missing: skipped with the install command, or failed under CI=true
    ready, log = tmp_path / "ready.json", tmp_path / "run.log"
    run = start_run(ready, log, tiny_image)
    try:
        made = wait_ready(run, ready, log)
        assert made["run"].startswith(f"{run.pid}-")
        assert made["qemu"], "the run reported no QEMU process"
        for pid in [made["postmaster"], made["server"], *made["qemu"]]:
            assert made["run"] in runs.runs_of(pid), f"pid {pid} does not carry the run's tag"
        assert any("-pg" in path for path in made["dirs"]), made["dirs"]
        assert len(leftovers(made)) >= 5  # reaper, postmaster, server, QEMU, dirs: all there

        os.killpg(run.pid, signal.SIGKILL)  # the run's whole process group
        assert run.wait() == -signal.SIGKILL

        try:
            wait_until(
                lambda: leftovers(made),
                until=lambda left: not left,
                what=f"nothing of the killed run {made['run']} to remain",
                timeout=GONE_WITHIN_S,
                interval=0.2,
            )
        except WaitTimeoutError as error:
            raise AssertionError(f"{error}\nthe run's log:\n{log.read_text()}") from None
    finally:
        clean_up(run)
