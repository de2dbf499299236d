"""The bench gate's second metric: instructions of the cpu_bound benchmarks, counted by callgrind.

Wall time on a shared machine is noisy enough to hide a slowdown of a few percent; the number of
instructions a deterministic piece of code executes is not. Each side runs its benchmarks marked
`cpu_bound` once under valgrind's callgrind, which starts with counting off
(`--instr-atstart=no`): the bench tier's `measure` (testkit.bench, switched on by
`INSTRUCTIONS_VARIABLE`) warms up, then counts a fixed number of calls between callgrind's start
and stop client requests, and `--dump-after` writes each such window into its own numbered dump
(`callgrind.out.<pid>.<n>`), whose `totals:` line is the window's instruction count. `measure`
names the benchmark of each window, in order, in a sidecar file.

What would make counts differ between two runs of the same code is pinned where it can be:
string hashing (PYTHONHASHSEED=0: set iteration order decides which branches run) and address
space layout (`setarch <machine> -R`: addresses feed hashes of objects hashed by identity and
the interpreter's attribute cache). What cannot be pinned remains: where objects land still
differs from run to run (compiled extensions seed hash tables at random, threads interleave),
and CPython's attribute cache is indexed by the addresses of attribute names, so a run whose hot
lookups collide there is slower for its whole life. Single runs of one commit differed by up to
2.3 % (docs/gates.md has the figures), always upwards of the most common, lowest level. So each
side runs up to `instruction_runs` times (default 3), one run per side and round, side by side up
to the number of cores (an instruction count does not depend on load), and each benchmark's
fewest instructions over its side's runs is compared: no interval; the ratio candidate /
baseline is held against `instruction_threshold`. Each run of a side gets a padding of its own
length in its environment (`LAYOUT_VARIABLE`), which moves the layout, so that its runs are
separate draws. The rounds stop early once no verdict could change: more runs only lower a
side's counts, by at most `instruction_spread` (`settled`).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from gates.bench.statistics import Verdict, judge
from gates.engine.execution import Shell
from gates.errors import GatesError

# Read by testkit.bench's `measure`: where the windows' sidecar goes (set = instruction mode).
INSTRUCTIONS_VARIABLE = "TESTKIT_BENCH_INSTRUCTIONS"
WINDOWS_FILE = "windows.txt"
# Moves where the interpreter's objects land, one step per run: without it a side's later runs
# (byte code cached by the first) repeat one layout, and the fewest of three would be the
# fewest of two. The same run of either side gets the same padding.
LAYOUT_VARIABLE = "GATES_INSTRUCTION_LAYOUT"
LAYOUT_PAD = "." * 24
MARKER = "cpu_bound"
# Keeps the benchmarks marked cpu_bound, by a plugin rather than `-m cpu_bound`: pytest refuses
# `-m` with a marker the project never registered (a project without cpu_bound benchmarks then
# has none, exit status 5), and a gate's own `-m` still narrows the run, never widens it.
PLUGIN_MODULE = "gates_cpu_bound_only"
PLUGIN = f"""\
def pytest_collection_modifyitems(config, items):
    kept = [item for item in items if item.get_closest_marker({MARKER!r}) is not None]
    if len(kept) < len(items):
        chosen = set(map(id, kept))
        config.hook.pytest_deselected(items=[i for i in items if id(i) not in chosen])
        items[:] = kept
"""
MARKED = ("-p", PLUGIN_MODULE)
INSTALL = "sudo apt-get install valgrind"
NO_TESTS = 5  # pytest's exit status when nothing was selected: no cpu_bound benchmark
DUMP = re.compile(r"callgrind\.out\.(\d+)\.(\d+)")
# callgrind's names of the object file that holds the interpreter: libpython, else (a statically
# linked build) the python executable.
INTERPRETER = (
    re.compile(r"^c?ob=\(\d+\) (\S*/libpython[\d.]+\.so[\d.]*)$", re.M),
    re.compile(r"^c?ob=\(\d+\) (\S*/python[\d.]*)$", re.M),
)


class InstructionError(GatesError):
    """The instruction run could not run or left results that do not add up."""


def require_valgrind(environ: Mapping[str, str]) -> str:
    """valgrind's path; missing, the metric cannot be had, and the gate says how to get it."""
    found = shutil.which("valgrind", path=environ.get("PATH"))
    if found is None:
        raise InstructionError(
            "valgrind is missing: the bench gate counts the instructions of the cpu_bound "
            f"benchmarks with its callgrind tool; install it with `{INSTALL}` "
            "(or `gates provision`, which reads the bench tier's tools)"
        )
    return found


