"""Soak: run one test tier N times and list every test that failed at least once (flaky).

A tier runs through its nox session (`nox -R` reuses the warm environment), each run writing a junit
report that `gates.engine.junit.TestReport` reads. A test that failed in some runs and passed in
others is flaky; one that failed in every run is broken; both are listed with their failure counts.
A run that crashed without a report is listed too, so nothing is hidden behind "no data".

`store` keeps each soak as `.gates/soak/<run id>.json` — the tier, every run (exit status,
seconds, counts) and every test that failed at least once — in the one stored shape,
`StoredSoak`, which `stored_soaks` reads back for `gates report`; `soak` itself only runs and
collects.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gates.engine.junit import TestReport
from gates.errors import GatesError, GitError
from gates.files import write_atomic
from gates.git.repository import Repository, TreeState
from gates.project import find_root
from gates.tiers import Tiers

# Where `gates soak` stores its soaks, relative to the project root (read by `gates report`).
SOAK_DIR = Path(".gates") / "soak"
MESSAGE_LIMIT = 1000  # characters kept of a failure's last message

# Runs one command and returns its exit status; injected by tests.
Runner = Callable[[Sequence[str]], int]


class SoakError(GatesError):
    """The soak cannot run as asked (unknown tier, fewer than one run)."""


def _run(argv: Sequence[str]) -> int:
    return subprocess.run(list(argv), check=False).returncode


def command_for(
    tier: str, junit: Path, extra: Sequence[str] = (), tiers: Tiers | None = None
) -> list[str]:
    """The command that runs `tier` once, through the nox session [tool.gates.tiers] names for
    it, and writes its junit report to `junit`. Posargs replace a session's default dirs, so the
    tier's dirs are named every time."""
    tiers = tiers or Tiers.load(find_root())
    soakable = [t for t in tiers.tested if t.session]
    found = next((t for t in soakable if t.name == tier), None)
    if found is None:
        known = ", ".join(t.name for t in soakable)
        raise SoakError(f"no tier {tier!r} to soak; known tiers: {known}")
    return [
        *["uv", "run", "nox", "-R", "-s", found.session, "--", *found.dirs],
        *[f"--junitxml={junit}", *extra],
    ]


@dataclass
class RunRecord:
    """One run: its exit status, duration and per-test outcomes (empty when it crashed)."""

    number: int
    exit_status: int
    seconds: float
    report: TestReport

    @property
    def crashed(self) -> bool:
        return self.exit_status != 0 and not self.report.outcomes


@dataclass
class SoakResult:
    tier: str
    runs: list[RunRecord] = field(default_factory=list)

    def failure_counts(self) -> Counter[str]:
        """How many runs each test failed or errored in (tests that never failed are absent)."""
        counts: Counter[str] = Counter()
        for run in self.runs:
            for test, outcome in run.report.outcomes.items():
                if outcome in {"failed", "error"}:
                    counts[test] += 1
        return counts

    def last_message(self, test: str) -> str:
        """The first line of the test's most recent failure message ('' when it had none)."""
        for run in reversed(self.runs):
            if run.report.outcomes.get(test) in {"failed", "error"}:
                message = run.report.messages.get(test, "").strip()
                return message.splitlines()[0] if message else ""
        return ""

    def runs_of(self, test: str) -> int:
        """In how many runs the test ran at all (a crash or deselection means fewer)."""
        return sum(1 for run in self.runs if test in run.report.outcomes)

    @property
    def failing(self) -> list[tuple[str, int, int]]:
        """(test, failures, runs) for every test that failed at least once, worst first."""
        counts = self.failure_counts()
        rows = [(test, n, self.runs_of(test)) for test, n in counts.items()]
        return sorted(rows, key=lambda row: (-row[1], row[0]))

    @property
    def crashed_runs(self) -> list[RunRecord]:
        return [run for run in self.runs if run.crashed]

    @property
    def ok(self) -> bool:
        return not self.failing and not self.crashed_runs

    def render(self) -> str:
        """A report for a person: per run, then every test that failed at least once."""
        lines = [f"soak of tier {self.tier}: {len(self.runs)} runs"]
        for run in self.runs:
            counts = run.report.counts
            summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no tests"
            status = "crashed, no report" if run.crashed else summary
            lines.append(
                f"  run {run.number}: exit {run.exit_status}, {run.seconds:.0f} s, {status}"
            )
        if self.ok:
            lines.append("no flaky tests: every test passed in every run")
            return "\n".join(lines)
        if self.failing:
            lines.append(f"{len(self.failing)} test(s) failed at least once (flaky):")
            for test, failures, runs in self.failing:
                verdict = "always" if failures == runs else "flaky"
                lines.append(f"  {failures}/{runs} failed ({verdict})  {test}")
                message = self.last_message(test)
                if message:
                    lines.append(f"      last failure: {message[:300]}")
        if self.crashed_runs:
            numbers = ", ".join(str(run.number) for run in self.crashed_runs)
            lines.append(f"run(s) {numbers} crashed before writing a report")
        return "\n".join(lines)


