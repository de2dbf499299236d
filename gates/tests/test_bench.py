"""The benchmark gate: statistics, settings, results parsing, the worktree's lifecycle, and the
check end to end with a shell that stands in for pytest-benchmark (git runs for real)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from gates_testing import callgrind_dump, git, pipeline_toml
from rich.console import Console

from gates import cli
from gates.bench import compare as comparison
from gates.bench import statistics
from gates.bench import worktree as scratch
from gates.bench.compare import BenchError
from gates.bench.instructions import INSTRUCTIONS_VARIABLE, WINDOWS_FILE
from gates.bench.settings import BenchSettings
from gates.bench.statistics import compare
from gates.checks import CHECKS
from gates.engine.execution import GateContext, GateResult, real_shell
from gates.engine.history import History, Record
from gates.engine.pipeline import Pipeline
from gates.engine.runner import run_gate
from gates.errors import ConfigError, GitError

RECORDED = Path(__file__).parent / "fixtures" / "pytest-benchmark.json"


def samples(median: float, count: int = 60, spread: float = 0.05, seed: int = 1) -> list[float]:
    """Timings around `median` with multiplicative noise of about `spread`."""
    rng = random.Random(seed)  # noqa: S311 - reproducible noise, not secrecy
    return [median * (1 + rng.uniform(-spread, spread)) for _ in range(count)]


# ---------------------------------------------------------------- statistics


def test_identical_samples_are_no_regression() -> None:
    data = samples(0.010)
    result = compare("test_a", [data], [list(data)], threshold=0.10)
    assert result.ratio == pytest.approx(1.0)
    assert result.low <= 1.0 <= result.high
    assert result.verdict == "same"
    assert not result.regressed


def test_a_25_percent_slowdown_is_caught_with_the_interval_above_the_threshold() -> None:
    baseline = samples(0.010, seed=1)
    slower = [x * 1.25 for x in samples(0.010, seed=2)]
    result = compare("test_a", [baseline], [slower], threshold=0.10)
    assert result.ratio == pytest.approx(1.25, rel=0.05)
    assert result.low > 1.10
    assert result.verdict == "slower"
    assert result.regressed


def test_noisy_but_equal_sides_are_no_regression() -> None:
    baseline = samples(0.010, spread=0.4, seed=3)
    candidate = samples(0.010, spread=0.4, seed=4)
    result = compare("test_a", [baseline], [candidate], threshold=0.10)
    assert result.verdict == "same"


def test_a_slowdown_below_the_threshold_passes() -> None:
    baseline = samples(0.010, seed=5)
    candidate = [x * 1.05 for x in samples(0.010, seed=6)]
    result = compare("test_a", [baseline], [candidate], threshold=0.10)
    assert result.ratio > 1.0
    assert not result.regressed


def test_a_clear_speedup_is_reported_as_faster() -> None:
    baseline = samples(0.010, seed=7)
    candidate = [x * 0.5 for x in samples(0.010, seed=8)]
    assert compare("test_a", [baseline], [candidate], threshold=0.10).verdict == "faster"


def test_load_on_one_side_does_not_hide_a_slowdown_of_the_low_quantile() -> None:
    """Contention only adds time: half the baseline's rounds ran 2-3 times slower (a busy
    machine), which drags its median up; its 10 % quantile still shows the true cost."""
    rng = random.Random(11)  # noqa: S311 - reproducible noise, not secrecy
    baseline = [x * (rng.uniform(2, 3) if i % 2 else 1) for i, x in enumerate(samples(1e-4))]
    candidate = [x * 1.25 for x in samples(1e-4, seed=12)]
    assert compare("test_a", [baseline], [candidate], threshold=0.1, q=0.5).verdict != "slower"
    assert compare("test_a", [baseline], [candidate], threshold=0.1, q=0.1).verdict == "slower"


def rounds(levels: Sequence[float], factor: float = 1.0, seed: int = 20) -> list[list[float]]:
    """One list of timings per round, each round at its own level (the machine's load then)."""
    return [
        [x * factor for x in samples(level, 20, spread=0.05, seed=seed + i)]
        for i, level in enumerate(levels)
    ]


# The machine's load moved between rounds; both runs of a round saw the same load.
DRIFT = [0.010, 0.016, 0.012, 0.020, 0.011]


def test_drift_between_rounds_hits_both_sides_alike_and_is_no_regression() -> None:
    result = compare("test_a", rounds(DRIFT, seed=1), rounds(DRIFT, seed=50), threshold=0.10)
    assert result.ratio == pytest.approx(1.0, abs=0.03)
    assert result.verdict == "same"


def test_a_25_percent_slowdown_under_drift_is_caught_round_by_round() -> None:
    result = compare("test_a", rounds(DRIFT, seed=1), rounds(DRIFT, 1.25, seed=50), threshold=0.10)
    assert result.ratio == pytest.approx(1.25, rel=0.03)
    assert result.verdict == "slower"


def test_one_lucky_round_on_one_side_widens_the_interval_instead_of_deciding() -> None:
    """Pooling every round's timings lets one fast round set the candidate's 10 % quantile: the
    candidate's first run happened to find the machine idle while its baseline partner did not.
    Round by round, that is one ratio of five, and the interval shows the doubt."""
    baseline = rounds([0.020, 0.020, 0.020, 0.020, 0.020], seed=1)
    candidate = rounds([0.012, 0.020, 0.020, 0.020, 0.020], seed=50)
    pooled = compare(
        "test_a",
        [[x for r in baseline for x in r]],
        [[x for r in candidate for x in r]],
        threshold=0.10,
    )
    assert pooled.verdict == "faster"  # what a pooled comparison would claim
    result = compare("test_a", baseline, candidate, threshold=0.10)
    assert result.verdict == "same"
    assert result.low < 1 / 1.1 < result.high


@pytest.mark.parametrize(
    ("ratio", "low", "high", "doubt", "verdict"),
    [
        (1.25, 1.05, 1.40, True, "same"),  # estimated beyond the threshold, not surely
        (1.25, 1.11, 1.40, False, "slower"),  # surely beyond it: decided
        (1.08, 0.95, 1.20, False, "same"),  # estimated within it, maybe not slower at all
        (1.09, 1.02, 1.18, True, "same"),  # surely slower, maybe beyond the threshold
        (1.05, 1.01, 1.09, False, "same"),  # surely slower, surely within the threshold
        (0.80, 0.70, 0.85, False, "faster"),
    ],
)
def test_a_benchmark_is_in_doubt_when_maybe_but_not_surely_beyond_its_threshold(
    ratio: float, low: float, high: float, doubt: bool, verdict: str
) -> None:
    found = statistics.Comparison("t", 1.0, ratio, ratio, low, high, threshold=0.10)
    assert (found.in_doubt, found.verdict) == (doubt, verdict)


def test_quantile_interpolates_between_samples() -> None:
    assert statistics.quantile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert statistics.quantile([4.0, 1.0, 3.0, 2.0], 0.0) == 1.0
    assert statistics.quantile([7.0], 0.1) == 7.0


def test_the_same_samples_always_give_the_same_interval() -> None:
    baseline, candidate = samples(0.01, seed=9), samples(0.011, seed=10)
    first = compare("test_a", [baseline], [candidate], threshold=0.1)
    assert compare("test_a", [baseline], [candidate], threshold=0.1) == first


def test_a_side_without_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="no round with samples on both sides"):
        compare("test_a", [[]], [[1.0]], threshold=0.1)


