"""gates adopted by a project it has never seen: built here in a temp dir, run for real.

The project has its own pyproject.toml with a `tests` dependency group, requires Python >= 3.10,
has no noxfile and does not depend on gates. `gates init` writes its pipeline; `gates run` then
gives the serial, isolation and speedup verdicts — the isolation gate catching a test that only
passes after another — and `gates status` and `gates rollback` work there.
"""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from gates import cli
from gates.engine.execution import GateContext
from gates.engine.runner import Run
from integration.gates.repos import git, make_repo, project_environ

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PYPROJECT = """\
[project]
name = "ledger"
version = "1.0"
requires-python = ">=3.10"

[dependency-groups]
tests = ["pytest>=8"]

[tool.uv]
package = false

# Also what makes this project pytest's rootdir here, inside the checkout's temp dir.
[tool.pytest.ini_options]
minversion = "8.0"
"""

FIRST = {
    "tests/test_a.py": "def test_adds():\n    assert 1 + 1 == 2\n\n\n"
    "def test_subtracts():\n    assert 2 - 1 == 1\n",
    "tests/test_b.py": "def test_joins():\n    assert '-'.join('ab') == 'a-b'\n\n\n"
    "def test_splits():\n    assert 'a-b'.split('-') == ['a', 'b']\n",
}
# Passes serially (test_a.py runs first) and fails wherever test_b.py runs without test_a.py
# before it in the same process: under xdist each worker gets one module here (two workers,
# two tests per module), whatever order pytest-randomly picks.
ORDER_DEPENDENT = {
    "tests/test_a.py": "import os\n\n\ndef test_adds():\n    assert 1 + 1 == 2\n\n\n"
    "def test_records():\n    os.environ['LEDGER_ENTRY'] = 'recorded'\n",
    "tests/test_b.py": "import os\n\n\ndef test_joins():\n    assert '-'.join('ab') == 'a-b'\n\n\n"
    "def test_reads_what_the_other_module_recorded():\n"
    "    assert os.environ.get('LEDGER_ENTRY') == 'recorded'\n",
}


def environ() -> dict[str, str]:
    """The project's own environment; `-n auto` as on a 2-core machine, so xdist hands each
    worker one module (see above)."""
    return {**project_environ(), "PYTEST_XDIST_AUTO_NUM_WORKERS": "2"}


def run(root: Path, name: str) -> Run:
    context = GateContext(root=root, run_dir=root / ".gates" / "runs" / name, environ=environ())
    quiet = Console(file=StringIO(), width=200)
    return cli.execute(root, console=quiet, context=context, keep_going=True)


def outcomes(run: Run) -> dict[str, str]:
    return {gate.key: result.outcome for gate, result in run.results}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "ledger", {"pyproject.toml": PYPROJECT, **FIRST})
    subprocess.run(["uv", "lock", "--quiet"], cwd=root, env=environ(), check=True)
    return root


def test_init_run_status_and_rollback_in_a_foreign_project(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.init_project(root=project) == 0
    said = capsys.readouterr().out
    assert "test dirs ['tests']: directories named tests/test that hold test files" in said
    assert "dependency group 'tests': it holds pytest" in said
    assert "no noxfile.py: the unit gates run pytest through `uv run`" in said
    assert "/.gates/" in (project / ".gitignore").read_text()
    git(project, "add", "-A")
    git(project, "commit", "-qm", "adopt gates")
    green = git(project, "rev-parse", "HEAD").strip()

    first = run(project, "first")
    judged = outcomes(first)
    # Whether the speedup is judged depends on this machine's other work at the time.
    speedup_outcome = judged.pop("unit/speedup")
    assert judged == {
        "deps/lock": "passed",
        "deps/collect": "passed",
        "unit/serial": "passed",
        "unit/isolation": "passed",
    }, [(g.key, r.summary, r.key_output[-8:]) for g, r in first.results]
    [speedup] = [r for g, r in first.results if g.key == "unit/speedup"]
    if speedup_outcome == "skipped":  # a busy machine: not judged
        assert speedup.summary.startswith("not judged: other work took"), speedup.summary
    else:
        assert speedup_outcome == "passed"
        assert speedup.summary.startswith("run serially"), speedup.summary  # 4 tiny tests

    for name, text in ORDER_DEPENDENT.items():
        (project / name).write_text(text)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "an order-dependent test")
    second = run(project, "second")
    assert outcomes(second)["unit/serial"] == "passed"
    assert outcomes(second)["unit/isolation"] == "failed"
    [isolation] = [r for g, r in second.results if g.key == "unit/isolation"]
    assert "test_reads_what_the_other_module_recorded" in "\n".join(isolation.key_output)
    assert "unit/speedup" in outcomes(second)  # judged too: --keep-going

    monkeypatch.chdir(project)
    # Rollback re-syncs the project's environment: never the one running this test.
    for name in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["status"]) == 0
    status = capsys.readouterr().out
    assert f"last green commit {green[:12]}" in status.replace("\n", " ")

    assert cli.main(["rollback"]) == 0
    said = capsys.readouterr().out
    assert f"Rolled back the whole tree to {green[:12]}" in said
    assert (project / "tests" / "test_b.py").read_text() == FIRST["tests/test_b.py"]
    assert "git" in said  # the command that brings the work back
