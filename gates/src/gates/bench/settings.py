"""`[tool.gates.bench]`: what the bench gate compares, how often and how strictly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from gates.errors import ConfigError
from gates.project import gates_table
from gates.tiers import Tiers

DEFAULT_SELECTION = ("bench",)
# Changed paths that run every benchmark (globs relative to the root; `**` spans directories):
# what every benchmark depends on without executing it as Python code of the project. The
# benchmarks' own directories are always added (gates.bench.affected).
DEFAULT_RUN_ALL_ON = ("uv.lock", "**/pyproject.toml", ".python-version", "conftest.py")


@dataclass(frozen=True)
class BenchSettings:
    """`[tool.gates.bench]`: thresholds (a fraction: 0.1 is 10 % slower), rounds, statistics."""

    threshold: float = 0.10
    thresholds: Mapping[str, float] = field(default_factory=dict)
    rounds: int = 5
    # At most this many rounds for a benchmark in doubt (maybe beyond its threshold, not surely:
    # statistics.Comparison.in_doubt): after `rounds`, such benchmarks alone run again,
    # both sides, a round at a time, until none is in doubt.
    max_rounds: int = 15
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    quantile: float = 0.1
    # Per benchmark (test name or node id), its own quantile: 0.5 for one whose timings have
    # two modes, where the fast end flips between them from round to round.
    quantiles: Mapping[str, float] = field(default_factory=dict)
    # The cpu_bound benchmarks' instruction counts (callgrind runs on each side): a ratio
    # candidate / baseline above 1 + this is a regression.
    instruction_threshold: float = 0.02
    # How often each side runs them at most; each benchmark's fewest instructions are compared
    # (a single run can count up to about 2.3 % more, never less: gates.bench.instructions).
    instruction_runs: int = 3
    # How far above its side's lowest count one run may land: the runs stop early once moving
    # either side's counts down by this much could change no verdict.
    instruction_spread: float = 0.025
    # The benchmarks' test-only slowdown switch (`NAME=FACTOR,…`): never passed to the baseline
    # side, and what `gates calibrate` sets to measure the detection rate. "" when none.
    slowdown_env: str = ""
    # Paths (relative to the root) copied from the working tree into the baseline's worktree
    # before its first round: caches that are expensive to rebuild, such as guest images.
    copy_to_baseline: tuple[str, ...] = ()
    # Changed paths (globs) on which the gate runs every benchmark instead of the affected ones.
    run_all_on: tuple[str, ...] = DEFAULT_RUN_ALL_ON
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
            "max_rounds",
            "confidence",
            "resamples",
            "seed",
            "quantile",
            "quantiles",
            "slowdown_env",
            "copy_to_baseline",
            "run_all_on",
            "tier",
            "instruction_threshold",
            "instruction_runs",
            "instruction_spread",
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
        max_rounds = table.get("max_rounds", defaults.max_rounds)
        resamples = table.get("resamples", defaults.resamples)
        seed = table.get("seed", defaults.seed)
        instruction_runs = table.get("instruction_runs", defaults.instruction_runs)
        for key, value, low in (
            ("rounds", rounds, 1),
            ("resamples", resamples, 100),
            ("instruction_runs", instruction_runs, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"[tool.gates.bench] {key} must be an integer >= {low}")
        if "max_rounds" not in table:
            max_rounds = max(max_rounds, rounds)
        if not isinstance(max_rounds, int) or isinstance(max_rounds, bool) or max_rounds < rounds:
            raise ConfigError(
                f"[tool.gates.bench] max_rounds must be an integer >= rounds ({rounds}): the "
                "most rounds a benchmark in doubt gets (set it to rounds for no extra round)"
            )
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError("[tool.gates.bench] seed must be an integer")
        confidence = table.get("confidence", defaults.confidence)
        if not isinstance(confidence, int | float) or not 0.5 <= confidence < 1:
            raise ConfigError("[tool.gates.bench] confidence must be a number in [0.5, 1)")
        quantile = _quantile("quantile", table.get("quantile", defaults.quantile))
        raw = table.get("quantiles", {})
        if not isinstance(raw, dict):
            raise ConfigError(
                "[tool.gates.bench] quantiles must map benchmark names to quantiles, e.g. "
                "{ test_disk_hot_plug = 0.5 }"
            )
        quantiles = {str(k): _quantile(f"quantiles.{k}", v) for k, v in raw.items()}
        slowdown_env = table.get("slowdown_env", defaults.slowdown_env)
        if not isinstance(slowdown_env, str):
            raise ConfigError(
                "[tool.gates.bench] slowdown_env must be an environment variable name"
            )
        instruction_threshold = _fraction(
            "instruction_threshold",
            table.get("instruction_threshold", defaults.instruction_threshold),
        )
        instruction_spread = table.get("instruction_spread", defaults.instruction_spread)
        if (
            not isinstance(instruction_spread, int | float)
            or isinstance(instruction_spread, bool)
            or not 0 <= instruction_spread < 1
        ):
            raise ConfigError(
                "[tool.gates.bench] instruction_spread must be a fraction in [0, 1), e.g. 0.025 "
                "when one run counts up to 2.5 % more than the lowest of its side"
            )
        copies = table.get("copy_to_baseline", list(defaults.copy_to_baseline))
        if not isinstance(copies, list) or not all(_relative(p) for p in copies):
            raise ConfigError(
                "[tool.gates.bench] copy_to_baseline must be a list of paths relative to the "
                'project root, e.g. [".cache/images"]'
            )
        run_all_on = table.get("run_all_on", list(defaults.run_all_on))
        if not isinstance(run_all_on, list) or not all(_relative(p) for p in run_all_on):
            raise ConfigError(
                "[tool.gates.bench] run_all_on must be a list of path globs relative to the "
                'project root, e.g. ["uv.lock", "**/pyproject.toml", "testkit/bench.py"]'
            )
        return cls(
            threshold=threshold,
            thresholds=thresholds,
            rounds=rounds,
            max_rounds=max_rounds,
            confidence=float(confidence),
            resamples=resamples,
            seed=seed,
            quantile=quantile,
            quantiles=quantiles,
            instruction_threshold=instruction_threshold,
            instruction_runs=instruction_runs,
            instruction_spread=float(instruction_spread),
            slowdown_env=slowdown_env,
            copy_to_baseline=tuple(copies),
            run_all_on=tuple(run_all_on),
        )

    def threshold_for(self, name: str) -> float:
        """The benchmark's own threshold (by test name or full node id), else the default."""
        short = name.rsplit("::", 1)[-1]
        return self.thresholds.get(name, self.thresholds.get(short, self.threshold))

    def quantile_for(self, name: str) -> float:
        """The benchmark's own quantile (by test name or full node id), else the default."""
        short = name.rsplit("::", 1)[-1]
        return self.quantiles.get(name, self.quantiles.get(short, self.quantile))


def _quantile(key: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 0.5:
        raise ConfigError(f"[tool.gates.bench] {key} must be a number in [0, 0.5]")
    return float(value)


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