def test_compare_all_uses_per_benchmark_thresholds_and_names_one_sided_benchmarks() -> None:
    settings = BenchSettings(threshold=0.10, thresholds={"test_loose": 0.5})
    baseline = {"b.py::test_loose": [samples(1.0)], "b.py::test_old": [samples(1.0)]}
    candidate = {
        "b.py::test_loose": [[x * 1.25 for x in samples(1.0, seed=2)]],
        "b.py::test_new": [samples(1.0)],
    }
    comparisons, only = statistics.compare_all(baseline, candidate, settings)
    assert [(c.name, c.threshold, c.verdict) for c in comparisons] == [
        ("b.py::test_loose", 0.5, "same")
    ]
    assert only == ["b.py::test_new", "b.py::test_old"]


# ---------------------------------------------------------------- settings


def test_settings_defaults_and_per_benchmark_thresholds() -> None:
    settings = BenchSettings.from_table({"threshold": 0.2, "thresholds": {"test_x": 0.3}})
    assert (settings.rounds, settings.confidence, settings.quantile) == (5, 0.95, 0.1)
    assert settings.max_rounds == 15
    assert settings.threshold_for("bench/test_a.py::test_x") == 0.3
    assert settings.threshold_for("bench/test_a.py::test_y") == 0.2


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"treshold": 0.1}, "unknown keys"),
        ({"threshold": 10}, "threshold must be a fraction"),
        ({"thresholds": {"test_x": "10%"}}, "thresholds.test_x must be a fraction"),
        ({"thresholds": [1]}, "thresholds must map"),
        ({"rounds": 0}, "rounds must be an integer >= 1"),
        ({"rounds": 6, "max_rounds": 5}, r"max_rounds must be an integer >= rounds \(6\)"),
        ({"max_rounds": 2.5}, r"max_rounds must be an integer >= rounds \(5\)"),
        ({"resamples": 10}, "resamples must be an integer >= 100"),
        ({"confidence": 1.0}, "confidence must be"),
        ({"seed": "x"}, "seed must be an integer"),
        ({"quantile": 0.9}, "quantile must be a number in"),
        ({"quantiles": {"test_x": 0.7}}, r"quantiles.test_x must be a number in \[0, 0.5\]"),
        ({"quantiles": [0.5]}, "quantiles must map benchmark names to quantiles"),
    ],
)
def test_bad_settings_say_what_is_allowed(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BenchSettings.from_table(table)


def bimodal(count: int, seed: int, factor: float = 1.0) -> list[float]:
    """Timings with two modes, 50 and 100 ms; about a tenth of them in the fast one, so a 10 %
    quantile lands in either mode from round to round."""
    rng = random.Random(seed)  # noqa: S311 - reproducible noise, not secrecy
    return [
        factor * (0.05 if rng.random() < 0.1 else 0.1) * rng.uniform(0.98, 1.02)
        for _ in range(count)
    ]


def test_a_benchmark_with_two_modes_is_compared_by_its_own_quantile() -> None:
    """A 25 % slowdown of a benchmark whose fast end flips between its two modes: its 10 %
    quantiles scatter too much to be sure of anything, its medians show the slowdown."""
    settings = BenchSettings.from_table({"quantiles": {"test_plug": 0.5}})
    assert settings.quantile_for("bench/test_q.py::test_plug") == 0.5
    assert settings.quantile_for("bench/test_q.py::test_other") == 0.1
    baseline = [bimodal(10, seed=i) for i in range(5)]
    candidate = [bimodal(10, seed=50 + i, factor=1.25) for i in range(5)]
    by_fast_end = compare("test_plug", baseline, candidate, threshold=0.1, q=0.1)
    assert by_fast_end.verdict == "same"
    [by_median], _ = statistics.compare_all(
        {"bench/test_q.py::test_plug": baseline},
        {"bench/test_q.py::test_plug": candidate},
        settings,
    )
    assert by_median.verdict == "slower"
    assert by_median.ratio == pytest.approx(1.25, rel=0.03)


def test_max_rounds_is_at_least_the_rounds_when_not_set() -> None:
    assert BenchSettings.from_table({"rounds": 20}).max_rounds == 20
    assert BenchSettings.from_table({"rounds": 3, "max_rounds": 3}).max_rounds == 3


def test_the_repository_declares_a_valid_bench_gate() -> None:
    root = Path(__file__).parents[2]
    BenchSettings.load(root)
    gates = Pipeline.load(root).phase("bench").gates
    assert [(g.name, g.target) for g in gates] == [("compare", "bench")]


# ---------------------------------------------------------------- results


def test_read_samples_from_a_recorded_pytest_benchmark_file() -> None:
    found = comparison.read_samples(RECORDED)
    assert sorted(found) == ["test_tiny.py::test_sorted", "test_tiny.py::test_sum"]
    assert len(found["test_tiny.py::test_sum"]) == 5
    assert all(isinstance(x, float) and x > 0 for x in found["test_tiny.py::test_sum"])


def test_an_unreadable_results_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"benchmarks": [{"name": "x"}]}')
    with pytest.raises(BenchError, match="cannot read benchmark results"):
        comparison.read_samples(broken)


