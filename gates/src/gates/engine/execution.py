"""How a gate runs: commands with their output in a log file, and what a gate run produced."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol

from gates.engine.history import Outcome
from gates.engine.junit import TestReport
from gates.engine.shard import Shard
from gates.provision import ProvisionReport

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
KEY_OUTPUT_LINES = 30


class Shell(Protocol):
    """Runs one command with its output appended to `log`; returns the exit status."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        log: Path,
        env: Mapping[str, str],
        timeout: float | None,
    ) -> int: ...


def real_shell(
    argv: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    env: Mapping[str, str],
    timeout: float | None,
) -> int:
    """Run `argv` in its own process group so a timeout ends the whole tree it started."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            out.write(f"cannot run {argv[0]}: {error}\n".encode())
            return 127
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a process ignoring SIGTERM
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            out.write(f"\ntimed out after {timeout} s\n".encode())
            return 124
        except BaseException:
            # Interrupted (Ctrl-C): the gate's processes must not outlive the run.
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
            raise


def nox_command() -> list[str]:
    """How to start nox: from this environment when it has nox, else through uv."""
    if find_spec("nox") is not None:
        return [sys.executable, "-m", "nox"]
    return ["uv", "run", "nox"]  # pragma: no cover - the dev group always has nox


Provisioner = Callable[[str], ProvisionReport]


@dataclass
class GateContext:
    """What every gate of one run shares: where it runs, how commands run, earlier results."""

    root: Path
    run_dir: Path
    shell: Shell = real_shell
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 1)
    reports: dict[str, TestReport] = field(default_factory=dict)
    results: dict[str, GateResult] = field(default_factory=dict)  # by gate key, as they finish
    # One collection serves every check that asks for the same groups and directories.
    collections: dict[tuple[tuple[str, ...], tuple[str, ...]], Collection] = field(
        default_factory=dict
    )
    provisioner: Provisioner | None = None
    clock: Callable[[], float] = time.perf_counter
    baseline: str | None = None  # the bench gate's `--baseline REV`; None: the last green commit
    # The bench gate's `--all-benchmarks`: every benchmark, not only those the change affects.
    all_benchmarks: bool = False
    shard: Shard | None = None  # this run's part of the test gates (`--shard I/N`); None: all
    durations: Path | None = None  # the stored durations' directory, for the shards' split
    nox_envdir: Path | None = None  # nox's --envdir: side-by-side shards need their own
    # The variable naming a command gate's coverage data file (COVERAGE_FILE); None: not measured.
    coverage_variable: str | None = None

    def log_for(self, gate_key: str) -> Path:
        return self.run_dir / (gate_key.replace("/", "-") + ".log")

    def junit_for(self, gate_key: str) -> Path:
        return self.run_dir / (gate_key.replace("/", "-") + ".xml")

    def timing_for(self, gate_key: str) -> Path:
        return self.run_dir / (gate_key.replace("/", "-") + ".timing.json")

    def shard_report_for(self, gate_key: str) -> Path:
        """The tests a shard's part of a gate was given and kept (gates_shard plugin)."""
        return self.run_dir / (gate_key.replace("/", "-") + ".shard.json")


@dataclass(frozen=True)
class Collection:
    """One `pytest --collect-only`: its exit status, each test's markers, and its log."""

    status: int
    items: Mapping[str, list[str]]
    log: Path


@dataclass
class GateResult:
    """How one gate went: the outcome, the numbers, and what a person needs when it failed."""

    outcome: Outcome
    duration_s: float = 0.0
    summary: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    skips: list[dict[str, str]] = field(default_factory=list)
    key_output: list[str] = field(default_factory=list)
    next_command: str = ""
    log: Path | None = None


def tail(log: Path, lines: int = KEY_OUTPUT_LINES) -> list[str]:
    """The last lines of a log, without terminal colour codes."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    return [ANSI.sub("", line) for line in text.splitlines()[-lines:]]
