"""Only the affected benchmarks, on a small real project: real git, uv, pytest-benchmark and
pytest-cov. Two benchmarks execute different modules; a change to one module runs only its
benchmark (the coverage map is measured on the baseline once, then stored), a docs-only commit
runs none without a worktree, and a pyproject.toml change runs both.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gates.cli import execute
from gates.engine.execution import GateContext, GateResult, real_shell
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
bench = ["pytest>=8.3", "pytest-benchmark>=5.1", "pytest-cov>=6"]

[tool.pytest.ini_options]
pythonpath = ["."]

[tool.gates]
history = ".gates/history.jsonl"

[[tool.gates.phases]]
name = "bench"
gates = [{ name = "compare", check = "bench", args = ["bench"] }]

[tool.gates.bench]
rounds = 1
max_rounds = 1  # what runs is the point here, not how sure the verdict is
"""

MODULE = """\
def work(n: int = 2_000) -> int:
    total = 0
    for i in range(n):
        total += i * i % {mod}
    return total
"""

BENCHMARK = """\
from {module} import work


def test_{module}(benchmark):
    benchmark(work)
"""


class Recording:
    """The real shell, remembering every command it ran."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        log: Path,
        env: Mapping[str, str],
        timeout: float | None,
    ) -> int:
        self.commands.append(list(argv))
        return real_shell(argv, cwd=cwd, log=log, env=env, timeout=timeout)


def bench_gate(root: Path, name: str) -> tuple[GateResult, Recording]:
    shell = Recording()
    context = GateContext(
        root=root,
        run_dir=root / ".gates" / "runs" / name,
        environ=project_environ(),
        shell=shell,
        baseline="HEAD~1",
    )
    run = execute(root, console=Console(file=StringIO(), width=200), context=context)
    [result] = [r for g, r in run.results if g.key == "bench/compare"]
    return result, shell


def commit(root: Path, message: str, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-gpg-sign", "-m", message)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench-affected") / "demo"
    root.mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    subprocess.run(["uv", "lock", "--quiet"], cwd=root, env=project_environ(), check=True)
    git(root, "init", "-q", "-b", "main")
    commit(
        root,
        "two modules, a benchmark each",
        {
            "alpha.py": MODULE.format(mod=7),
            "beta.py": MODULE.format(mod=11),
            "bench/test_alpha.py": BENCHMARK.format(module="alpha"),
            "bench/test_beta.py": BENCHMARK.format(module="beta"),
            "docs/index.md": "# demo\n",
            ".gitignore": "/.gates/\n/.venv/\n__pycache__/\n.coverage*\n",
        },
    )
    return root


def affected(result: GateResult) -> dict[str, Any]:
    choice = result.metrics["affected"]
    assert isinstance(choice, dict)
    return choice


def test_a_change_to_one_module_runs_only_its_benchmark(project: Path) -> None:
    commit(project, "alpha: another modulus", {"alpha.py": MODULE.format(mod=5)})
    result, _ = bench_gate(project, "alpha")
    assert result.outcome in ("passed", "failed"), result.summary
    choice = affected(result)
    assert choice["selected"] == ["bench/test_alpha.py::test_alpha"], result.key_output
    assert choice["skipped"] == ["bench/test_beta.py::test_beta"]
    assert "1 benchmarks" in result.summary, result.summary
    base = git(project, "rev-parse", "HEAD~1").strip()
    assert (project / ".gates" / "bench" / "affected" / f"{base}.json").is_file()
    assert any("skipped 1 benchmarks" in line for line in result.key_output), result.key_output


def test_a_docs_only_commit_runs_no_benchmark_and_makes_no_worktree(project: Path) -> None:
    commit(project, "docs", {"docs/index.md": "# demo\n\nMore words.\n"})
    result, shell = bench_gate(project, "docs")
    assert result.outcome == "passed", result.summary
    assert "no benchmark affected" in result.summary, result.summary
    assert "docs/index.md" in result.summary
    assert affected(result)["selected"] == []
    assert not [argv for argv in shell.commands if "worktree" in argv], shell.commands


def test_a_pyproject_change_runs_every_benchmark(project: Path) -> None:
    text = (project / "pyproject.toml").read_text() + "# a comment\n"
    commit(project, "pyproject: a comment", {"pyproject.toml": text})
    result, _ = bench_gate(project, "pyproject")
    # Which benchmarks ran is checked, not the verdict of one wall-time round of the same code
    # (which a busy machine can turn into a false alarm: `invoke calibrate` measures that rate).
    assert result.outcome in ("passed", "failed"), result.summary
    choice = affected(result)
    assert choice["run_all"] is True
    assert "pyproject.toml changed" in choice["reason"]
    assert "2 benchmarks" in result.summary, result.summary