def test_the_table_shows_every_column_and_verdict() -> None:
    rows = [
        compare("b.py::test_same", [samples(0.002)], [samples(0.002, seed=2)], threshold=0.1),
        compare("b.py::test_slow[x]", [samples(3e-6)], [samples(4e-6, seed=2)], threshold=0.1),
    ]
    text = comparison.render(comparison.table(rows, 0.95, 0.1))
    for expected in ("10% quantiles", "change", "ratio", "95% interval", "verdict", "+10%"):
        assert expected in text
    assert "test_slow[x]" in text
    assert "same" in text
    assert "slower" in text
    assert "ms" in text
    assert "µs" in text
    assert "rounds" in text
    own = comparison.render(comparison.table(rows, 0.95, 0.1, {"b.py::test_slow[x]": 0.5}))
    assert "(10% quantiles; medians of test_slow[x])" in own


# ---------------------------------------------------------------- the worktree


def worktrees(root: Path) -> list[str]:
    return [
        line
        for line in git(root, "worktree", "list", "--porcelain").splitlines()
        if "worktree" in line
    ]


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    return make_repo({"README.md": "hello\n"})


def open_worktree(repo: Path, tmp_path: Path, commit: str = "HEAD") -> AbstractContextManager[Path]:
    return scratch.worktree(
        repo, commit, shell=real_shell, log=tmp_path / "git.log", environ=dict(os.environ)
    )


def test_the_worktree_holds_the_commit_and_is_removed_after_success(
    repo: Path, tmp_path: Path
) -> None:
    with open_worktree(repo, tmp_path) as tree:
        assert (tree / "README.md").read_text() == "hello\n"
        assert len(worktrees(repo)) == 2
    assert not tree.parent.exists()
    assert len(worktrees(repo)) == 1


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_the_worktree_is_removed_when_the_run_fails_or_is_interrupted(
    repo: Path, tmp_path: Path, error: BaseException
) -> None:
    trees: list[Path] = []

    def fail_inside() -> None:
        with open_worktree(repo, tmp_path) as tree:
            trees.append(tree)
            (tree / "scratch.txt").write_text("left behind?")
            raise error

    with pytest.raises(type(error)):
        fail_inside()
    assert not trees[0].parent.exists()
    assert len(worktrees(repo)) == 1


