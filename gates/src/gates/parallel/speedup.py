"""What limits running the tests in parallel, measured from a serial and an xdist run.

Both runs are recorded by the `gates.pytest_plugins.timing` plugin, so both walls are measured the
same way: from the controller's session start (before collection, before xdist starts workers) to
its session finish. From the serial run alone this module derives what the suite's own test
durations allow (a longest-job / Amdahl bound that charges the measured worker start-up); against
it, it judges the measured speedup and names what held it back:

- inflation: tests take longer under xdist than serially (a lock, a shared resource, or more
  busy processes than cores);
- per-worker setup: each worker's first test is longer than serially (session-scoped fixtures
  are set up once per worker), or the workers take much longer to reach their first test than
  the serial run takes to reach its own (start-up, e.g. heavy imports or conftest work);
- one long test: the longest test is at least a worker's share, so it bounds the speedup;
- imbalance: one worker still runs while the others have finished;
- per-test overhead: more time between tests on the workers than serially.

Everything here is pure: `read_timing` is the only I/O.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from gates.engine.history import Outcome
from gates.errors import GatesError

T = TypeVar("T")

# -- the constants of the judgement -----------------------------------------------------------

EFFICIENCY = 0.70
"""`min_speedup = "auto"` passes when the measured speedup is at least this share of the
bound for the worker count the xdist run used."""

MIN_GAIN = 1.10
"""A worker count is worth recommending only when its bound beats serial by 10 %; when none
does, the advice is to run serially and the auto criterion passes."""

RECOMMEND_SHARE = 0.95
"""The recommendation is the fewest workers whose bound is within 5 % of the best bound."""

SIGNIFICANT = 0.10
"""A cause is named only when it costs at least this share of the xdist run's wall time."""

INFLATION_RATIO = 1.25
"""Tests count as inflated when, summed, they take 25 % longer under xdist than serially."""

STARTUP_FACTOR = 3.0
STARTUP_FLOOR_S = 1.0
STARTUP_DOMINANT = 0.25
"""Worker start-up is a cause when it is ≥ 3x the serial time to the first test, ≥ 1 s more
than it, and that excess is ≥ 25 % of the xdist wall time (starting a worker process costs
0.3 to 1 s anyway, so smaller differences are the price of xdist, not a fault)."""

OVERHEAD_FACTOR = 2.0
"""Per-test overhead is a cause when the time between tests is ≥ 2x the serial one per test."""

NAMED = 5
"""How many tests a line names at most."""

SERIALLY = 0
"""`Advice.recommended` when no worker count is worth it: run without xdist."""


class TimingError(GatesError):
    """A timing report is missing or malformed."""


# -- the recorded runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class TestTiming:
    """One test of one run: its worker, setup start and teardown stop (epoch s), the summed
    setup + call + teardown duration (s) and its outcome."""

    __test__ = False  # a domain name, not a pytest test class

    nodeid: str
    worker: str
    start: float
    stop: float
    duration: float
    outcome: str = "passed"


@dataclass(frozen=True)
class SuiteTiming:
    """One recorded run. Guarantees nothing about order: every derived figure sorts itself."""

    session_start: float
    session_finish: float
    workers: int  # 0 = serial
    tests: tuple[TestTiming, ...]
    # CPU seconds the whole machine and this session's processes used meanwhile, and the
    # machine's CPUs; None when the report has no such figures (an older one, not Linux).
    machine_cpu_s: float | None = None
    session_cpu_s: float | None = None
    cores: int | None = None

    def others_share(self) -> float | None:
        """The share of the machine's CPU capacity other work took during the session."""
        if self.machine_cpu_s is None or self.session_cpu_s is None or not self.cores:
            return None
        if self.wall <= 0:
            return None
        others = max(0.0, self.machine_cpu_s - self.session_cpu_s)
        return others / (self.wall * self.cores)

    @property
    def wall(self) -> float:
        """Session start to session finish in the controller, s."""
        return self.session_finish - self.session_start

    def by_worker(self) -> dict[str, list[TestTiming]]:
        """Each worker's tests in the order they started."""
        groups: dict[str, list[TestTiming]] = {}
        for test in sorted(self.tests, key=lambda t: t.start):
            groups.setdefault(test.worker, []).append(test)
        return groups

    def worker_startups(self) -> dict[str, float]:
        """Per worker: session start → the start of its first test's setup, s. Serially this
        is collection; under xdist it also holds starting the worker and its own collection."""
        return {w: ts[0].start - self.session_start for w, ts in self.by_worker().items()}

    @property
    def startup(self) -> float:
        """The mean of `worker_startups` (a worker that starts late just gets fewer tests)."""
        return statistics.fmean(self.worker_startups().values())

    @property
    def tail(self) -> float:
        """The last teardown's stop → session finish, s (shutting workers down, reporting)."""
        return self.session_finish - max(t.stop for t in self.tests)

    @property
    def test_seconds(self) -> float:
        """The sum of every test's setup + call + teardown, s."""
        return sum(t.duration for t in self.tests)

    @property
    def between_tests(self) -> float:
        """Per worker, the time from its first start to its last stop not inside a test,
        summed over the workers, s: pytest's own per-test work (hooks, reports)."""
        total = 0.0
        for tests in self.by_worker().values():
            span = max(t.stop for t in tests) - tests[0].start
            total += max(0.0, span - sum(t.duration for t in tests))
        return total

    def longest(self) -> TestTiming:
        return max(self.tests, key=lambda t: t.duration)

    def first(self) -> TestTiming:
        return min(self.tests, key=lambda t: t.start)