def pytest_argv(
    selection: Sequence[str], directory: Path, groups: Sequence[str] = ("bench",)
) -> list[str]:
    """The side's cpu_bound benchmarks under callgrind: counting off at the start, a dump at
    each stop, no address randomization; untimed (--benchmark-disable), in file order.
    pytest-codspeed's C module gives the windows; its pytest plugin stays off."""
    return [
        "uv",
        "run",
        "--locked",
        *(f"--group={group}" for group in groups),
        "setarch",
        platform.machine(),
        "-R",
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--dump-after=callgrind_stop_instrumentation",
        f"--callgrind-out-file={directory}/callgrind.out.%p",
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:randomly",
        "-p",
        "no:codspeed",  # its plugin, once enabled, would take over pytest-benchmark's fixture
        "--benchmark-disable",
        *selection,
        *MARKED,
    ]


def collect_argv(selection: Sequence[str], groups: Sequence[str] = ("bench",)) -> list[str]:
    """Whether the selection holds cpu_bound benchmarks (exit status 5 when none), without
    valgrind: a project without them needs no valgrind."""
    return [
        "uv",
        "run",
        "--locked",
        *(f"--group={group}" for group in groups),
        "pytest",
        "-q",
        "-p",
        "no:randomly",
        "--collect-only",
        *selection,
        *MARKED,
    ]


def with_plugin(environ: Mapping[str, str], where: Path) -> dict[str, str]:
    """`environ` with the cpu_bound plugin (written into `where`) importable."""
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{PLUGIN_MODULE}.py").write_text(PLUGIN)
    path = [str(where), *filter(None, [environ.get("PYTHONPATH", "")])]
    return {**environ, "PYTHONPATH": os.pathsep.join(path)}


def environment(environ: Mapping[str, str], directory: Path, run: int = 1) -> dict[str, str]:
    """The environment of a side's `run`-th instruction run: the plugin importable, string
    hashing pinned, the windows' folder named, and a padding whose length grows with `run`
    (`LAYOUT_VARIABLE`), so that each run starts from its own memory layout."""
    return {
        **with_plugin(environ, directory / "plugin"),
        "PYTHONHASHSEED": "0",
        INSTRUCTIONS_VARIABLE: str(directory),
        LAYOUT_VARIABLE: LAYOUT_PAD * (run - 1),
    }


def dump_total(path: Path) -> int:
    """The `totals:` line of one dump (its `summary:` line is wrong with --dump-after)."""
    try:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError) as error:
        raise InstructionError(f"cannot read the callgrind dump {path}: {error}") from error
    raise InstructionError(f"the callgrind dump {path} has no `totals:` line")


def windows(directory: Path) -> dict[int, Path]:
    """The numbered dumps (window n → its file) of the one process that made any."""
    dumps: dict[str, dict[int, Path]] = {}
    for path in directory.iterdir():
        match = DUMP.fullmatch(path.name)
        if match:
            dumps.setdefault(match[1], {})[int(match[2])] = path
    if len(dumps) > 1:
        raise InstructionError(
            f"{directory}: numbered callgrind dumps of {len(dumps)} processes ({sorted(dumps)}); "
            "the cpu_bound benchmarks must run in the pytest process itself"
        )
    return next(iter(dumps.values()), {})


def interpreter(directory: Path) -> str | None:
    """The Python that ran the windows (its file, symlinks resolved), as the first window's dump
    names it; None when the dump names none."""
    numbered = windows(directory)
    if not numbered:
        return None
    text = numbered[min(numbered)].read_text(errors="replace")
    for pattern in INTERPRETER:
        match = pattern.search(text)
        if match:
            return os.path.realpath(match[1])
    return None


