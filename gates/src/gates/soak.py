"""Soak: run one test tier, or every tier, N times and list every test that failed at least once.

A tier runs through its nox session (`nox -R` reuses the warm environment), each run writing a junit
report that `gates.engine.junit.TestReport` reads. `--tier all` soaks every tier of
[tool.gates.tiers] that has test dirs and a session: one round runs each of them once, in the
table's order, and N rounds are N runs of the whole suite.

Outcomes are keyed by tree: before each run the work tree's state (HEAD, and the hash of the diff
when dirty) is taken, so a soak across an edit does not call a fixed test flaky. A test that passed
and failed on the same tree is flaky; one that failed every run it ran in is broken ("always");
one that failed on one tree and passed on another changed with the tree ("by tree"). A run that
crashed without a report is listed too, so nothing is hidden behind "no data".

What never failed is bounded by the rule of three: 0 failures in n independent runs put the failure
rate below 3/n with 95 % confidence (the exact bound, 1 - 0.05^(1/n), is a little below it). It is
given per test (n = the runs it passed) and for the suite (n = the rounds, a round failing when any
of its runs had a failing test or crashed).

`store` keeps each soak as `.gates/soak/<run id>.json` — the tiers, every run (exit status,
seconds, counts, tier, tree, round), every test that failed at least once and the rule-of-three
lines — in the one stored shape, `StoredSoak`, which `stored_soaks` reads back for `gates report`;
`soak` itself only runs and collects.
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
from gates.tiers import Tier, Tiers

# Where `gates soak` stores its soaks, relative to the project root (read by `gates report`).
SOAK_DIR = Path(".gates") / "soak"
MESSAGE_LIMIT = 1000  # characters kept of a failure's last message
ALL = "all"  # `gates soak --tier all`: every tier with test dirs and a session
FAILED = frozenset({"failed", "error"})

# Runs one command and returns its exit status; injected by tests.
Runner = Callable[[Sequence[str]], int]
# The key of the work tree as it is now (see `tree_key`); injected by tests.
TreeKey = Callable[[], str]


class SoakError(GatesError):
    """The soak cannot run as asked (unknown tier, fewer than one run)."""


def _run(argv: Sequence[str], cwd: Path | None = None) -> int:
    return subprocess.run(list(argv), cwd=cwd, check=False).returncode


def tiers_to_soak(tier: str, tiers: Tiers) -> list[Tier]:
    """The tiers `tier` names: one, or with `all` every tier that has test dirs and a session."""
    soakable = [t for t in tiers.tested if t.session]
    if tier == ALL:
        if not soakable:
            raise SoakError("no tier to soak: [tool.gates.tiers] has none with dirs and a session")
        return soakable
    found = next((t for t in soakable if t.name == tier), None)
    if found is None:
        known = ", ".join(t.name for t in soakable)
        raise SoakError(f"no tier {tier!r} to soak; known tiers: {known} (or {ALL}: every one)")
    return [found]


def command_for(
    tier: str, junit: Path, extra: Sequence[str] = (), tiers: Tiers | None = None
) -> list[str]:
    """The command that runs `tier` once, through the nox session [tool.gates.tiers] names for
    it, and writes its junit report to `junit`. Posargs replace a session's default dirs, so the
    tier's dirs are named every time."""
    tiers = tiers or Tiers.load(find_root())
    if tier == ALL:
        raise SoakError(f"one command runs one tier, not {ALL!r}")
    [found] = tiers_to_soak(tier, tiers)
    return _command(found, junit, extra)


def _command(tier: Tier, junit: Path, extra: Sequence[str]) -> list[str]:
    return [
        *["uv", "run", "nox", "-R", "-s", tier.session, "--", *tier.dirs],
        *[f"--junitxml={junit}", *extra],
    ]


def tree_key(root: Path) -> str:
    """The work tree as a key: HEAD's short hash, plus `+` and the diff's hash when dirty;
    "" outside a git repository (every run then counts as one tree)."""
    state = tree_state(root)
    if state is None or not state.commit:
        return ""
    return state.commit[:12] + (f"+{state.diff_hash}" if state.dirty else "")


def rule_of_three(runs: int) -> float:
    """The 95 % upper bound on a failure rate after 0 failures in `runs` runs: 3/n (at most 1)."""
    return min(1.0, 3 / runs) if runs > 0 else 1.0


def percent(rate: float) -> str:
    return f"{rate * 100:.3g} %"


@dataclass
class RunRecord:
    """One run: its exit status, duration and per-test outcomes (empty when it crashed)."""

    number: int
    exit_status: int
    seconds: float
    report: TestReport
    tier: str = ""
    tree: str = ""  # tree_key() before the run
    round: int = 0  # 1…N; each round runs every soaked tier once

    @property
    def crashed(self) -> bool:
        return self.exit_status != 0 and not self.report.outcomes

    @property
    def failed(self) -> bool:
        """Whether the run had a failing test or crashed (what makes its round fail)."""
        return self.crashed or any(o in FAILED for o in self.report.outcomes.values())


