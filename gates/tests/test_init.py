"""`gates init` on small projects in temp dirs: what it finds, what it chooses and why, what it
writes — a pipeline the engine loads — and what it refuses. (The integration tier's
integration/gates/test_foreign_project.py then runs such a pipeline for real.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from gates import cli
from gates.engine.pipeline import Pipeline
from gates.tiers import Tiers

PYPROJECT = '[project]\nname = "ledger"\nversion = "1.0"\n'
GROUPS = '\n[dependency-groups]\nlint = ["ruff"]\ntests = ["pytest>=8", "pytest-mock"]\n'
NOXFILE = (
    "import nox\n\n\n@nox.session(python=['3.11'])\n@nox.parametrize('x', [1])\n"
    "def unit(session, x):\n    session.run('pytest')\n\n\n@nox.session\ndef lint(session):\n"
    "    pass\n"
)


def project(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_project_without_nox_gets_uv_run_pytest_gates_and_every_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT + GROUPS,
            "tests/test_a.py": "def test_a():\n    pass\n",
            "docs/tests/notes.md": "not tests\n",  # a tests/ directory without test files
            ".gitignore": "/dist/",  # no newline at the end
            "uv.lock": "version = 1\n",
        },
    )
    assert cli.init_project(root=root) == 0
    said = capsys.readouterr().out
    for reason in (
        "test dirs ['tests']: directories named tests/test that hold test files",
        "dependency group 'tests': it holds pytest",
        "no noxfile.py: the unit gates run pytest through `uv run`",
        "uv.lock exists: the deps phase checks it is in sync (uv lock --check)",
        "wrote pyproject.toml: appended [tool.gates]",
        "wrote .gitignore: added /.gates/",
    ):
        assert reason in said
    assert (root / ".gitignore").read_text() == "/dist/\n/.gates/\n"

    pipeline = Pipeline.load(root)
    assert [p.name for p in pipeline.phases] == ["deps", "unit"]
    gates = {g.key: g for p in pipeline.phases for g in p.gates}
    assert list(gates) == [
        "deps/lock",
        "deps/collect",
        "unit/serial",
        "unit/isolation",
        "unit/speedup",
    ]
    serial = ["uv", "run", "--locked", "--group", "tests", "pytest", "-p", "no:randomly", "tests"]
    assert gates["unit/serial"].target == tuple(serial)
    assert gates["unit/isolation"].target[:8] == (
        "uv", "run", "--locked", "--group", "tests", "--with", "pytest-xdist", "--with",
    )  # fmt: skip
    assert gates["unit/isolation"].same_outcomes_as == "serial"
    [unit] = Tiers.load(root).tested
    assert (unit.name, unit.dirs, unit.groups) == ("unit", ("tests",), ("tests",))

    # Once there, never again: the second run refuses and writes nothing.
    before = (root / "pyproject.toml").read_text()
    assert cli.init_project(root=root) == cli.EXIT_REFUSED
    assert "already has [tool.gates]; nothing was written" in capsys.readouterr().out
    assert (root / "pyproject.toml").read_text() == before


def test_a_nox_session_and_pytest_testpaths_are_used_when_the_project_has_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    testpaths = '\n[tool.pytest.ini_options]\ntestpaths = ["src/checks", "missing"]\n'
    root = project(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT + testpaths,
            "noxfile.py": NOXFILE,
            "src/checks/test_b.py": "def test_b():\n    pass\n",
            ".gitignore": ".gates/\n",
        },
    )
    assert cli.init_project(root=root) == 0
    said = capsys.readouterr().out
    assert "test dirs ['src/checks']: pytest's testpaths" in said
    assert "no dependency group holds pytest: pytest runs in the project environment" in said
    assert "nox session 'unit' runs the unit gates (pytest args as posargs)" in said
    assert "no uv.lock: the pytest runs do not pass --locked" in said
    assert "wrote .gitignore" not in said
    assert (root / ".gitignore").read_text() == ".gates/\n"
    gates = {g.key: g for p in Pipeline.load(root).phases for g in p.gates}
    assert "deps/lock" not in gates  # nothing to check without a lock
    assert (gates["unit/serial"].kind, gates["unit/serial"].target) == ("session", "unit")
    assert gates["unit/serial"].args == ("-p", "no:randomly", "src/checks")


def test_a_noxfile_without_a_test_session_falls_back_to_uv_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT,
            "noxfile.py": "import nox\n\n\n@nox.session\ndef lint(session):\n    pass\n",
            "test/test_c.py": "def test_c():\n    pass\n",
        },
    )
    assert cli.init_project(dry_run=True, root=root) == 0
    said = capsys.readouterr().out
    assert "noxfile.py has no tests/test/unit session (found ['lint'])" in said
    assert "(dry run: nothing written)" in said
    assert '"uv", "run", "pytest", "-p", "no:randomly", "test"' in said
    assert (root / "pyproject.toml").read_text() == PYPROJECT
    assert not (root / ".gitignore").exists()


def test_what_init_cannot_work_with_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.init_project(root=tmp_path) == cli.EXIT_REFUSED
    assert capsys.readouterr().out == (
        f"error: no pyproject.toml in {tmp_path}: run gates init at the project's root\n"
    )
    root = project(tmp_path, {"pyproject.toml": PYPROJECT, "src/app.py": "x = 1\n"})
    assert cli.init_project(root=root) == cli.EXIT_REFUSED
    assert "no test directory found" in capsys.readouterr().out
    assert (root / "pyproject.toml").read_text() == PYPROJECT