def _optional(document: dict[str, Any], key: str, kind: Callable[[Any], T]) -> T | None:
    value = document.get(key)
    return None if value is None else kind(value)


def read_timing(path: Path) -> SuiteTiming:
    """Read a report of the `gates.pytest_plugins.timing` plugin; a missing or malformed one raises
    TimingError naming the file and what was wrong."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise TimingError(f"cannot read the timing report {path}: {error.strerror}") from error
    except ValueError as error:
        raise TimingError(f"the timing report {path} is not JSON: {error}") from error
    try:
        tests = tuple(
            TestTiming(
                nodeid=str(test["nodeid"]),
                worker=str(test["worker"]),
                start=float(test["start"]),
                stop=float(test["stop"]),
                duration=float(test["duration"]),
                outcome=str(test.get("outcome", "passed")),
            )
            for test in document["tests"]
        )
        return SuiteTiming(
            session_start=float(document["session_start"]),
            session_finish=float(document["session_finish"]),
            workers=int(document["workers"]),
            tests=tests,
            machine_cpu_s=_optional(document, "machine_cpu_s", float),
            session_cpu_s=_optional(document, "session_cpu_s", float),
            cores=_optional(document, "cores", int),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise TimingError(
            f"the timing report {path} lacks or mangles {error} "
            "(expected session_start, session_finish, workers and tests[] of nodeid, worker, "
            "start, stop, duration)"
        ) from error


# -- the advice -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """One thing that held the xdist run back: a key for the history, the seconds of xdist
    wall time it cost (an estimate), a one-line summary and the lines that detail it."""

    key: Literal["inflation", "worker_setup", "startup", "imbalance", "overhead"]
    lost_s: float
    summary: str
    lines: tuple[str, ...] = ()
    per_worker_s: float = 0.0  # worker_setup and startup: what each worker pays, s


@dataclass(frozen=True)
class Advice:
    """The verdict: `summary` is one line, `lines` what a person reads, `metrics` JSON-able."""

    outcome: Outcome
    summary: str
    lines: list[str]
    metrics: dict[str, object] = field(default_factory=dict)
    recommended: int = SERIALLY  # workers to use; SERIALLY (0) = without xdist


@dataclass(frozen=True)
class _Costs:
    """The parts of a wall time the bound adds up, s."""

    startup: float
    tail: float


def _bound(serial: SuiteTiming, workers: int, cores: int, costs: _Costs) -> tuple[float, bool]:
    """The best speedup `workers` workers can reach on `cores` cores, and whether the longest
    test (rather than the share of the test time) limits it.

    wall(N) = start-up + max(longest test, (test time + time between tests) / min(N, cores))
              + time after the last test
    speedup(N) = serial wall / wall(N). With the serial start-up and tail, wall(1) is the
    serial wall exactly, so the bound for 1 worker is 1.0."""
    share = (serial.test_seconds + serial.between_tests) / max(1, min(workers, cores))
    longest = serial.longest().duration
    wall = costs.startup + max(longest, share) + costs.tail
    return (serial.wall / wall if wall > 0 else 0.0), longest >= share


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.1f} s"


def _names(tests: Iterable[str]) -> str:
    listed = list(tests)
    more = f" and {len(listed) - NAMED} more" if len(listed) > NAMED else ""
    return ", ".join(listed[:NAMED]) + more


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _inflation_causes(serial: SuiteTiming, parallel: SuiteTiming, cores: int) -> list[Cause]:
    """Tests that took longer under xdist: the first test on each worker (per-worker setup)
    apart from the rest (a lock, a shared resource, or CPU contention)."""
    before = {t.nodeid: t for t in serial.tests}
    after = {t.nodeid: t for t in parallel.tests}
    matched = [n for n in after if n in before]
    # The serial run paid a session fixture in its first test; each worker pays it in its own
    # first test. Counting both sides' first tests together leaves (N - 1) x the fixture.
    firsts = {tests[0].nodeid for tests in parallel.by_worker().values()} | {serial.first().nodeid}
    spread = max(1, min(parallel.workers or 1, cores))
    causes: list[Cause] = []
    rest = [n for n in matched if n not in firsts]
    rest_serial = sum(before[n].duration for n in rest)
    rest_parallel = sum(after[n].duration for n in rest)
    extra = rest_parallel - rest_serial
    # First tests slow down with the rest too (contention); only what is beyond is setup.
    ratio = rest_parallel / rest_serial if rest_serial > 0 else 1.0
    setup_extra = sum(
        after[n].duration - ratio * before[n].duration for n in matched if n in firsts
    )
    if setup_extra > 0 and parallel.workers >= 2:
        per_worker = setup_extra / (parallel.workers - 1)
        worker_firsts = [
            f"{w}: {tests[0].nodeid} {_seconds(before[tests[0].nodeid].duration)} serially, "
            f"{_seconds(tests[0].duration)} as its first test"
            for w, tests in sorted(parallel.by_worker().items())
            if tests[0].nodeid in before
        ]
        causes.append(
            Cause(
                "worker_setup",
                setup_extra / spread,
                f"per-worker start-up: each worker's first test takes {_seconds(per_worker)} "
                "longer than serially (session-scoped fixtures are set up once per worker)",
                (
                    "first test on each worker against the same test serially: "
                    + "; ".join(worker_firsts),
                    "make the session fixture cheaper, share its result across workers "
                    "(e.g. a file lock and a cache), or scope it narrower",
                ),
                per_worker,
            )
        )
    if rest and rest_parallel >= INFLATION_RATIO * rest_serial and extra > 0:
        worst = sorted(rest, key=lambda n: after[n].duration - before[n].duration, reverse=True)
        ratios = [(after[n].duration + 1e-3) / (before[n].duration + 1e-3) for n in rest]
        broad = statistics.median(ratios) >= INFLATION_RATIO
        inflated = [n for n in worst if after[n].duration >= INFLATION_RATIO * before[n].duration]
        detail = [
            f"{n}: {_seconds(before[n].duration)} → {_seconds(after[n].duration)}"
            for n in worst[:NAMED]
        ]
        if broad:
            summary = (
                f"tests run {ratio:.1f}x slower under xdist across the board "
                f"({_seconds(rest_serial)} → {_seconds(rest_parallel)} summed): CPU "
                f"contention ({parallel.workers} workers and the controller on {cores} cores) "
                "or a resource every test shares"
            )
            advice = "use fewer workers than cores, or find the resource every test waits on"
        else:
            summary = (
                f"{_plural(len(inflated), 'test')} wait on a lock or shared resource under "
                f"xdist ({_seconds(extra)} more summed), most: {_names(worst[:3])}"
            )
            advice = (
                "these tests contend for something one worker holds at a time (a file, a "
                "port, a database, a lock): give each worker its own (worker_id), or group "
                "them on one worker (--dist loadgroup with xdist_group)"
            )
        causes.append(
            Cause(
                "inflation",
                extra / spread,
                summary,
                ("inflated most: " + "; ".join(detail), advice),
            )
        )
    return causes


def _imbalance(parallel: SuiteTiming) -> Cause | None:
    """The last worker's finish against the mean finish: time the others sat idle."""
    groups = parallel.by_worker()
    if len(groups) < 2:
        return None
    finishes = {w: max(t.stop for t in ts) for w, ts in groups.items()}
    mean = statistics.fmean(finishes.values())
    last = max(finishes, key=lambda w: finishes[w])
    # No schedule finishes before the longest test does: that part is the bound, not imbalance.
    floor = parallel.session_start + parallel.startup + parallel.longest().duration
    lost = finishes[last] - max(mean, floor)
    if lost <= 0:
        return None
    # What the last worker ran while the average worker was already done.
    late = [t for t in groups[last] if t.stop > mean]
    longest = max(late, key=lambda t: t.duration)
    return Cause(
        "imbalance",
        lost,
        f"imbalance: {last} finishes {_seconds(finishes[last] - mean)} after the average "
        f"worker, running {longest.nodeid} ({_seconds(longest.duration)}) at the end",
        (
            "worker finish (after session start): "
            + ", ".join(
                f"{w} {_seconds(finishes[w] - parallel.session_start)}" for w in sorted(finishes)
            ),
            "start the long tests first, split them, or let idle workers take queued tests "
            "(--dist worksteal)",
        ),
    )