@dataclass
class SoakResult:
    tier: str  # the tier soaked, or "all"
    runs: list[RunRecord] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)  # the tiers each round ran, in order

    def failure_counts(self) -> Counter[str]:
        """How many runs each test failed or errored in (tests that never failed are absent)."""
        counts: Counter[str] = Counter()
        for run in self.runs:
            for test, outcome in run.report.outcomes.items():
                if outcome in FAILED:
                    counts[test] += 1
        return counts

    def by_tree(self, test: str) -> dict[str, tuple[int, int]]:
        """(passes, failures) of the test on each tree it ran on, in the order of the trees."""
        tally: dict[str, tuple[int, int]] = {}
        for run in self.runs:
            outcome = run.report.outcomes.get(test)
            if outcome == "passed" or outcome in FAILED:
                passes, failures = tally.get(run.tree, (0, 0))
                failed = outcome in FAILED
                tally[run.tree] = (passes + (not failed), failures + failed)
        return tally

    def flaky_trees(self, test: str) -> list[str]:
        """The trees on which the test both passed and failed."""
        return [tree for tree, (p, f) in self.by_tree(test).items() if p and f]

    def verdict(self, test: str) -> str:
        """flaky: passed and failed on one tree; always: failed every run it ran in; by tree:
        failed on some trees and passed on others, never both on one."""
        tally = self.by_tree(test).values()
        if any(p and f for p, f in tally):
            return "flaky"
        if not any(p for p, _ in tally):
            return "always"
        return "by tree"

    def last_message(self, test: str) -> str:
        """The first line of the test's most recent failure message ('' when it had none)."""
        for run in reversed(self.runs):
            if run.report.outcomes.get(test) in FAILED:
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

    @property
    def trees(self) -> list[str]:
        return list(dict.fromkeys(run.tree for run in self.runs))

    @property
    def rounds(self) -> int:
        return len({run.round or run.number for run in self.runs})

    @property
    def failed_rounds(self) -> list[int]:
        """The rounds in which some run had a failing test or crashed (a run recorded without
        its round is a round of its own)."""
        return sorted({run.round or run.number for run in self.runs if run.failed})

    def never_failed(self) -> dict[str, int]:
        """Every test that never failed, with the runs it passed in (a skip is no trial)."""
        failed = self.failure_counts()
        passes: Counter[str] = Counter()
        for run in self.runs:
            for test, outcome in run.report.outcomes.items():
                if outcome == "passed" and test not in failed:
                    passes[test] += 1
        return dict(passes)

    def confidence(self) -> list[str]:
        """The rule of three, for the suite and per test (see the module's docstring)."""
        rounds, failed = self.rounds, len(self.failed_rounds)
        what = "the suite (every tier once)" if self.tier == ALL else f"tier {self.tier}"
        if failed:
            suite = (
                f"{what}: failed in {failed} of {rounds} rounds ({percent(failed / rounds)});"
                " the rule of three bounds only a clean record"
            )
        else:
            suite = (
                f"{what}: 0 failures in {rounds} rounds, so its failure rate is below "
                f"3/{rounds} = {percent(rule_of_three(rounds))} (95 % confidence)"
            )
        lines = [suite]
        clean = self.never_failed()
        if clean:
            fewest, most = min(clean.values()), max(clean.values())
            n = f"n = {fewest}" if fewest == most else f"n = {fewest} to {most}"
            lines.append(
                f"each of the {len(clean)} tests that never failed: failure rate below 3/n, n its "
                f"passing runs ({n}: below {percent(rule_of_three(fewest))} at worst)"
            )
        return lines

    def render(self) -> str:
        """A report for a person: per run, every test that failed at least once, the bounds."""
        lines = [self._title()]
        for run in self.runs:
            lines.append(self._run_line(run))
        if len(self.trees) > 1:
            lines.append(
                f"the tree changed during the soak: {len(self.trees)} trees; outcomes are "
                "compared per tree"
            )
        if self.ok:
            lines.append("no flaky tests: every test passed in every run")
        if self.failing:
            lines.append(f"{len(self.failing)} test(s) failed at least once:")
            for test, failures, runs in self.failing:
                lines.extend(self._failing_lines(test, failures, runs))
        if self.crashed_runs:
            numbers = ", ".join(str(run.number) for run in self.crashed_runs)
            lines.append(f"run(s) {numbers} crashed before writing a report")
        lines.append("rule of three (95 % confidence):")
        lines.extend(f"  {line}" for line in self.confidence())
        return "\n".join(lines)

    def _title(self) -> str:
        if self.tier != ALL:
            return f"soak of tier {self.tier}: {len(self.runs)} runs"
        return (
            f"soak of all tiers ({', '.join(self.tiers)}): {self.rounds} rounds, "
            f"{len(self.runs)} runs"
        )

    def _run_line(self, run: RunRecord) -> str:
        counts = run.report.counts
        summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no tests"
        status = "crashed, no report" if run.crashed else summary
        where = f" (round {run.round}, {run.tier})" if self.tier == ALL else ""
        return f"  run {run.number}{where}: exit {run.exit_status}, {run.seconds:.0f} s, {status}"

    def _failing_lines(self, test: str, failures: int, runs: int) -> list[str]:
        verdict = self.verdict(test)
        trees = self.flaky_trees(test) if verdict == "flaky" else []
        on = f"  (on tree {', '.join(t or 'outside git' for t in trees)})" if trees else ""
        lines = [f"  {failures}/{runs} failed ({verdict})  {test}{on}"]
        message = self.last_message(test)
        if message:
            lines.append(f"      last failure: {message[:300]}")
        return lines


