"""Self-checks of the bench gate on this very project: slow, so they live in the integration
tier (which runs them in `uv run nox -s integration` and the integration gate), never in bench/,
whose gate runs only benchmarks (`--benchmark-only` skips every other test). By hand:

    CI=true uv run nox -s integration -- integration/gates

A copy of the working tree becomes a one-commit repository in a temp dir; the gate compares that
commit with itself, once as it is and once with the test-only slowdown switch on the candidate.
They check the timed rounds and make no callgrind runs: the instruction metric has its own
checks, on real code changes, in test_bench_instructions.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gates.bench.compare import BenchReport, run_comparison
from gates.bench.settings import BenchSettings
from gates.engine.execution import real_shell
from integration.gates.repos import git, project_environ, working_tree_copy

ROOT = Path(__file__).parents[2]
SELECTION = ["bench/test_service.py::test_state_machine"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree (tracked and untracked, not ignored files) as a one-commit repository."""
    return working_tree_copy(ROOT, tmp_path_factory.mktemp("selfcheck") / "hangar")


def compare_with_itself(
    project: Path, tmp_path: Path, candidate: dict[str, str], settings: BenchSettings
) -> BenchReport:
    # The candidate must run in the copy's own environment, never the one running this test
    # (nox points UV_PYTHON at its session's env, which another nox run may be re-creating).
    environ = project_environ()
    environ.pop("HANGAR_BENCH_SLOWDOWN", None)
    outcome = run_comparison(
        project,
        "HEAD",
        shell=real_shell,
        results=tmp_path / "results",
        log=tmp_path / "bench.log",
        environ=environ,
        settings=settings,
        selection=SELECTION,
        candidate_environ=candidate,
        instructions=False,
    )
    listed = git(project, "worktree", "list", "--porcelain")
    assert listed.count("worktree ") == 1, listed
    return outcome


def test_a_commit_compared_with_itself_has_no_regression(project: Path, tmp_path: Path) -> None:
    settings = BenchSettings(rounds=3)
    outcome = compare_with_itself(project, tmp_path, {}, settings)
    # The failure's message is the gate's own table: ratio, interval and rounds of each.
    assert [c.verdict for c in outcome.comparisons] == ["same"], outcome.text(settings)


def test_a_benchmark_slowed_by_25_percent_on_one_side_is_caught(
    project: Path, tmp_path: Path
) -> None:
    # The project's own settings ([tool.gates.bench]: 5 rounds, 10 % threshold), for which the
    # gate's detection goal is stated (>= 95 % of 25 % slowdowns). With fewer rounds, one round
    # that met a busy machine on the baseline's side weighs more: it can pull the estimate under
    # the threshold without leaving the doubt that would bring more rounds.
    slowed = {"HANGAR_BENCH_SLOWDOWN": "test_state_machine=1.25"}
    settings = BenchSettings.load(project)
    outcome = compare_with_itself(project, tmp_path, slowed, settings)
    [comparison] = outcome.comparisons
    assert comparison.verdict == "slower", outcome.text(settings)
    assert comparison.low > 1.10