def test_sigterm_removes_the_worktree_and_the_handler_is_restored(
    repo: Path, tmp_path: Path
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    trees: list[Path] = []

    def terminated_inside() -> None:
        with open_worktree(repo, tmp_path) as tree:
            trees.append(tree)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this at once

    with pytest.raises(SystemExit) as exit_info:
        terminated_inside()
    assert exit_info.value.code == 128 + signal.SIGTERM
    assert not trees[0].parent.exists()
    assert len(worktrees(repo)) == 1
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_commit_that_does_not_exist_raises_and_leaves_nothing(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="worktree add"), open_worktree(repo, tmp_path, "nope"):
        pass  # pragma: no cover - never entered
    assert len(worktrees(repo)) == 1


# ---------------------------------------------------------------- the check, end to end


SWITCH = "DEMO_BENCH_SLOWDOWN"  # the demo project's test-only slowdown switch


class BenchShell:
    """Runs git for real; stands in for `uv sync` and for pytest-benchmark, writing results
    whose timings are `slowdown` times longer on the candidate side, and longer still for the
    benchmarks the side's SWITCH (NAME=FACTOR,...) names, as testkit/bench.py does."""

    def __init__(
        self,
        root: Path,
        *,
        slowdown: float = 1.0,
        fail_on: str = "",
        status: int = 1,
        instructions: Mapping[str, int] | None = None,
        noise: Mapping[tuple[str, int], float] | None = None,
        candidate_rounds: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.root = root
        # Per benchmark, a factor on the candidate's timings in its 1st, 2nd, … run (the last
        # one repeats): the level of a noisy benchmark moving from round to round.
        self.candidate_rounds = candidate_rounds or {}
        self.runs: dict[tuple[str, str], int] = {}  # (side, benchmark): its runs so far
        # Per side and instruction run (1, 2, …), a factor on that run's counts: a run that
        # counted more than the side's quietest one.
        self.noise = noise or {}
        # Per cpu_bound benchmark, the instructions of its window on the baseline; the
        # candidate's are `slowdown` times as many. None: the selection has no cpu_bound ones.
        self.instructions = instructions
        self.instruction_runs: list[tuple[str, Mapping[str, str]]] = []
        self.slowdown = slowdown
        self.fail_on = fail_on
        self.status = status
        self.sides: list[str] = []
        self.environs: list[Mapping[str, str]] = []
        self.synced_trees: list[Path] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        log: Path,
        env: Mapping[str, str],
        timeout: float | None,
    ) -> int:
        if argv[0] == "git":
            return real_shell(argv, cwd=cwd, log=log, env=env, timeout=timeout)
        side = "candidate" if cwd == self.root else "baseline"
        if argv[:2] == ["uv", "sync"]:
            assert env["UV_PROJECT_ENVIRONMENT"].endswith("venv")
            self.synced_trees.append(cwd)
            return 0
        if "--collect-only" in argv:
            assert side == "candidate"
            return 5 if self.instructions is None else 0
        if "valgrind" in argv:
            self.instruction_runs.append((side, env))
            return self.count(side, Path(env[INSTRUCTIONS_VARIABLE]), env)
        self.sides.append(side)
        self.environs.append(env)
        if side == self.fail_on:
            return self.status
        output = Path(next(a for a in argv if a.startswith("--benchmark-json=")).split("=", 1)[1])
        factor = self.slowdown if side == "candidate" else 1.0
        switch = self.switch(env)
        round_ = len(self.sides)
        chosen = [a.split("::", 1)[1] for a in argv if a.startswith("bench/test_x.py::")]
        benchmarks = []
        for name, base in (("test_fast", 1e-4), ("test_slow", 2e-2)):
            if chosen and name not in chosen:
                continue
            run = self.runs[side, name] = self.runs.get((side, name), 0) + 1
            levels = self.candidate_rounds.get(name, [1.0]) if side == "candidate" else [1.0]
            level = factor * switch.get(name, 1.0) * levels[min(run, len(levels)) - 1]
            data = [x * level for x in samples(base, 20, seed=round_)]
            benchmarks.append({"fullname": f"bench/test_x.py::{name}", "stats": {"data": data}})
        output.write_text(json.dumps({"benchmarks": benchmarks}))
        return 0

    @staticmethod
    def switch(env: Mapping[str, str]) -> dict[str, float]:
        """The side's slowdown switch, as testkit/bench.py reads it (NAME=FACTOR,...)."""
        return {
            name: float(value)
            for name, _, value in (e.partition("=") for e in env.get(SWITCH, "").split(",") if e)
        }

    def count(self, side: str, directory: Path, env: Mapping[str, str]) -> int:
        """What callgrind and testkit's `measure` leave: numbered dumps and the sidecar."""
        assert self.instructions is not None
        factor = self.slowdown if side == "candidate" else 1.0
        factor *= self.noise.get((side, int(directory.name.removeprefix("run-"))), 1.0)
        switch = self.switch(env)
        for n, (name, count) in enumerate(self.instructions.items(), start=1):
            with (directory / WINDOWS_FILE).open("a") as sidecar:
                sidecar.write(f"bench/test_x.py::{name}\n")
            dump = directory / f"callgrind.out.4242.{n}"
            dump.write_text(callgrind_dump(round(count * factor * switch.get(name, 1.0))))
        (directory / "callgrind.out.4242").write_text(callgrind_dump(0))
        return 0


BENCH_PROJECT = (
    pipeline_toml(
        {"unit": ["name = 'ok', run = ['true']"], "bench": ["name = 'compare', check = 'bench'"]},
        green=["unit"],
    )
    + "\n[tool.gates.bench]\nrounds = 2\nresamples = 500\n"
)


def two_commits(root: Path) -> Path:
    """A second commit on top of the project's first, so HEAD~1 can be the baseline."""
    (root / "CHANGES").write_text("a change to compare\n")
    git(root, "add", "CHANGES")
    git(root, "commit", "-qm", "the candidate")
    return root


def run_bench(root: Path, shell: BenchShell, baseline: str | None = "HEAD~1") -> GateContext:
    """The comparison itself: every benchmark (test_bench_affected.py tests the selection)."""
    return GateContext(
        root=root,
        run_dir=root / ".gates" / "runs" / "r1",
        shell=shell,
        environ={"PATH": os.environ["PATH"], "VIRTUAL_ENV": "/elsewhere"},
        baseline=baseline,
        all_benchmarks=True,
    )


def test_comparing_with_an_equally_fast_baseline_passes_and_stores_the_results(
    make_project: Callable[..., Path],
) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    shell = BenchShell(root)
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, run_bench(root, shell), CHECKS)
    assert result.outcome == "passed", result.summary
    assert "2 benchmarks, 2 rounds" in result.summary
    assert "no regression" in result.summary
    assert shell.sides == ["baseline", "candidate", "baseline", "candidate"]
    assert "/gates-bench-r1-" in shell.environs[0]["UV_PROJECT_ENVIRONMENT"]
    assert "VIRTUAL_ENV" not in shell.environs[0]
    stored = root / ".gates" / "bench" / "r1"
    assert sorted(p.name for p in stored.iterdir()) == [
        "baseline-1.json",
        "baseline-2.json",
        "candidate-1.json",
        "candidate-2.json",
        "comparison.json",
        "comparison.txt",
    ]
    assert result.metrics["regressions"] == 0
    assert result.metrics["baseline"] == git(root, "rev-parse", "HEAD~1").strip()
    head, parent = (git(root, "rev-parse", "--short=12", r).strip() for r in ("HEAD", "HEAD~1"))
    assert result.summary.startswith(f"candidate {head} against {parent} (--baseline): ")
    assert set(result.metrics["benchmarks"]) == {
        "bench/test_x.py::test_fast",
        "bench/test_x.py::test_slow",
    }
    assert any("test_slow" in line for line in result.key_output)
    assert len(worktrees(root)) == 1


