"""The benchmark gate: the working tree against a baseline commit, side by side.

The baseline is checked out into a temporary git worktree with its own environment; both sides
run the same benchmark selection in alternating rounds (baseline, candidate, baseline, …) so
drift of the machine hits both alike. Per benchmark and round, the ratio of a low quantile of the
timings (candidate / baseline; the 10th percentile by default, since load on the machine only ever
adds time) is taken between the two runs of that round, which ran one right after the other; the
rounds' ratios are combined by their geometric mean and get a bootstrap confidence interval that
resamples whole rounds (and the timings within them), so a round that was lucky or unlucky on one
side widens the interval instead of deciding the verdict. A benchmark regresses only when the
whole interval lies above 1 + its threshold.

After the rounds, the benchmarks marked `cpu_bound` run on each side under callgrind
(up to `instruction_runs` times, gates.bench.instructions): their instruction counts are a second
metric that load cannot move, and more instructions than the baseline by over
`instruction_threshold` is a regression as well.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gates.bench import instructions
from gates.bench.affected import split_selection
from gates.bench.instructions import InstructionComparison
from gates.bench.settings import DEFAULT_SELECTION, BenchSettings
from gates.bench.statistics import Comparison, compare_all
from gates.bench.worktree import SCRATCH_PREFIX, sweep, synced_baseline
from gates.engine.execution import Shell
from gates.errors import GatesError

# pytest's exit statuses for a usage error (such as a missing directory) and for no tests.
NOTHING_TO_RUN = (4, 5)
# coverage.py's switches that start its tracer in every Python process (its `subprocess` patch
# and .pth file), inherited when the gate itself runs under coverage: counted under a tracer, a
# benchmark's instructions are mostly the tracer's (several times as many, and noisier), so no
# instruction run gets them. The timed rounds keep the caller's environment: a tracer slows
# both sides alike, and their ratio is what the gate judges.
TRACERS = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")


def untraced(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k not in TRACERS}


class BenchError(GatesError):
    """A side of the comparison could not run; the message names the side and the log."""


def read_samples(path: Path) -> dict[str, list[float]]:
    """Per benchmark (full node id), the time of each round in seconds, from pytest-benchmark's
    `--benchmark-json` file."""
    try:
        document = json.loads(path.read_text())
        return {
            str(item["fullname"]): [float(x) for x in item["stats"]["data"]]
            for item in document["benchmarks"]
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BenchError(f"cannot read benchmark results {path}: {error}") from error


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _quantiles(q: float) -> str:
    return "medians" if q == 0.5 else f"{q:.0%} quantiles"


def table(
    comparisons: Sequence[Comparison],
    confidence: float,
    q: float,
    own: Mapping[str, float] | None = None,
) -> Table:
    """Baseline, change, ratio, interval and verdict of each benchmark; `own` names the
    benchmarks compared by a quantile of their own, and which."""
    which = _quantiles(q)
    for name, quantile in (own or {}).items():
        which += f"; {_quantiles(quantile)} of {name.rsplit('::', 1)[-1]}"
    result = Table(title=Text(f"benchmarks: candidate against baseline ({which})"))
    for column in ("benchmark", "baseline", "candidate", "change", "ratio"):
        result.add_column(column, justify="left" if column == "benchmark" else "right")
    result.add_column(f"{confidence:.0%} interval", justify="right")
    result.add_column("threshold", justify="right")
    result.add_column("rounds", justify="right")
    result.add_column("verdict")
    style = {"slower": "bold red", "faster": "green", "same": ""}
    for c in comparisons:
        result.add_row(
            Text(c.name.rsplit("::", 1)[-1]),  # a parametrized id such as [a] is no markup
            _duration(c.baseline_s),
            _duration(c.candidate_s),
            f"{c.ratio - 1:+.1%}",
            f"{c.ratio:.3f}",
            f"[{c.low:.3f}, {c.high:.3f}]",
            f"+{c.threshold:.0%}",
            str(c.rounds),
            f"[{style[c.verdict]}]{c.verdict}[/]" if style[c.verdict] else c.verdict,
        )
    return result


def render(renderable: Table) -> str:
    out = StringIO()
    Console(file=out, width=120, color_system=None).print(renderable)
    return out.getvalue()


@dataclass(frozen=True)
class Side:
    """Where one side runs: its directory and environment (the baseline has its own venv)."""

    label: str
    cwd: Path
    environ: Mapping[str, str]


def pytest_argv(
    selection: Sequence[str], output: Path, groups: Sequence[str] = ("bench",)
) -> list[str]:
    return [
        "uv",
        "run",
        "--locked",
        *(f"--group={group}" for group in groups),
        "pytest",
        "-q",
        "-p",
        "no:randomly",
        "--benchmark-only",
        f"--benchmark-json={output}",
        *selection,
    ]


def missing_paths(baseline: Path, candidate: Path, selection: Sequence[str]) -> list[str]:
    """Paths of the selection (node ids count by their file) that the candidate has and the
    baseline lacks; options and their values name nothing in the candidate, so they pass."""
    paths = [item.split("::", 1)[0] for item in selection if not item.startswith("-")]
    return [p for p in paths if (candidate / p).exists() and not (baseline / p).exists()]


@dataclass
class BenchReport:
    """What a comparison found, and where its files are."""

    baseline: str
    comparisons: list[Comparison]
    only_one_side: list[str]
    results: Path
    rounds: int
    swept: list[Path] = field(default_factory=list)  # leftovers of killed runs, removed first
    # The cpu_bound benchmarks' instruction counts; empty when the selection has none.
    instructions: list[InstructionComparison] = field(default_factory=list)
    instructions_one_side: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Comparison | InstructionComparison]:
        """Wall-time and instruction regressions (a benchmark may appear in both)."""
        every: list[Comparison | InstructionComparison] = [*self.comparisons, *self.instructions]
        return [c for c in every if c.regressed]

    def metrics(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "rounds": self.rounds,
            "results": str(self.results),
            "regressions": len(self.regressions),
            "benchmarks": {c.name: c.as_metrics() for c in self.comparisons},
            "instructions": {c.name: c.as_metrics() for c in self.instructions},
            "only_one_side": self.only_one_side,
            "instructions_one_side": self.instructions_one_side,
            "swept": [str(path) for path in self.swept],
        }

    def text(self, settings: BenchSettings) -> str:
        """The wall-time table, then the instruction table when there are counts."""
        own = {
            c.name: settings.quantile_for(c.name)
            for c in self.comparisons
            if settings.quantile_for(c.name) != settings.quantile
        }
        text = render(table(self.comparisons, settings.confidence, settings.quantile, own))
        if self.instructions:
            text += render(instructions.table(self.instructions))
        return text


def count_instructions(
    sides: Sequence[Side],
    selection: Sequence[str],
    *,
    settings: BenchSettings,
    shell: Shell,
    results: Path,
    log: Path,
    timeout: float,
) -> tuple[list[InstructionComparison], list[str]]:
    """Up to `instruction_runs` callgrind runs per side, fewer once the verdicts are settled
    (`instructions.settled`), the fewest instructions of each side compared; nothing when the
    candidate's selection holds no cpu_bound benchmark. valgrind missing is then an error,
    never a skip."""
    candidate = sides[-1]
    argv = instructions.collect_argv(selection, settings.groups)
    with tempfile.TemporaryDirectory(prefix="gates-cpu-bound-") as plugin:
        env = instructions.with_plugin(candidate.environ, Path(plugin))
        status = shell(argv, cwd=candidate.cwd, log=log, env=env, timeout=timeout)
    if status == instructions.NO_TESTS:
        return [], []
    if status != 0:
        raise BenchError(
            f"collecting the cpu_bound benchmarks failed (exit status {status}); see {log}"
        )
    instructions.require_valgrind(candidate.environ)
    runs = [
        instructions.SideRuns(
            side.label, side.cwd, untraced(side.environ), results / f"{side.label}-instructions"
        )
        for side in sides
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(
            f"instruction runs: up to {settings.instruction_runs} per side, until no verdict "
            f"could change; their logs in {', '.join(str(side.directory) for side in runs)}\n"
        )
    counts = instructions.count_sides(
        runs,
        selection,
        runs=settings.instruction_runs,
        groups=settings.groups,
        shell=shell,
        timeout=timeout,
        enough=lambda counted: instructions.settled(
            counted[0],
            counted[-1],
            settings.instruction_threshold,
            settings.instruction_spread,
        ),
    )
    with log.open("a") as out:
        made = ", ".join(f"{side.label} {instructions.runs_made(side)}" for side in runs)
        out.write(f"instruction runs made: {made}\n")
    instructions.require_same_interpreter(*(side.run_directory(1) for side in runs))
    return instructions.compare_counts(
        counts[0] or {}, counts[1] or {}, settings.instruction_threshold
    )


def in_doubt(
    samples: Mapping[str, Mapping[str, Sequence[Sequence[float]]]], settings: BenchSettings
) -> list[str]:
    """The benchmarks whose comparison so far is in doubt (`Comparison.in_doubt`)."""
    comparisons, _ = compare_all(samples["baseline"], samples["candidate"], settings)
    return [c.name for c in comparisons if c.in_doubt]


def run_comparison(
    root: Path,
    baseline: str,
    *,
    shell: Shell,
    results: Path,
    log: Path,
    environ: Mapping[str, str],
    settings: BenchSettings,
    selection: Sequence[str] = DEFAULT_SELECTION,
    baseline_environ: Mapping[str, str] | None = None,
    candidate_environ: Mapping[str, str] | None = None,
    timeout: float = 1800,
    run_id: str = "",
    instructions: bool = True,
) -> BenchReport:
    """Run the selection on `baseline` (a commit, in a worktree) and on the working tree at
    `root` in alternating rounds; store each round's JSON, the table and a summary in `results`.

    `baseline_environ` / `candidate_environ` add variables to one side only (the self-checks use
    them for the test-only slowdown switch). `instructions=False` skips the callgrind runs, and
    `settings.rounds == 0` the timed rounds (calibration measures one metric at a time so).
    No instruction run inherits coverage.py's subprocess switches (`TRACERS`)."""
    results.mkdir(parents=True, exist_ok=True)
    swept = sweep(root, shell=shell, log=log, environ=environ)
    prefix = f"{SCRATCH_PREFIX}{run_id}-" if run_id else SCRATCH_PREFIX

    def check(tree: Path) -> None:
        missing = missing_paths(tree, root, selection)
        if missing:
            raise BenchError(
                f"the baseline has no benchmarks at {', '.join(missing)}; "
                "pick one that has them with --baseline REV"
            )

    with synced_baseline(
        root,
        baseline,
        settings=settings,
        shell=shell,
        log=log,
        environ=environ,
        prefix=prefix,
        timeout=timeout,
        error=BenchError,
        check=check,
    ) as (tree, baseline_env):
        sides = (
            Side("baseline", tree, {**baseline_env, **(baseline_environ or {})}),
            Side("candidate", root, {**environ, **(candidate_environ or {})}),
        )
        # Per side and benchmark, one list of timings per round.
        samples: dict[str, dict[str, list[list[float]]]] = {"baseline": {}, "candidate": {}}

        def run_round(round_: int, chosen: Sequence[str]) -> None:
            for side in sides:
                output = results / f"{side.label}-{round_}.json"
                argv = pytest_argv(chosen, output, settings.groups)
                status = shell(argv, cwd=side.cwd, log=log, env=side.environ, timeout=timeout)
                if status in NOTHING_TO_RUN:
                    raise BenchError(
                        f"the {side.label} side has no benchmarks matching {list(chosen)} "
                        f"(pytest exit status {status}); see {log}"
                    )
                if status != 0:
                    raise BenchError(
                        f"the benchmarks failed on the {side.label} side in round {round_} "
                        f"(exit status {status}); see {log}"
                    )
                for name, data in read_samples(output).items():
                    samples[side.label].setdefault(name, []).append(data)

        for round_ in range(1, settings.rounds + 1):
            run_round(round_, selection)
        _, options = split_selection(root, selection)
        for round_ in range(settings.rounds + 1, settings.max_rounds + 1 if settings.rounds else 0):
            doubtful = in_doubt(samples, settings)
            if not doubtful:
                break
            with log.open("a") as out:
                out.write(f"round {round_} of at most {settings.max_rounds}, in doubt: ")
                out.write(", ".join(name.rsplit("::", 1)[-1] for name in doubtful) + "\n")
            run_round(round_, [*options, *doubtful])
        counted, counted_one_side = (
            count_instructions(
                sides,
                selection,
                settings=settings,
                shell=shell,
                results=results,
                log=log,
                timeout=timeout,
            )
            if instructions
            else ([], [])
        )
    comparisons, only = compare_all(samples["baseline"], samples["candidate"], settings)
    report = BenchReport(
        baseline,
        comparisons,
        only,
        results,
        settings.rounds,
        swept,
        counted,
        counted_one_side,
    )
    (results / "comparison.txt").write_text(report.text(settings))
    (results / "comparison.json").write_text(json.dumps(report.metrics(), indent=2) + "\n")
    return report
