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
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from io import StringIO
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gates.errors import ConfigError, GatesError, GitError
from gates.execution import Shell
from gates.project import gates_table
from gates.tiers import Tiers

Verdict = Literal["slower", "faster", "same"]
DEFAULT_SELECTION = ("bench",)
# pytest's exit statuses for a usage error (such as a missing directory) and for no tests.
NOTHING_TO_RUN = (4, 5)


class BenchError(GatesError):
    """A side of the comparison could not run; the message names the side and the log."""


@dataclass(frozen=True)
class BenchSettings:
    """`[tool.gates.bench]`: thresholds (a fraction: 0.1 is 10 % slower), rounds, statistics."""

    threshold: float = 0.10
    thresholds: Mapping[str, float] = field(default_factory=dict)
    rounds: int = 5
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    quantile: float = 0.1
    # The benchmarks' test-only slowdown switch (`NAME=FACTOR,…`): never passed to the baseline
    # side, and what `invoke calibrate` sets to measure the detection rate. "" when none.
    slowdown_env: str = ""
    # Paths (relative to the root) copied from the working tree into the baseline's worktree
    # before its first round: caches that are expensive to rebuild, such as guest images.
    copy_to_baseline: tuple[str, ...] = ()
    # From the bench tier of [tool.gates.tiers] (`tier`, default "bench"): the dependency groups
    # both sides run with, and what runs when a gate names no benchmarks.
    groups: tuple[str, ...] = ("bench",)
    selection: tuple[str, ...] = DEFAULT_SELECTION

    @classmethod
    def load(cls, root: Path, tier: str | None = None) -> BenchSettings:
        """`[tool.gates.bench]` with the groups and test dirs of its tier (`tier`, else the
        table's `tier`, else "bench"; a project without such a tier keeps the defaults)."""
        table = gates_table(root).get("bench", {})
        settings = cls.from_table(table)
        name = tier or (table.get("tier", "bench") if isinstance(table, dict) else "bench")
        tiers = Tiers.load(root)
        if name not in tiers.names:
            return settings
        found = tiers.get(name)
        return replace(
            settings,
            groups=found.groups or settings.groups,
            selection=found.dirs or settings.selection,
        )

    @classmethod
    def from_table(cls, table: object) -> BenchSettings:
        """Validate `[tool.gates.bench]`; a mistake raises ConfigError naming the key."""
        if not isinstance(table, dict):
            raise ConfigError("[tool.gates.bench] must be a table")
        allowed = {
            "threshold",
            "thresholds",
            "rounds",
            "confidence",
            "resamples",
            "seed",
            "quantile",
            "slowdown_env",
            "copy_to_baseline",
            "tier",
        }
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ConfigError(
                f"[tool.gates.bench]: unknown keys {unknown}; allowed: {sorted(allowed)}"
            )
        defaults = cls()
        threshold = _fraction("threshold", table.get("threshold", defaults.threshold))
        raw = table.get("thresholds", {})
        if not isinstance(raw, dict):
            raise ConfigError("[tool.gates.bench] thresholds must map benchmark names to fractions")
        thresholds = {str(k): _fraction(f"thresholds.{k}", v) for k, v in raw.items()}
        rounds = table.get("rounds", defaults.rounds)
        resamples = table.get("resamples", defaults.resamples)
        seed = table.get("seed", defaults.seed)
        for key, value, low in (("rounds", rounds, 1), ("resamples", resamples, 100)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"[tool.gates.bench] {key} must be an integer >= {low}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError("[tool.gates.bench] seed must be an integer")
        confidence = table.get("confidence", defaults.confidence)
        if not isinstance(confidence, int | float) or not 0.5 <= confidence < 1:
            raise ConfigError("[tool.gates.bench] confidence must be a number in [0.5, 1)")
        quantile = table.get("quantile", defaults.quantile)
        if not isinstance(quantile, int | float) or not 0 <= quantile <= 0.5:
            raise ConfigError("[tool.gates.bench] quantile must be a number in [0, 0.5]")
        slowdown_env = table.get("slowdown_env", defaults.slowdown_env)
        if not isinstance(slowdown_env, str):
            raise ConfigError(
                "[tool.gates.bench] slowdown_env must be an environment variable name"
            )
        copies = table.get("copy_to_baseline", list(defaults.copy_to_baseline))
        if not isinstance(copies, list) or not all(_relative(p) for p in copies):
            raise ConfigError(
                "[tool.gates.bench] copy_to_baseline must be a list of paths relative to the "
                'project root, e.g. [".cache/images"]'
            )
        return cls(
            threshold,
            thresholds,
            rounds,
            float(confidence),
            resamples,
            seed,
            float(quantile),
            slowdown_env,
            tuple(copies),
        )

    def threshold_for(self, name: str) -> float:
        """The benchmark's own threshold (by test name or full node id), else the default."""
        short = name.rsplit("::", 1)[-1]
        return self.thresholds.get(name, self.thresholds.get(short, self.threshold))


def _relative(path: object) -> bool:
    return (
        isinstance(path, str)
        and bool(path)
        and not Path(path).is_absolute()
        and ".." not in Path(path).parts
    )


def _fraction(key: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < 10:
        raise ConfigError(
            f"[tool.gates.bench] {key} must be a fraction of slowdown, e.g. 0.1 for 10 %"
        )
    return float(value)


@dataclass(frozen=True)
class Comparison:
    """One benchmark, both sides: the quantile's time in seconds, the ratio candidate/baseline
    and its interval."""

    name: str
    baseline_s: float
    candidate_s: float
    ratio: float
    low: float
    high: float
    threshold: float

    @property
    def verdict(self) -> Verdict:
        """slower: surely beyond the threshold; faster: surely beyond it the other way."""
        if self.low > 1 + self.threshold:
            return "slower"
        if self.high < 1 / (1 + self.threshold):
            return "faster"
        return "same"

    @property
    def regressed(self) -> bool:
        return self.verdict == "slower"

    def as_metrics(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile of `values`, interpolated linearly (0.5 is the median)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


Rounds = Sequence[Sequence[float]]  # per alternation round, that side's timings in seconds


def compare(
    name: str,
    baseline: Rounds,
    candidate: Rounds,
    *,
    threshold: float,
    q: float = BenchSettings.quantile,
    confidence: float = BenchSettings.confidence,
    resamples: int = BenchSettings.resamples,
    seed: int = BenchSettings.seed,
) -> Comparison:
    """Round by round, the ratio of the `q` quantiles (candidate / baseline); their geometric
    mean, with a percentile bootstrap interval over rounds and timings. `baseline[i]` and
    `candidate[i]` are the timings of round i. The RNG is seeded per benchmark, so the same
    timings always give the same verdict."""
    pairs = [(b, c) for b, c in zip(baseline, candidate, strict=False) if b and c]
    if not pairs:
        raise ValueError(f"benchmark {name!r} has no round with samples on both sides")
    # Reproducible resampling, not secrecy: the same samples must always give the same verdict.
    rng = random.Random(seed ^ zlib.crc32(name.encode()))  # noqa: S311

    def mean_ratio(
        chosen: Sequence[tuple[Sequence[float], Sequence[float]]], resample: bool
    ) -> float:
        logs = 0.0
        for b, c in chosen:
            if resample:
                b, c = rng.choices(b, k=len(b)), rng.choices(c, k=len(c))
            logs += math.log(quantile(c, q) / quantile(b, q))
        return math.exp(logs / len(chosen))

    ratios = sorted(
        mean_ratio(rng.choices(pairs, k=len(pairs)), resample=True) for _ in range(resamples)
    )
    tail_share = (1 - confidence) / 2
    low = ratios[int(tail_share * (resamples - 1))]
    high = ratios[round((1 - tail_share) * (resamples - 1))]
    b_time = quantile([x for b, _ in pairs for x in b], q)
    c_time = quantile([x for _, c in pairs for x in c], q)
    return Comparison(name, b_time, c_time, mean_ratio(pairs, resample=False), low, high, threshold)


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


def compare_all(
    baseline: Mapping[str, Rounds],
    candidate: Mapping[str, Rounds],
    settings: BenchSettings,
) -> tuple[list[Comparison], list[str]]:
    """Compare the benchmarks both sides ran; also name those only one side has."""
    common = [name for name in candidate if name in baseline]
    only = sorted(set(baseline) ^ set(candidate))
    comparisons = [
        compare(
            name,
            baseline[name],
            candidate[name],
            threshold=settings.threshold_for(name),
            q=settings.quantile,
            confidence=settings.confidence,
            resamples=settings.resamples,
            seed=settings.seed,
        )
        for name in common
    ]
    return comparisons, only


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table(comparisons: Sequence[Comparison], confidence: float, q: float) -> Table:
    """Baseline, change, ratio, interval and verdict of each benchmark."""
    which = "medians" if q == 0.5 else f"{q:.0%} quantiles"
    result = Table(title=f"benchmarks: candidate against baseline ({which})")
    for column in ("benchmark", "baseline", "candidate", "change", "ratio"):
        result.add_column(column, justify="left" if column == "benchmark" else "right")
    result.add_column(f"{confidence:.0%} interval", justify="right")
    result.add_column("threshold", justify="right")
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
            f"[{style[c.verdict]}]{c.verdict}[/]" if style[c.verdict] else c.verdict,
        )
    return result


def render(renderable: Table) -> str:
    out = StringIO()
    Console(file=out, width=120, color_system=None).print(renderable)
    return out.getvalue()


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit here (as Ctrl-C raises KeyboardInterrupt), so `finally` blocks
    run; other threads cannot install handlers and keep the default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _git(root: Path, shell: Shell, log: Path, environ: Mapping[str, str], *args: str) -> None:
    status = shell(["git", *args], cwd=root, log=log, env=environ, timeout=600)
    if status != 0:
        raise GitError(f"`git {' '.join(args)}` failed in {root} (exit status {status}); see {log}")


SCRATCH_PREFIX = "gates-bench-"
LOCK_NAME = ".owner.lock"
# A scratch dir without its lock file is another run's for this long (mkdtemp, then the lock).
UNLOCKED_GRACE_S = 60.0


def _hold_lock(scratch: Path) -> int:
    """Lock `scratch` for this process: the kernel drops the lock when the process dies, even by
    SIGKILL, which is how a later run tells a leftover from a comparison still running."""
    # Locked before it gets its name, so no sweeper ever sees it unlocked.
    unnamed = scratch / f"{LOCK_NAME}.{os.getpid()}"
    fd = os.open(unnamed, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\n".encode())
    unnamed.rename(scratch / LOCK_NAME)
    return fd


def _abandoned(scratch: Path) -> bool:
    lock = scratch / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        try:
            return time.time() - scratch.stat().st_mtime > UNLOCKED_GRACE_S
        except FileNotFoundError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its owner is alive
    finally:
        os.close(fd)
    return True


def sweep(
    root: Path,
    *,
    shell: Shell,
    log: Path,
    environ: Mapping[str, str],
    temp_dir: Path | None = None,
) -> list[Path]:
    """Remove the scratch dirs (worktree and environment) of comparisons that were killed, of
    any run and any repository, then prune this repository's worktree list. Returns them."""
    removed = []
    for scratch in sorted(Path(temp_dir or tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*")):
        if scratch.is_dir() and not scratch.is_symlink() and _abandoned(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
            removed.append(scratch)
    if removed:
        shell(["git", "worktree", "prune"], cwd=root, log=log, env=environ, timeout=600)
    return removed


@contextmanager
def worktree(
    root: Path,
    commit: str,
    *,
    shell: Shell,
    log: Path,
    environ: Mapping[str, str],
    prefix: str = SCRATCH_PREFIX,
) -> Iterator[Path]:
    """Check `commit` out into a temporary worktree; it is removed (and pruned) on every exit:
    success, failure, exception, Ctrl-C or SIGTERM. A SIGKILL leaves it behind, unlocked, for
    `sweep` to remove."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    lock = _hold_lock(scratch)
    path = scratch / "tree"
    with _terminate_as_exit():
        try:
            _git(root, shell, log, environ, "worktree", "add", "--detach", str(path), commit)
            yield path
        finally:
            if path.exists():
                shell(
                    ["git", "worktree", "remove", "--force", str(path)],
                    cwd=root,
                    log=log,
                    env=environ,
                    timeout=600,
                )
            shutil.rmtree(scratch, ignore_errors=True)
            os.close(lock)
            shell(["git", "worktree", "prune"], cwd=root, log=log, env=environ, timeout=600)


def copy_caches(root: Path, tree: Path, paths: Sequence[str]) -> list[str]:
    """Copy each existing path of `paths` from the working tree into the worktree (files and
    dirs; symlinks stay links); returns the ones copied."""
    copied = []
    for relative in paths:
        source, target = root / relative, tree / relative
        if not source.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        copied.append(relative)
    return copied


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

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.regressed]

    def metrics(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "rounds": self.rounds,
            "results": str(self.results),
            "regressions": len(self.regressions),
            "benchmarks": {c.name: c.as_metrics() for c in self.comparisons},
            "only_one_side": self.only_one_side,
            "swept": [str(path) for path in self.swept],
        }


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
) -> BenchReport:
    """Run the selection on `baseline` (a commit, in a worktree) and on the working tree at
    `root` in alternating rounds; store each round's JSON, the table and a summary in `results`.

    `baseline_environ` / `candidate_environ` add variables to one side only (the self-checks use
    them for the test-only slowdown switch)."""
    results.mkdir(parents=True, exist_ok=True)
    swept = sweep(root, shell=shell, log=log, environ=environ)
    base_env = {k: v for k, v in environ.items() if k not in {"VIRTUAL_ENV", settings.slowdown_env}}
    prefix = f"{SCRATCH_PREFIX}{run_id}-" if run_id else SCRATCH_PREFIX
    with worktree(root, baseline, shell=shell, log=log, environ=environ, prefix=prefix) as tree:
        venv = tree.parent / "venv"
        sides = (
            Side(
                "baseline",
                tree,
                {**base_env, "UV_PROJECT_ENVIRONMENT": str(venv), **(baseline_environ or {})},
            ),
            Side("candidate", root, {**environ, **(candidate_environ or {})}),
        )
        missing = missing_paths(tree, root, selection)
        if missing:
            raise BenchError(
                f"the baseline has no benchmarks at {', '.join(missing)}; "
                "pick one that has them with --baseline REV"
            )
        copy_caches(root, tree, settings.copy_to_baseline)
        sync = ["uv", "sync", "--locked", *(f"--group={g}" for g in settings.groups), "--quiet"]
        if shell(sync, cwd=tree, log=log, env=sides[0].environ, timeout=timeout) != 0:
            raise BenchError(f"syncing the baseline's environment failed; see {log}")
        # Per side and benchmark, one list of timings per round.
        samples: dict[str, dict[str, list[list[float]]]] = {"baseline": {}, "candidate": {}}
        for round_ in range(1, settings.rounds + 1):
            for side in sides:
                output = results / f"{side.label}-{round_}.json"
                argv = pytest_argv(selection, output, settings.groups)
                status = shell(argv, cwd=side.cwd, log=log, env=side.environ, timeout=timeout)
                if status in NOTHING_TO_RUN:
                    raise BenchError(
                        f"the {side.label} side has no benchmarks matching {list(selection)} "
                        f"(pytest exit status {status}); see {log}"
                    )
                if status != 0:
                    raise BenchError(
                        f"the benchmarks failed on the {side.label} side in round {round_} "
                        f"(exit status {status}); see {log}"
                    )
                for name, data in read_samples(output).items():
                    samples[side.label].setdefault(name, []).append(data)
    comparisons, only = compare_all(samples["baseline"], samples["candidate"], settings)
    report = BenchReport(baseline, comparisons, only, results, settings.rounds, swept)
    (results / "comparison.txt").write_text(
        render(table(comparisons, settings.confidence, settings.quantile))
    )
    (results / "comparison.json").write_text(json.dumps(report.metrics(), indent=2) + "\n")
    return report