def require_same_interpreter(baseline: Path, candidate: Path) -> None:
    """Counts of two interpreters (another version, another build) measure the interpreters,
    not the change: both sides must have run the same one."""
    found = interpreter(baseline), interpreter(candidate)
    if None not in found and found[0] != found[1]:
        raise InstructionError(
            f"the sides' instruction runs used different Pythons (baseline {found[0]}, "
            f"candidate {found[1]}), whose counts are not comparable; pin one for the project "
            "(.python-version or `uv python pin`) so both environments get it"
        )


def read_counts(directory: Path) -> dict[str, int]:
    """Per benchmark (full node id), the instructions of its windows, summed: the n-th numbered
    dump belongs to the n-th line of the sidecar."""
    sidecar = directory / WINDOWS_FILE
    names = sidecar.read_text().splitlines() if sidecar.exists() else []
    numbered = windows(directory)
    if sorted(numbered) != list(range(1, len(names) + 1)):
        raise InstructionError(
            f"{directory}: {len(names)} windows named in {WINDOWS_FILE} but dumps "
            f"{sorted(numbered)}; was the run cut short?"
        )
    counts: dict[str, int] = {}
    for n, name in enumerate(names, start=1):
        counts[name] = counts.get(name, 0) + dump_total(numbered[n])
    return counts


def run_side(
    label: str,
    selection: Sequence[str],
    *,
    cwd: Path,
    environ: Mapping[str, str],
    directory: Path,
    groups: Sequence[str],
    shell: Shell,
    log: Path,
    timeout: float,
    run: int = 1,
) -> dict[str, int] | None:
    """One side's counts (its `run`-th run); None when the selection holds no cpu_bound
    benchmark."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = pytest_argv(selection, directory, groups)
    env = environment(environ, directory, run)
    status = shell(argv, cwd=cwd, log=log, env=env, timeout=timeout)
    if status == NO_TESTS:
        return None
    if status != 0:
        raise InstructionError(
            f"the instruction run (callgrind) failed on the {label} side "
            f"(exit status {status}); see {log}"
        )
    counts = read_counts(directory)
    if not counts:
        raise InstructionError(
            f"the instruction run on the {label} side counted no window; see {log}"
        )
    return counts


@dataclass(frozen=True)
class SideRuns:
    """Where one side's instruction runs go: its directory, environment, and the folder that
    gets one subfolder (`run-N`, with its dumps) and one log (`run-N.log`) per run."""

    label: str
    cwd: Path
    environ: Mapping[str, str]
    directory: Path

    def run_directory(self, run: int) -> Path:
        return self.directory / f"run-{run}"


def fewest(label: str, runs: Sequence[Mapping[str, int]]) -> dict[str, int]:
    """Per benchmark, the fewest instructions over one side's runs: what is left when nothing
    else ran in the process's way. Every run must have counted the same benchmarks."""
    names = set(runs[0])
    for run in runs[1:]:
        if set(run) != names:
            raise InstructionError(
                f"the {label} side's instruction runs counted different benchmarks "
                f"({sorted(names)} and {sorted(run)})"
            )
    return {name: min(run[name] for run in runs) for name in runs[0]}


def settled(
    baseline: Mapping[str, int] | None,
    candidate: Mapping[str, int] | None,
    threshold: float,
    spread: float,
) -> bool:
    """Whether more runs could change no verdict. A side's fewest count so far is at most
    `spread` above the lowest its runs can reach, and more runs only lower it: each ratio
    candidate / baseline can still fall to ratio / (1 + spread) or rise to ratio * (1 + spread),
    and it is settled when both ends get the same verdict. A side without cpu_bound benchmarks
    (None) has nothing to settle."""
    if baseline is None or candidate is None:
        return True
    for name in baseline.keys() & candidate.keys():
        ratio = candidate[name] / baseline[name] if baseline[name] else float("inf")
        low, high = ratio / (1 + spread), ratio * (1 + spread)
        if judge(low, low, threshold) != judge(high, high, threshold):
            return False
    return True


Enough = Callable[[Sequence[dict[str, int] | None]], bool]