def test_cpu_bound_benchmarks_are_counted_until_no_verdict_can_change_and_the_fewest_compared(
    make_project: Callable[..., Path],
) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    # The candidate's first two runs counted more (+3 %, then +2.5 %), the baseline's second
    # +1 %: after one round or two, the ratio (1.03, then 1.025) could still be "same" or
    # "slower", so a third round runs; the first runs alone, or the fewest after two rounds,
    # would have said slower.
    noise = {("candidate", 1): 1.03, ("candidate", 2): 1.025, ("baseline", 2): 1.01}
    shell = BenchShell(root, instructions={"test_fast": 1_000_000}, noise=noise)
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, run_bench(root, shell), CHECKS)
    assert result.outcome == "passed", result.summary
    assert "2 rounds, 1 instruction counts: no regression" in result.summary
    sides = sorted(side for side, _ in shell.instruction_runs)
    assert sides == ["baseline"] * 3 + ["candidate"] * 3
    baseline_env = next(env for side, env in shell.instruction_runs if side == "baseline")
    assert baseline_env["PYTHONHASHSEED"] == "0"
    assert "/gates-bench-r1-" in baseline_env["UV_PROJECT_ENVIRONMENT"]
    stored_runs = root / ".gates" / "bench" / "r1" / "baseline-instructions"
    runs = sorted(p.name for p in stored_runs.iterdir() if p.is_dir())
    assert runs == ["run-1", "run-2", "run-3"]
    log = (root / ".gates" / "runs").glob("*/bench-*.log")
    assert any("instruction runs made: baseline 3, candidate 3" in f.read_text() for f in log)
    counted = result.metrics["instructions"]["bench/test_x.py::test_fast"]
    assert (counted["baseline"], counted["candidate"], counted["verdict"]) == (
        1_000_000,
        1_000_000,
        "same",
    )
    stored = root / ".gates" / "bench" / "r1"
    assert "instructions (callgrind Ir)" in (stored / "comparison.txt").read_text()
    stored_json = json.loads((stored / "comparison.json").read_text())
    assert "bench/test_x.py::test_fast" in stored_json["instructions"]
    assert any("1,000,000" in line for line in result.key_output)


def test_no_instruction_run_counts_under_a_coverage_tracer_the_gate_inherited(
    make_project: Callable[..., Path],
) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    shell = BenchShell(root, instructions={"test_fast": 1_000_000})
    gate = Pipeline.load(root).phase("bench").gates[0]
    ctx = run_bench(root, shell)
    tracers = {"COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START"}
    ctx.environ = {**ctx.environ, **dict.fromkeys(tracers, "x")}
    result = run_gate(gate, ctx, CHECKS)
    assert result.outcome == "passed", result.summary
    counted = [env for _, env in shell.instruction_runs]
    # Three rounds: "same" never settles early (the default spread is wider than the threshold).
    assert len(counted) == 6
    assert not [env for env in counted if {*env} & tracers]
    # The timed rounds keep the caller's environment: a tracer slows both sides alike.
    assert len(shell.environs) == 4
    assert all(tracers <= {*env} for env in shell.environs)