def _overhead(serial: SuiteTiming, parallel: SuiteTiming, cores: int) -> Cause | None:
    gap_serial = serial.between_tests / len(serial.tests)
    gap_parallel = parallel.between_tests / len(parallel.tests)
    if gap_parallel < OVERHEAD_FACTOR * gap_serial or gap_parallel <= gap_serial:
        return None
    spread = max(1, min(parallel.workers or 1, cores))
    return Cause(
        "overhead",
        (parallel.between_tests - serial.between_tests) / spread,
        f"per-test overhead: {_seconds(gap_parallel)} between tests on a worker against "
        f"{_seconds(gap_serial)} serially",
        (
            "each test's reports travel to the controller; with tests this short that costs as "
            "much as the tests: run serially or make the tests fewer and larger",
        ),
    )


def advise(
    serial: SuiteTiming,
    parallel: SuiteTiming,
    *,
    cores: int,
    min_speedup: float | Literal["auto"],
) -> Advice:
    """Judge the xdist run against what the serial run's durations allow, and say why.

    Guarantees: never raises on the data of two finished runs (tests present in only one run
    are reported and left out of the per-test comparison; an empty run fails with the reason);
    a numeric `min_speedup` passes iff measured speedup ≥ it; "auto" passes iff the measured
    speedup is ≥ EFFICIENCY x the bound for the workers used, or no worker count beats serial
    by MIN_GAIN — unless the workers' start-up is the cause (that fails, naming it)."""
    if not serial.tests or not parallel.tests:
        empty = "serial" if not serial.tests else "xdist"
        return Advice("failed", f"the {empty} run recorded no test: nothing to compare", [])
    cores = max(1, cores)
    used = max(1, parallel.workers)
    serial_costs = _Costs(serial.startup, serial.tail)
    parallel_costs = _Costs(parallel.startup, parallel.tail)

    # One worker means running serially (no xdist start-up); more mean xdist's measured costs.
    counts = sorted({*range(1, cores + 1), used})
    bounds = {
        n: _bound(serial, n, cores, serial_costs if n == 1 else parallel_costs)[0] for n in counts
    }
    best = max(bounds[n] for n in counts if n <= cores)
    worth = [n for n in counts if n <= cores and bounds[n] >= MIN_GAIN]
    recommended = (
        min(n for n in worth if bounds[n] >= RECOMMEND_SHARE * best) if worth else SERIALLY
    )
    allowed, by_longest = _bound(serial, used, cores, parallel_costs)
    measured = serial.wall / parallel.wall if parallel.wall > 0 else 0.0
    efficiency = measured / allowed if allowed > 0 else 0.0
    longest = serial.longest()

    # Causes that cost the test phase (the bound assumed none of them).
    causes = [
        *_inflation_causes(serial, parallel, cores),
        *(c for c in (_imbalance(parallel), _overhead(serial, parallel, cores)) if c),
    ]
    causes = [c for c in causes if c.lost_s >= SIGNIFICANT * parallel.wall]
    excess = parallel.startup - serial.startup
    if excess > 0:
        startups = parallel.worker_startups()
        causes.append(
            Cause(
                "startup",
                excess,
                f"per-worker start-up: workers take {_seconds(parallel.startup)} to reach "
                f"their first test against {_seconds(serial.startup)} serially",
                (
                    "time from session start to each worker's first test: "
                    + ", ".join(f"{w} {_seconds(s)}" for w, s in sorted(startups.items())),
                    "each worker imports and collects on its own: look for slow imports, "
                    "conftest.py work at import or in pytest_configure, and "
                    "session-scoped autouse fixtures",
                ),
                excess,
            )
        )
    # What every worker pays before its share of the tests fails the gate on its own, when it
    # dominates the xdist run and the suite would gain without it: the bound counts worker
    # start-up as a given and spreads a session fixture over the workers, so a measured
    # speedup near the bound does not clear it.
    faults = []
    for cause in causes:
        healthy = _healthy_bound(cause, serial, parallel, cores, used, parallel_costs)
        if healthy is not None:
            faults.append(
                replace(cause, summary=f"{cause.summary}; without it {healthy:.2f}x is possible")
            )
    others = sorted(
        (c for c in causes if c.key not in {f.key for f in faults} and c.key != "startup"),
        key=lambda c: c.lost_s,
        reverse=True,
    )
    causes = [*sorted(faults, key=lambda c: c.lost_s, reverse=True), *others]
    per_worker_fault = bool(faults)

    lines = _breakdown(serial, parallel, cores, bounds, longest, used, by_longest)
    lines.append(
        f"measured: {measured:.2f}x with {used} workers (serial wall / xdist wall) = "
        f"{efficiency:.0%} of the {allowed:.2f}x bound"
    )
    lines.append(_recommendation(recommended, bounds, cores))
    for cause in causes:
        lines.append(f"cause: {cause.summary}")
        lines.extend(f"  {line}" for line in cause.lines)
    lines.extend(_unmatched(serial, parallel))

    head = f"speedup {measured:.2f}x with {used} workers"
    limit = (
        f"; the longest test {longest.nodeid} ({_seconds(longest.duration)}) bounds it"
        if by_longest
        else ""
    )
    if min_speedup == "auto":
        required: float | None = None
        if per_worker_fault:
            outcome: Outcome = "failed"
            summary = f"{head}: {causes[0].summary}"
        elif recommended == SERIALLY:
            outcome = "passed"
            parallel_counts = [n for n in counts if 2 <= n <= cores] or [used]
            top = max(parallel_counts, key=lambda n: bounds[n])
            summary = (
                f"run serially: no worker count beats the serial run by {MIN_GAIN - 1:.0%} "
                f"(bound at best {bounds[top]:.2f}x with {top} workers; measured "
                f"{measured:.2f}x with {used}){limit}"
            )
        else:
            required = round(EFFICIENCY * allowed, 2)
            outcome = "passed" if measured >= EFFICIENCY * allowed else "failed"
            summary = f"{head}, {efficiency:.0%} of the {allowed:.2f}x the suite allows"
            if outcome == "failed":
                summary += f" (need {EFFICIENCY:.0%}): " + (
                    causes[0].summary if causes else "no single cause stands out"
                )
            else:
                summary += limit
                if recommended != used:
                    summary += f"; recommended -n {recommended}"
    else:
        required = float(min_speedup)
        outcome = "passed" if measured >= required else "failed"
        summary = f"{head} (need {required:g}x)"
        if outcome == "failed":
            summary += ": " + (
                causes[0].summary
                if causes
                else f"the suite allows at most {best:.2f}x on {cores} cores"
            )
    metrics: dict[str, object] = {
        "cores": cores,
        "workers": used,
        "serial_s": round(serial.wall, 3),
        "parallel_s": round(parallel.wall, 3),
        "speedup": round(measured, 3),
        "bound": round(allowed, 3),
        "bounds": {str(n): round(b, 3) for n, b in bounds.items()},
        "efficiency": round(efficiency, 3),
        "criterion": "auto" if min_speedup == "auto" else "fixed",
        "required": required,
        "recommended_workers": recommended,
        "startup_serial_s": round(serial.startup, 3),
        "startup_parallel_s": round(parallel.startup, 3),
        "tail_serial_s": round(serial.tail, 3),
        "tail_parallel_s": round(parallel.tail, 3),
        "tests": len(serial.tests),
        "test_serial_s": round(serial.test_seconds, 3),
        "test_parallel_s": round(parallel.test_seconds, 3),
        "mean_test_s": round(serial.test_seconds / len(serial.tests), 6),
        "longest_test": longest.nodeid,
        "longest_test_s": round(longest.duration, 3),
        "causes": {c.key: round(c.lost_s, 3) for c in causes},
        "only_serial": len(_only(serial, parallel)),
        "only_parallel": len(_only(parallel, serial)),
    }
    return Advice(outcome, summary, lines, metrics, recommended)