def count_sides(
    sides: Sequence[SideRuns],
    selection: Sequence[str],
    *,
    runs: int,
    groups: Sequence[str],
    shell: Shell,
    timeout: float,
    workers: int | None = None,
    enough: Enough | None = None,
) -> list[dict[str, int] | None]:
    """Every side's counts (in the order of `sides`), each the fewest over its callgrind runs;
    None for a side whose selection holds no cpu_bound benchmark. The runs go in rounds of one
    run per side, side by side, `workers` at a time (default: the number of cores), up to
    `runs` rounds; after each, `enough(the counts so far)` may end them early (the gate's
    `settled`), and a side without cpu_bound benchmarks ends them. Interrupted, the runs not
    yet started are dropped and the running ones end first (each is a few minutes at most)."""
    if not sides:
        return []
    width = max(1, workers or os.cpu_count() or 1)
    together = max(1, width // len(sides))  # rounds run at once
    found: list[list[dict[str, int] | None]] = [[] for _ in sides]
    counted: list[dict[str, int] | None] = []
    made = 0
    with ThreadPoolExecutor(
        max_workers=min(width, len(sides) * runs), thread_name_prefix="callgrind"
    ) as pool:
        while made < runs:
            batch = range(made + 1, min(runs, made + together) + 1)
            jobs = [(index, run) for run in batch for index in range(len(sides))]
            futures: list[Future[dict[str, int] | None]] = [
                pool.submit(
                    run_side,
                    sides[index].label,
                    selection,
                    cwd=sides[index].cwd,
                    environ=sides[index].environ,
                    directory=sides[index].run_directory(run),
                    groups=groups,
                    shell=shell,
                    log=sides[index].directory / f"run-{run}.log",
                    timeout=timeout,
                    run=run,
                )
                for index, run in jobs
            ]
            try:
                done = [future.result() for future in futures]
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            for (index, _), count in zip(jobs, done, strict=True):
                found[index].append(count)
            made = batch[-1]
            counted = [
                None
                if any(c is None for c in side_runs)
                else fewest(side.label, [c for c in side_runs if c is not None])
                for side, side_runs in zip(sides, found, strict=True)
            ]
            if None in counted or (enough is not None and enough(counted)):
                break
    return counted


def runs_made(side: SideRuns) -> int:
    """How many runs of the side were started (each has its folder)."""
    return sum(1 for path in side.directory.glob("run-*") if path.is_dir())


@dataclass(frozen=True)
class InstructionComparison:
    """One cpu_bound benchmark, both sides: instructions counted and the threshold."""

    name: str
    baseline: int
    candidate: int
    threshold: float

    @property
    def ratio(self) -> float:
        return self.candidate / self.baseline if self.baseline else float("inf")

    @property
    def verdict(self) -> Verdict:
        return judge(self.ratio, self.ratio, self.threshold)

    @property
    def regressed(self) -> bool:
        return self.verdict == "slower"

    def as_metrics(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "verdict": self.verdict}


def compare_counts(
    baseline: Mapping[str, int], candidate: Mapping[str, int], threshold: float
) -> tuple[list[InstructionComparison], list[str]]:
    """Comparisons of the benchmarks counted on both sides, and the names counted on one."""
    both = [name for name in candidate if name in baseline]
    only = sorted(set(baseline) ^ set(candidate))
    return [
        InstructionComparison(name, baseline[name], candidate[name], threshold) for name in both
    ], only


def table(comparisons: Sequence[InstructionComparison]) -> Table:
    """Instructions of each cpu_bound benchmark on both sides, the change and the verdict."""
    result = Table(
        title="cpu_bound benchmarks: instructions (callgrind Ir), candidate against baseline"
    )
    for column in ("benchmark", "baseline Ir", "candidate Ir", "change", "threshold"):
        result.add_column(column, justify="left" if column == "benchmark" else "right")
    result.add_column("verdict")
    style = {"slower": "bold red", "faster": "green", "same": ""}
    for c in comparisons:
        result.add_row(
            Text(c.name.rsplit("::", 1)[-1]),
            f"{c.baseline:,}",
            f"{c.candidate:,}",
            f"{c.ratio - 1:+.2%}",
            f"+{c.threshold:.0%}",
            f"[{style[c.verdict]}]{c.verdict}[/]" if style[c.verdict] else c.verdict,
        )
    return result