def test_five_percent_more_instructions_fail_the_gate_even_when_wall_time_hides_it(
    make_project: Callable[..., Path],
) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    shell = BenchShell(root, slowdown=1.05, instructions={"test_fast": 1_000_000})
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, run_bench(root, shell), CHECKS)
    assert result.outcome == "failed"
    assert "1 slower (test_fast (instructions))" in result.summary
    assert result.metrics["regressions"] == 1
    assert result.metrics["instructions"]["bench/test_x.py::test_fast"]["ratio"] == 1.05
    # Five percent more is slower whatever more runs could find: one round per side.
    assert sorted(side for side, _ in shell.instruction_runs) == ["baseline", "candidate"]


def test_without_valgrind_cpu_bound_benchmarks_fail_the_gate_with_the_install_command(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    shell = BenchShell(root, instructions={"test_fast": 1})
    context = run_bench(root, shell)
    git_dir = Path(subprocess.check_output(["which", "git"], text=True).strip()).parent
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "git").symlink_to(git_dir / "git")
    context.environ = {**context.environ, "PATH": str(tmp_path / "bin")}
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, context, CHECKS)
    assert result.outcome == "failed"
    assert "apt-get install valgrind" in result.summary
    assert shell.instruction_runs == []


def test_a_25_percent_slower_candidate_fails_the_gate(make_project: Callable[..., Path]) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, run_bench(root, BenchShell(root, slowdown=1.25)), CHECKS)
    assert result.outcome == "failed"
    assert "2 slower (test_fast, test_slow)" in result.summary
    for metrics in result.metrics["benchmarks"].values():
        assert metrics["verdict"] == "slower"
        assert metrics["low"] > 1.10
    assert len(worktrees(root)) == 1


def doubt_project(make_project: Callable[..., Path], max_rounds: int = 8) -> Path:
    return two_commits(make_project(BENCH_PROJECT + f"max_rounds = {max_rounds}\n"))


def rounds_run(shell: BenchShell, name: str) -> tuple[int, int]:
    return shell.runs.get(("baseline", name), 0), shell.runs.get(("candidate", name), 0)


def compare_in_doubt(
    make_project: Callable[..., Path], levels: Sequence[float], max_rounds: int = 8
) -> tuple[Path, BenchShell, GateResult, dict[str, Any]]:
    """The gate on a project with 2 rounds, test_slow's candidate at `levels` round by round:
    the project, the shell, the gate's result and test_slow's figures."""
    root = doubt_project(make_project, max_rounds)
    shell = BenchShell(root, candidate_rounds={"test_slow": levels})
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, run_bench(root, shell), CHECKS)
    return root, shell, result, result.metrics["benchmarks"]["bench/test_x.py::test_slow"]


def test_a_slowdown_in_doubt_after_the_rounds_runs_again_alone_until_surely_slower(
    make_project: Callable[..., Path],
) -> None:
    """test_slow's candidate came out 1.05 then 1.50 times slower (about 1.25 on the whole, but
    the interval reaches down to 1.05): it alone runs more rounds, at its true 1.25, until its
    interval clears the threshold."""
    root, shell, result, slow = compare_in_doubt(make_project, [1.05, 1.50, 1.25])
    assert result.outcome == "failed", result.summary
    assert (slow["verdict"], slow["low"] > 1.10) == ("slower", True)
    assert 2 < slow["rounds"] <= 8
    assert rounds_run(shell, "test_slow") == (slow["rounds"], slow["rounds"])
    assert rounds_run(shell, "test_fast") == (2, 2)  # decided after the rounds: never again
    assert result.metrics["benchmarks"]["bench/test_x.py::test_fast"]["rounds"] == 2
    assert f"2 rounds (up to {slow['rounds']} for 1 in doubt)" in result.summary
    assert "1 slower (test_slow)" in result.summary
    log = (root / ".gates" / "runs" / "r1" / "bench-compare.log").read_text()
    assert "round 3 of at most 8, in doubt: test_slow" in log
    stored = root / ".gates" / "bench" / "r1"
    assert (stored / f"candidate-{slow['rounds']}.json").is_file()
    assert len(worktrees(root)) == 1


def test_a_slowdown_estimated_within_the_threshold_but_surely_slower_runs_again_until_caught(
    make_project: Callable[..., Path],
) -> None:
    """test_slow's candidate came out 1.02 then 1.16 times slower: about 1.09 on the whole, within
    the 10 % threshold, but surely slower than the baseline, and maybe by more than 10 %. It runs
    more rounds, at its true 1.25, until its interval clears the threshold."""
    _, shell, result, slow = compare_in_doubt(make_project, [1.02, 1.16, 1.25])
    assert result.outcome == "failed", result.summary
    assert (slow["verdict"], slow["low"] > 1.10) == ("slower", True)
    assert 2 < slow["rounds"] <= 8
    assert rounds_run(shell, "test_slow") == (slow["rounds"], slow["rounds"])
    assert rounds_run(shell, "test_fast") == (2, 2)