def _healthy_bound(
    cause: Cause,
    serial: SuiteTiming,
    parallel: SuiteTiming,
    cores: int,
    used: int,
    costs: _Costs,
) -> float | None:
    """The bound without a per-worker cost when that cost fails the gate whatever the
    efficiency, else None. It fails the gate when it is ≥ STARTUP_FLOOR_S and ≥
    STARTUP_DOMINANT of the xdist wall, start-up also ≥ STARTUP_FACTOR x the serial time to the
    first test, and without the cost `used` workers would allow ≥ MIN_GAIN."""
    if used < 2 or cause.key not in {"startup", "worker_setup"}:
        return None
    if cause.per_worker_s < max(STARTUP_FLOOR_S, STARTUP_DOMINANT * parallel.wall):
        return None
    if cause.key == "startup":
        if parallel.startup < STARTUP_FACTOR * serial.startup:
            return None
        healthy = _bound(serial, used, cores, _Costs(serial.startup, costs.tail))[0]
    else:
        # Without the repeated setup: the serial first test, which paid it, is not the
        # longest job any more.
        first = serial.first()
        longest = max(
            (t.duration - cause.per_worker_s if t is first else t.duration) for t in serial.tests
        )
        share = (serial.test_seconds + serial.between_tests) / max(1, min(used, cores))
        wall = costs.startup + max(longest, share) + costs.tail
        healthy = serial.wall / wall if wall > 0 else 0.0
    return healthy if healthy >= MIN_GAIN else None


