"""The run that `test_killed_run.py` starts and kills: not a test of its own (pytest does not
collect this file unless told to), but a real run of this tier. It starts a QEMU guest (the QEMU
harness), a PostgreSQL cluster (`testkit.postgres`) and a live server (`testkit.server`), writes
what runs to the file named by `TESTKIT_KILLED_RUN_READY`, and waits to be killed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hangar.providers.qemu import process
from testkit import runs
from testkit.postgres import PostgresServer, postgres
from testkit.qemu import QemuFixture
from testkit.server import LiveServer

__all__ = ["postgres"]

READY_VARIABLE = "TESTKIT_KILLED_RUN_READY"
WAIT_TO_BE_KILLED_S = 600


def test_start_everything_then_wait_to_be_killed(
    qemu: QemuFixture, postgres: PostgresServer
) -> None:
    ready = os.environ.get(READY_VARIABLE)
    if not ready:
        pytest.fail(
            f"{__name__} is the run that integration/reaper/test_killed_run.py kills; it sets "
            f"{READY_VARIABLE} to the file where this run says what it started",
            pytrace=False,
        )
    qemu.machine("reaped").create().start()
    server = LiveServer(data_dir=runs.new_dir("srv") / "data").start()
    assert server.process is not None
    postmaster = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
    guests = [p.pid for p in runs.processes_of(runs.RUN_ID) if process.tag_of(p.argv)]
    made = {
        "run": runs.RUN_ID,
        "reaper": runs.start_reaper().pid,
        "qemu": guests,
        "postmaster": postmaster,
        "server": server.process.pid,
        "processes": [p.pid for p in runs.processes_of(runs.RUN_ID)],
        "dirs": [str(path) for root in runs.TEMP_ROOTS for path in root.glob(f"{runs.RUN_TAG}*")],
    }
    written = Path(f"{ready}.part")
    written.write_text(json.dumps(made))
    written.replace(ready)  # whole, or not yet there
    time.sleep(WAIT_TO_BE_KILLED_S)