def soak(
    tier: str,
    runs: int,
    *,
    extra: Sequence[str] = (),
    runner: Runner | None = None,
    workdir: Path | None = None,
    on_run: Callable[[RunRecord], None] = lambda _run: None,
    tiers: Tiers | None = None,
) -> SoakResult:
    """Run `tier` `runs` times and collect every run's per-test outcomes."""
    run_command = runner or _run
    if runs < 1:
        raise SoakError(f"--runs must be at least 1, got {runs}")
    tiers = tiers or Tiers.load(find_root())
    command_for(tier, Path("check"), tiers=tiers)  # unknown tier: fail before the first run
    result = SoakResult(tier)
    with tempfile.TemporaryDirectory(prefix=f"soak-{tier}-", dir=workdir) as scratch:
        for number in range(1, runs + 1):
            junit = Path(scratch) / f"run-{number}.xml"
            started = time.monotonic()
            status = run_command(command_for(tier, junit, extra, tiers))
            record = RunRecord(number, status, time.monotonic() - started, TestReport.read(junit))
            result.runs.append(record)
            on_run(record)
    return result


@dataclass(frozen=True)
class SoakRun:
    """One run as stored: exit status, seconds, whether it crashed, its outcome counts."""

    number: int
    exit_status: int
    seconds: float
    crashed: bool
    counts: dict[str, int]


@dataclass(frozen=True)
class FailingTest:
    """A test that failed in at least one run of a soak."""

    test: str
    failures: int
    runs: int
    last_message: str

    @property
    def verdict(self) -> str:
        return "always" if self.failures >= self.runs else "flaky"


@dataclass(frozen=True)
class StoredSoak:
    """One soak as `.gates/soak/<run id>.json` holds it: what `store` writes and
    `stored_soaks` reads (the report shows it)."""

    run_id: str
    time: str
    tier: str
    commit: str
    dirty: bool
    pytest_args: list[str]
    runs: list[SoakRun]
    failing: list[FailingTest]

    @property
    def crashed(self) -> list[int]:
        return [run.number for run in self.runs if run.crashed]

    @property
    def ok(self) -> bool:
        return not self.failing and not self.crashed

    @classmethod
    def of(
        cls,
        result: SoakResult,
        *,
        run_id: str,
        started: datetime,
        state: TreeState | None = None,
        extra: Sequence[str] = (),
    ) -> StoredSoak:
        """What is stored of a soak: every run, and every test that failed at least once."""
        return cls(
            run_id=run_id,
            time=started.isoformat(timespec="seconds"),
            tier=result.tier,
            commit=state.commit if state else "",
            dirty=state.dirty if state else False,
            pytest_args=list(extra),
            runs=[
                SoakRun(
                    run.number,
                    run.exit_status,
                    round(run.seconds, 3),
                    run.crashed,
                    run.report.counts,
                )
                for run in result.runs
            ],
            failing=[
                FailingTest(test, failures, runs, result.last_message(test)[:MESSAGE_LIMIT])
                for test, failures, runs in result.failing
            ],
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoredSoak:
        """Read a stored soak; a missing or mistyped field raises KeyError, TypeError or
        ValueError."""
        runs = [
            SoakRun(
                number=int(run["number"]),
                exit_status=int(run["exit_status"]),
                seconds=float(run["seconds"]),
                crashed=bool(run.get("crashed", False)),
                counts={str(k): int(v) for k, v in dict(run.get("counts") or {}).items()},
            )
            for run in data["runs"]
        ]
        failing = [
            FailingTest(
                test=str(item["test"]),
                failures=int(item["failures"]),
                runs=int(item["runs"]),
                last_message=str(item.get("last_message", "")),
            )
            for item in data.get("failing") or []
        ]
        return cls(
            run_id=str(data["run_id"]),
            time=str(data.get("time", "")),
            tier=str(data["tier"]),
            commit=str(data.get("commit", "")),
            dirty=bool(data.get("dirty", False)),
            pytest_args=[str(a) for a in data.get("pytest_args") or []],
            runs=runs,
            failing=failing,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "time": self.time,
            "commit": self.commit,
            "dirty": self.dirty,
            "pytest_args": self.pytest_args,
            "tier": self.tier,
            "runs": [
                {
                    "number": run.number,
                    "exit_status": run.exit_status,
                    "seconds": run.seconds,
                    "crashed": run.crashed,
                    "counts": run.counts,
                }
                for run in self.runs
            ],
            "failing": [
                {
                    "test": test.test,
                    "failures": test.failures,
                    "runs": test.runs,
                    "last_message": test.last_message,
                }
                for test in self.failing
            ],
            "crashed_runs": self.crashed,
            "ok": self.ok,
        }


def store(
    result: SoakResult,
    directory: Path,
    *,
    run_id: str,
    started: datetime,
    state: TreeState | None = None,
    extra: Sequence[str] = (),
) -> Path:
    """Write the soak to `directory/<run_id>.json` atomically (a reader never sees half of it)."""
    stored = StoredSoak.of(result, run_id=run_id, started=started, state=state, extra=extra)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{run_id}.json"
    text = json.dumps(stored.to_dict(), indent=2, sort_keys=True) + "\n"
    write_atomic(target, lambda handle: handle.write(text.encode("utf-8")), durable=True)
    return target


def stored_soaks(directory: Path, limit: int = 10) -> list[StoredSoak]:
    """The latest `limit` stored soaks, newest first; unreadable or foreign files are skipped."""
    soaks = []
    for path in sorted(directory.glob("*.json")):
        try:
            soaks.append(StoredSoak.from_dict(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    soaks.sort(key=lambda s: s.run_id)
    return list(reversed(soaks[-limit:]))


def tree_state(root: Path) -> TreeState | None:
    try:
        return Repository(root).state()
    except GitError:
        return None
