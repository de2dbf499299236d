"""`gates run --shards N`: N shard runs side by side on this machine, as CI's job matrix does.

Each shard is its own `gates run --shard I/N` process with the same run id, its own nox
environments (`--nox-envdir`, so no two shards rebuild one environment) and its share of the
cores; its output goes to `.gates/runs/<run>/shard-I-of-N.log`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gates.engine.shard import Shard
from gates.shards.results import shard_dir

NOX_ENVDIRS = ".nox/shards"


@dataclass(frozen=True)
class ShardProcess:
    """How one shard's process ended."""

    shard: Shard
    status: int
    directory: Path
    log: Path


def run_side_by_side(
    root: Path,
    total: int,
    run_id: str,
    run_args: Sequence[str],
    *,
    cores: int | None = None,
    started: Callable[[Shard, Path], None] = lambda shard, log: None,
    finished: Callable[[ShardProcess], None] = lambda process: None,
) -> list[ShardProcess]:
    """Start every shard, wait for all of them; `run_args` are the other `gates run` options."""
    runs = root / ".gates" / "runs"
    share = max(1, (cores or os.cpu_count() or 1) // total)
    environ = {**os.environ, "PYTEST_XDIST_AUTO_NUM_WORKERS": str(share)}  # xdist's `-n auto`
    running: list[tuple[Shard, subprocess.Popen[bytes], Path]] = []
    try:
        for index in range(1, total + 1):
            shard = Shard(index, total)
            log = runs / run_id / f"shard-{index}-of-{total}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, "-m", "gates", "run", "--shard", shard.label]
            argv += ["--run-id", run_id, "--cores", str(share), "--no-github", *run_args]
            argv += ["--nox-envdir", str(root / NOX_ENVDIRS / str(index))] if index > 1 else []
            with log.open("wb") as out:
                process = subprocess.Popen(
                    argv, cwd=root, env=environ, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            running.append((shard, process, log))
            started(shard, log)
        ended = []
        for shard, process, log in running:
            done = ShardProcess(shard, process.wait(), shard_dir(runs, run_id, shard), log)
            finished(done)
            ended.append(done)
        return ended
    finally:
        for _, process, _ in running:  # interrupted: no shard outlives the command
            if process.poll() is None:
                process.terminate()
                process.wait()
