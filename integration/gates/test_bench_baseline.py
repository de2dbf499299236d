"""The bench gate as users meet it: a small real project, real git, real pytest-benchmark runs.

Commit A goes through the pipeline (green; its bench phase has no earlier green commit and is
skipped with the reason); commit B makes the benchmarked code do twice the work and goes through
the same pipeline: the bench gate compares B with A — never B with itself — and fails naming the
benchmark. A fresh clone with an empty history skips the gate with the reason.
"""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from gates.cli import execute
from gates.engine.execution import GateContext
from gates.engine.runner import Run
from integration.gates.repos import git, project_environ

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PYPROJECT = """\
[project]
name = "demo"
version = "0"
requires-python = ">=3.11"

[tool.uv]
package = false

[dependency-groups]
test = ["pytest>=8.3"]
bench = ["pytest>=8.3", "pytest-benchmark>=5.1"]

[tool.pytest.ini_options]
pythonpath = ["."]

[tool.gates]
history = ".gates/history.jsonl"
green_phases = ["check"]

[[tool.gates.phases]]
name = "check"
gates = [{ name = "lock", run = ["uv", "lock", "--check"] }]

[[tool.gates.phases]]
name = "bench"
gates = [{ name = "compare", check = "bench", args = ["bench"] }]

[tool.gates.bench]
rounds = 3
"""

WORK = """\
def work(n: int = 20_000) -> int:
    total = 0
    for i in range({loop}):
        total += i * i % 7
    return total
"""

BENCHMARK = """\
from demo_work import work


def test_work(benchmark):
    benchmark(work)
"""


def run_pipeline(root: Path, name: str) -> Run:
    context = GateContext(
        root=root, run_dir=root / ".gates" / "runs" / name, environ=project_environ()
    )
    return execute(root, console=Console(file=StringIO(), width=200), context=context)


def outcome(run: Run, key: str) -> tuple[str, str]:
    [result] = [r for g, r in run.results if g.key == key]
    return result.outcome, result.summary


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench-baseline") / "demo"
    (root / "bench").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "demo_work.py").write_text(WORK.format(loop="n"))
    (root / "bench" / "test_work.py").write_text(BENCHMARK)
    (root / ".gitignore").write_text("/.gates/\n/.venv/\n__pycache__/\n")
    subprocess.run(["uv", "lock", "--quiet"], cwd=root, env=project_environ(), check=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-gpg-sign", "-m", "A: the benchmarked code")
    return root


def test_a_slowdown_committed_on_a_green_commit_fails_the_bench_gate(project: Path) -> None:
    first = run_pipeline(project, "on-a")
    a = git(project, "rev-parse", "HEAD").strip()
    assert outcome(first, "check/lock")[0] == "passed"
    state, summary = outcome(first, "bench/compare")
    assert state == "skipped", summary
    assert summary == (
        f"candidate {a[:12]}: no green commit before {a[:12]} in history.jsonl to compare with "
        "(the candidate is never its own baseline); name one: "
        "gates run --only bench --baseline REV"
    )

    # B: the same benchmark, twice the work.
    (project / "demo_work.py").write_text(WORK.format(loop="2 * n"))
    git(project, "commit", "-q", "--no-gpg-sign", "-am", "B: twice the work")
    b = git(project, "rev-parse", "HEAD").strip()
    second = run_pipeline(project, "on-b")
    assert outcome(second, "check/lock")[0] == "passed"  # B is green by now, yet not a baseline
    state, summary = outcome(second, "bench/compare")
    assert state == "failed", summary
    assert summary.startswith(
        f"candidate {b[:12]} against {a[:12]} (newest green ancestor): 1 benchmarks, 3 rounds: "
        "1 slower (test_work)"
    ), summary
    assert not second.passed
    worktrees = git(project, "worktree", "list", "--porcelain")
    assert worktrees.count("worktree ") == 1, worktrees


def test_a_fresh_clone_with_an_empty_history_skips_the_bench_gate(
    project: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    head = git(clone, "rev-parse", "HEAD").strip()
    run = run_pipeline(clone, "fresh")
    state, summary = outcome(run, "bench/compare")
    assert state == "skipped", summary
    assert f"no green commit before {head[:12]}" in summary
    assert "--baseline REV" in summary
    assert run.passed