def test_one_unlucky_round_puts_a_benchmark_in_doubt_and_more_rounds_clear_it(
    make_project: Callable[..., Path],
) -> None:
    """The candidate's second round met a busy machine (1.8 times slower); the rounds after it
    bring the estimate back under the threshold, and the verdict is "same"."""
    _, _, result, slow = compare_in_doubt(make_project, [1.0, 1.8, 1.0])
    assert result.outcome == "passed", result.summary
    assert slow["verdict"] == "same"
    assert slow["ratio"] <= 1.10
    assert 2 < slow["rounds"] < 8  # stopped once no longer in doubt, before the most allowed


def test_max_rounds_bounds_the_rounds_of_a_benchmark_still_in_doubt(
    make_project: Callable[..., Path],
) -> None:
    _, shell, result, slow = compare_in_doubt(make_project, [1.0, 1.8, 1.0, 1.0, 1.0], 3)
    assert (slow["rounds"], slow["verdict"]) == (3, "same")
    assert slow["ratio"] > 1.10  # still in doubt: the gate does not fail on doubt
    assert result.outcome == "passed"
    assert rounds_run(shell, "test_slow") == (3, 3)


@pytest.mark.parametrize("side", ["baseline", "candidate"])
def test_a_side_whose_benchmarks_fail_fails_the_gate_and_removes_the_worktree(
    make_project: Callable[..., Path], side: str
) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, run_bench(root, BenchShell(root, fail_on=side)), CHECKS)
    assert result.outcome == "failed"
    assert f"failed on the {side} side in round 1" in result.summary
    assert len(worktrees(root)) == 1


def test_a_baseline_without_the_benchmarks_is_named(make_project: Callable[..., Path]) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    gate = Pipeline.load(root).phase("bench").gates[0]
    shell = BenchShell(root, fail_on="baseline", status=4)
    result = run_gate(gate, run_bench(root, shell), CHECKS)
    assert result.outcome == "failed"
    assert "the baseline side has no benchmarks matching ['bench']" in result.summary
    assert len(worktrees(root)) == 1


def test_a_baseline_that_lacks_the_selected_paths_fails_before_running(
    make_project: Callable[..., Path],
) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    (root / "bench").mkdir()  # only the working tree has the benchmarks
    gate = Pipeline.load(root).phase("bench").gates[0]
    shell = BenchShell(root)
    result = run_gate(gate, run_bench(root, shell), CHECKS)
    assert result.outcome == "failed"
    assert "the baseline has no benchmarks at bench;" in result.summary
    assert shell.sides == []
    assert len(worktrees(root)) == 1


def test_missing_paths_are_those_only_the_candidate_has(tmp_path: Path) -> None:
    baseline, candidate = tmp_path / "baseline", tmp_path / "candidate"
    for side in (baseline, candidate):
        (side / "bench").mkdir(parents=True)
    (candidate / "bench" / "test_new.py").write_text("")
    selection = ["bench", "bench/test_new.py::test_x", "-k", "fast", "nowhere/test_b.py"]
    assert comparison.missing_paths(baseline, candidate, selection) == ["bench/test_new.py"]


def test_without_a_green_commit_or_baseline_the_gate_is_skipped(
    make_project: Callable[..., Path],
) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, run_bench(root, BenchShell(root), baseline=None), CHECKS)
    assert result.outcome == "skipped"
    assert "--baseline REV" in result.summary


def test_the_newest_green_ancestor_is_the_default_baseline_never_head_itself(
    make_project: Callable[..., Path],
) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    history = History(root / ".gates" / "history.jsonl")
    head, parent = (git(root, "rev-parse", rev).strip() for rev in ("HEAD", "HEAD~1"))
    gate = Pipeline.load(root).phase("bench").gates[0]
    # HEAD went green in this very run (as deps/static/unit make it before bench): no baseline.
    history.append(Record("r0", "t", head, False, "", "unit", "ok", "passed", 0.1))
    result = run_gate(gate, run_bench(root, BenchShell(root), baseline=None), CHECKS)
    assert result.outcome == "skipped", result.summary
    assert "no green commit before" in result.summary
    # Once its parent is green too, the parent is the baseline.
    history.append(Record("r0", "t", parent, False, "", "unit", "ok", "passed", 0.1))
    result = run_gate(gate, run_bench(root, BenchShell(root), baseline=None), CHECKS)
    assert result.outcome == "passed", result.summary
    assert result.metrics["baseline"] == parent
    assert "(newest green ancestor)" in result.summary


def test_an_unknown_baseline_fails_with_its_name(make_project: Callable[..., Path]) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, run_bench(root, BenchShell(root), baseline="no-such-rev"), CHECKS)
    assert result.outcome == "failed"
    assert "'no-such-rev' names no commit" in result.summary


def test_the_cli_hands_baseline_to_the_gate(make_project: Callable[..., Path]) -> None:
    root = two_commits(make_project(BENCH_PROJECT))
    quiet = Console(file=StringIO())
    run = cli.execute(root, only="bench", baseline="no-such-rev", console=quiet)
    [(gate, result)] = run.results
    assert gate.key == "bench/compare"
    assert "'no-such-rev' names no commit" in result.summary


