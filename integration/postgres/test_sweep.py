"""The PostgreSQL sweeper removes what killed runs left and never touches a live run's cluster.
Real processes stand for the runs; the dirs hold no cluster, so nothing is started here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from integration.postgres.conftest import PREFIX, RUN_ID, _sweep


def test_only_the_dirs_of_dead_runs_are_swept(tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    try:
        dirs = {
            "mine": tmp_path / f"{PREFIX}{RUN_ID}-x1",
            "live": tmp_path / f"{PREFIX}{live.pid}-0a1b2c3d-x2",
            "dead": tmp_path / f"{PREFIX}{dead.pid}-0a1b2c3d-x3",
            "old": tmp_path / f"{PREFIX}y4q1abcd0a1b2c3d",  # an old run's name: no pid in it
        }
        for path in dirs.values():
            (path / "data").mkdir(parents=True)
        swept = _sweep("pg_ctl-is-not-run-without-a-postmaster-pid", temp_dir=tmp_path)
        assert swept == sorted([dirs["dead"], dirs["old"]])
        assert dirs["mine"].is_dir()
        assert dirs["live"].is_dir()
        assert not dirs["dead"].exists()
    finally:
        live.kill()
        live.wait(10)