def _breakdown(
    serial: SuiteTiming,
    parallel: SuiteTiming,
    cores: int,
    bounds: Mapping[int, float],
    longest: TestTiming,
    used: int,
    by_longest: bool,
) -> list[str]:
    """Where each run's wall time went, and the bound for each worker count."""
    count = len(serial.tests)
    startups = parallel.worker_startups().values()
    parallel_tests = parallel.wall - parallel.startup - parallel.tail
    return [
        f"serial: {_seconds(serial.wall)} = {_seconds(serial.startup)} from session start to "
        f"the first test (collection) + {_seconds(serial.test_seconds)} in "
        f"{_plural(count, 'test')} + {_seconds(serial.between_tests)} between tests + "
        f"{_seconds(serial.tail)} after the last",
        f"xdist, {used} workers: {_seconds(parallel.wall)} = "
        f"{_seconds(parallel.startup)} worker start-up (session start to a worker's first "
        f"test, mean of {len(startups)}: {_seconds(min(startups))} to {_seconds(max(startups))}) + "
        f"{_seconds(parallel_tests)} running tests ({_seconds(parallel.test_seconds)} summed "
        f"over workers) + {_seconds(parallel.tail)} after the last",
        f"tests: mean {_seconds(serial.test_seconds / count)}, longest {longest.nodeid} "
        f"{_seconds(longest.duration)}"
        + (" — it bounds the speedup: split it" if by_longest else ""),
        "bound = serial wall / (start-up + max(longest test, (test + between-test time) / "
        "workers) + time after the last test), with the xdist start-up and tail from 2 "
        "workers on: "
        + ", ".join(f"{n} {'worker' if n == 1 else 'workers'} {b:.2f}x" for n, b in bounds.items())
        + (f" (more workers than the {cores} cores run no faster)" if used > cores else ""),
    ]


def _recommendation(recommended: int, bounds: Mapping[int, float], cores: int) -> str:
    if recommended == SERIALLY:
        return (
            f"recommended: run serially — no worker count up to {cores} beats serial by "
            f"{MIN_GAIN - 1:.0%}"
        )
    return f"recommended: -n {recommended} (bound {bounds[recommended]:.2f}x)"


def _only(one: SuiteTiming, other: SuiteTiming) -> list[str]:
    theirs = {t.nodeid for t in other.tests}
    return [t.nodeid for t in one.tests if t.nodeid not in theirs]


def _unmatched(serial: SuiteTiming, parallel: SuiteTiming) -> Sequence[str]:
    lines = []
    for name, one, other in (("serial", serial, parallel), ("xdist", parallel, serial)):
        only = _only(one, other)
        if only:
            lines.append(
                f"only in the {name} run ({_plural(len(only), 'test')}, not compared): "
                + _names(only)
            )
    return lines