SWITCHED_PROJECT = (
    BENCH_PROJECT + f'slowdown_env = "{SWITCH}"\ncopy_to_baseline = [".cache/images"]\n'
)


def test_the_slowdown_switch_reaches_only_the_candidate_and_the_gate_names_the_benchmark(
    make_project: Callable[..., Path],
) -> None:
    root = two_commits(make_project(SWITCHED_PROJECT))
    gate = Pipeline.load(root).phase("bench").gates[0]
    ctx = run_bench(root, BenchShell(root))
    ctx.environ = {**ctx.environ, SWITCH: "test_slow=1.25"}
    shell = ctx.shell
    assert isinstance(shell, BenchShell)
    result = run_gate(gate, ctx, CHECKS)
    assert result.outcome == "failed"
    assert "1 slower (test_slow)" in result.summary
    assert result.metrics["benchmarks"]["bench/test_x.py::test_fast"]["verdict"] == "same"
    for side, environ in zip(shell.sides, shell.environs, strict=True):
        assert (SWITCH in environ) == (side == "candidate")


def test_the_configured_caches_are_copied_into_the_baseline_before_it_syncs(
    make_project: Callable[..., Path],
) -> None:
    root = two_commits(make_project(SWITCHED_PROJECT))
    cache = root / ".cache" / "images"
    cache.mkdir(parents=True)
    (cache / "tiny.img").write_bytes(b"\x00image")
    (root / ".gitignore").write_text("/.gates/\n/.cache/\n")
    git(root, "commit", "-qam", "ignore the cache")
    shell = BenchShell(root)
    seen: list[bytes] = []

    def sync_and_look(argv: Sequence[str], **kwargs: Any) -> int:
        if argv[:2] == ["uv", "sync"]:
            seen.append((kwargs["cwd"] / ".cache" / "images" / "tiny.img").read_bytes())
        return shell(argv, **kwargs)

    ctx = run_bench(root, shell)
    ctx.shell = sync_and_look
    result = run_gate(Pipeline.load(root).phase("bench").gates[0], ctx, CHECKS)
    assert result.outcome == "passed", result.summary
    assert seen == [b"\x00image"]
    assert (cache / "tiny.img").read_bytes() == b"\x00image"  # the original stays


def test_copy_caches_skips_missing_paths_and_copies_files_and_dirs(tmp_path: Path) -> None:
    root, tree = tmp_path / "root", tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("dir content")
    (root / "single").write_text("file content")
    tree.mkdir()
    copied = scratch.copy_caches(root, tree, ["a", "single", "missing"])
    assert copied == ["a", "single"]
    assert (tree / "a" / "b" / "f").read_text() == "dir content"
    assert (tree / "single").read_text() == "file content"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"slowdown_env": 3}, "slowdown_env must be an environment variable name"),
        ({"copy_to_baseline": "/abs"}, "copy_to_baseline must be a list of paths relative"),
        ({"copy_to_baseline": ["/abs"]}, "copy_to_baseline must be a list of paths relative"),
        ({"copy_to_baseline": ["../up"]}, "copy_to_baseline must be a list of paths relative"),
    ],
)
def test_bad_switch_and_cache_settings_are_named(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BenchSettings.from_table(table)


# ---------------------------------------------------------------- sweeping leftovers

HOLD_A_WORKTREE = """
import os, sys, time
from pathlib import Path
from gates.bench import worktree as scratch
from gates.engine.execution import real_shell
with scratch.worktree(Path(sys.argv[1]), "HEAD", shell=real_shell, log=Path(sys.argv[2]),
                    environ=dict(os.environ), prefix="gates-bench-killed-") as tree:
    print(tree, flush=True)
    time.sleep(600)
"""


def test_a_comparison_killed_with_sigkill_is_swept_by_the_next_one(
    repo: Path, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_WORKTREE, str(repo), str(tmp_path / "child.log")],
        env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        tree = Path(child.stdout.readline().strip())
        assert tree.is_dir()
        log = tmp_path / "sweep.log"
        environ = dict(os.environ)
        # While its owner lives, the worktree is left alone.
        assert scratch.sweep(repo, shell=real_shell, log=log, environ=environ, temp_dir=temp) == []
        assert tree.is_dir()
        child.kill()  # SIGKILL: no finally block runs
        child.wait(10)
        assert len(worktrees(repo)) == 2
        swept = scratch.sweep(repo, shell=real_shell, log=log, environ=environ, temp_dir=temp)
        assert swept == [tree.parent]
        assert not tree.parent.exists()
        assert len(worktrees(repo)) == 1
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()


def test_a_scratch_dir_without_its_lock_is_swept_only_when_old(repo: Path, tmp_path: Path) -> None:
    fresh, old = tmp_path / "gates-bench-fresh", tmp_path / "gates-bench-old"
    fresh.mkdir()
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    (tmp_path / "gates-bench-not-a-dir").write_text("")
    swept = scratch.sweep(
        repo, shell=real_shell, log=tmp_path / "log", environ=dict(os.environ), temp_dir=tmp_path
    )
    assert swept == [old]
    assert fresh.is_dir()
    assert (tmp_path / "gates-bench-not-a-dir").exists()