def soak(
    tier: str,
    runs: int,
    *,
    extra: Sequence[str] = (),
    runner: Runner | None = None,
    workdir: Path | None = None,
    on_run: Callable[[RunRecord], None] = lambda _run: None,
    tiers: Tiers | None = None,
    tree: TreeKey = lambda: "",
    root: Path | None = None,
) -> SoakResult:
    """Run `tier` (or every tier, `all`) `runs` times and collect every run's per-test outcomes,
    each with the tree it ran on. The commands run in `root` (default: the current directory)."""
    run_command = runner or (lambda argv: _run(argv, cwd=root))
    if runs < 1:
        raise SoakError(f"--runs must be at least 1, got {runs}")
    tiers = tiers or Tiers.load(find_root())
    chosen = tiers_to_soak(tier, tiers)  # an unknown tier fails before the first run
    result = SoakResult(tier, tiers=[t.name for t in chosen])
    with tempfile.TemporaryDirectory(prefix=f"soak-{tier}-", dir=workdir) as scratch:
        for round_ in range(1, runs + 1):
            for one in chosen:
                number = len(result.runs) + 1
                junit = Path(scratch) / f"run-{number}-{one.name}.xml"
                key = tree()
                started = time.monotonic()
                status = run_command(_command(one, junit, extra))
                seconds = time.monotonic() - started
                report = TestReport.read(junit)
                record = RunRecord(number, status, seconds, report, one.name, key, round_)
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
    tier: str = ""
    tree: str = ""
    round: int = 0


@dataclass(frozen=True)
class FailingTest:
    """A test that failed in at least one run of a soak."""

    test: str
    failures: int
    runs: int
    last_message: str
    kind: str = ""  # flaky, always or by tree, judged per tree; "" in soaks stored before that
    trees: tuple[str, ...] = ()  # where it was flaky: the trees it passed and failed on

    @property
    def verdict(self) -> str:
        if self.kind:
            return self.kind
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
    tiers: list[str] = field(default_factory=list)  # the tiers each round ran
    confidence: list[str] = field(default_factory=list)  # the rule-of-three lines

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
                    run.tier,
                    run.tree,
                    run.round,
                )
                for run in result.runs
            ],
            failing=[
                FailingTest(
                    test,
                    failures,
                    runs,
                    result.last_message(test)[:MESSAGE_LIMIT],
                    result.verdict(test),
                    tuple(result.flaky_trees(test)),
                )
                for test, failures, runs in result.failing
            ],
            tiers=list(result.tiers),
            confidence=result.confidence(),
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
                tier=str(run.get("tier", "")),
                tree=str(run.get("tree", "")),
                round=int(run.get("round", 0)),
            )
            for run in data["runs"]
        ]
        failing = [
            FailingTest(
                test=str(item["test"]),
                failures=int(item["failures"]),
                runs=int(item["runs"]),
                last_message=str(item.get("last_message", "")),
                kind=str(item.get("verdict", "")),
                trees=tuple(str(t) for t in item.get("trees") or []),
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
            tiers=[str(t) for t in data.get("tiers") or []],
            confidence=[str(line) for line in data.get("confidence") or []],
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
                    "tier": run.tier,
                    "tree": run.tree,
                    "round": run.round,
                }
                for run in self.runs
            ],
            "failing": [
                {
                    "test": test.test,
                    "failures": test.failures,
                    "runs": test.runs,
                    "last_message": test.last_message,
                    "verdict": test.verdict,
                    "trees": list(test.trees),
                }
                for test in self.failing
            ],
            "tiers": self.tiers,
            "confidence": self.confidence,
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
