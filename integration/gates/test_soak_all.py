"""`gates soak --tier all` for real, on a scratch project: two tiers, two rounds, four runs.

The project is a git repository with its own lock, noxfile and [tool.gates.tiers] (two tiers with
tests, one tool-only tier that must not be soaked). Its tier `alpha` has a test that fails every
second time it runs (it counts its runs in a file outside the tree), so on one unchanged tree it
passes once and fails once: flaky. Tier `beta` has a test that always fails: broken, not flaky.
The soak runs the real `uv run nox`, pytest and git; only a whole-suite soak of Hangar itself is
left out (it takes an hour).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gates import cli
from integration.gates.repos import FOREIGN, git, project_environ

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FILES = {
    "pyproject.toml": """\
[project]
name = "scratch-soak"
version = "0"
requires-python = ">=3.10"

[dependency-groups]
dev = ["nox>=2024.10.9", "pytest>=8"]

[tool.uv]
package = false

[tool.pytest.ini_options]
minversion = "8.0"

[tool.gates.tiers.alpha]
dirs = ["alpha"]
session = "alpha"

[tool.gates.tiers.beta]
dirs = ["beta"]
session = "beta"

[tool.gates.tiers.lint]
session = "lint"
""",
    "noxfile.py": """\
import nox

nox.options.default_venv_backend = "none"


@nox.session(python=False)
def alpha(session):
    session.run("pytest", *session.posargs)


@nox.session(python=False)
def beta(session):
    session.run("pytest", *session.posargs)


@nox.session(python=False)
def lint(session):
    session.error("the tool-only tier must never be soaked")
""",
    "alpha/test_a.py": """\
import os
from pathlib import Path


def test_steady():
    assert "soak".upper() == "SOAK"


def test_every_other_run():
    counter = Path(os.environ["SOAK_COUNTER"])
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    assert runs % 2 == 0, f"run {runs + 1}: this test fails every second run"
""",
    "beta/test_b.py": """\
def test_fine():
    assert [1, 2][::-1] == [2, 1]


def test_always():
    assert 1 + 1 == 3, "broken on every run"
""",
    ".gitignore": ".venv/\n.nox/\n__pycache__/\n.pytest_cache/\n.gates/\n",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The scratch project, locked and committed, so its tree stays the same while it soaks."""
    root = tmp_path / "scratch"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    env = project_environ()
    subprocess.run(["uv", "sync", "--quiet"], cwd=root, env=env, check=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "scratch")
    return root


def test_a_soak_of_all_tiers_finds_the_flaky_test_per_tree_and_bounds_the_rest(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [*FOREIGN, *(k for k in os.environ if k.startswith(("COV_CORE_", "GATES_")))]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOAK_COUNTER", str(tmp_path / "counter"))
    monkeypatch.chdir(tmp_path)  # gates runs the tiers in the project's root, not here

    assert cli.main(["soak", "--tier", "all", "--runs", "2"]) == 2  # no project here
    capsys.readouterr()
    assert cli.soak_tier("all", 2, root=project) == 1

    out = capsys.readouterr().out
    head = git(project, "rev-parse", "HEAD").strip()[:12]
    assert "soak of all tiers (alpha, beta): 2 rounds, 4 runs" in out
    assert "  run 3 (round 2, alpha): exit 1" in out
    assert f"1/2 failed (flaky)  alpha.test_a::test_every_other_run  (on tree {head})" in out
    assert "last failure: AssertionError: run 2: this test fails every second run" in out
    assert "2/2 failed (always)  beta.test_b::test_always" in out
    assert "the tree changed" not in out
    assert "the suite (every tier once): failed in 2 of 2 rounds (100 %)" in out
    assert "each of the 2 tests that never failed: failure rate below 3/n" in out

    [stored] = (project / ".gates" / "soak").glob("*.json")
    data = json.loads(stored.read_text())
    assert data["tier"] == "all"
    assert data["tiers"] == ["alpha", "beta"]  # never the tool-only lint tier
    assert [(r["round"], r["tier"], r["tree"]) for r in data["runs"]] == [
        (1, "alpha", head),
        (1, "beta", head),
        (2, "alpha", head),
        (2, "beta", head),
    ]
    verdicts = {f["test"]: (f["verdict"], f["trees"]) for f in data["failing"]}
    assert verdicts == {
        "alpha.test_a::test_every_other_run": ("flaky", [head]),
        "beta.test_b::test_always": ("always", []),
    }
