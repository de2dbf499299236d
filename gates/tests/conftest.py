"""Fixtures for the gate engine's tests: real git repositories and small projects in tmp dirs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gates_testing import git, placeholder_save

IDENTITY = (
    "[user]\n\tname = Gate Tester\n\temail = gates@example.invalid\n[commit]\n\tgpgsign = false\n"
)


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Create a git repository with an identity and a first commit of the given files."""

    def make(files: dict[str, str | bytes] | None = None, name: str = "repo") -> Path:
        root = tmp_path / name
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        # What `git config` would write, without a git process per setting.
        with (root / ".git" / "config").open("a") as config:
            config.write(IDENTITY)
        for relative, content in (files or {"README.md": "hello\n"}).items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "first")
        return root

    return make


@pytest.fixture
def make_project(make_repo: Callable[..., Path]) -> Callable[..., Path]:
    """A git repository whose pyproject.toml declares the given pipeline."""

    def make(toml: str, extra: dict[str, str | bytes] | None = None) -> Path:
        files: dict[str, str | bytes] = {
            "pyproject.toml": "[project]\nname = 'demo'\nversion = '0'\n"
            "classifiers = ['Programming Language :: Python :: 3.12', "
            "'Programming Language :: Python :: 3.11']\n\n" + toml,
            ".gitignore": "/.gates/\n",
        }
        files.update(extra or {})
        return make_repo(files)

    return make


@pytest.fixture
def placeholder_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Charts are built but saved as placeholders: the tests using this check which charts a
    report has and what its page says (or only what a run ends with), not how a chart looks.
    Drawing (layout, text as paths) is most of a report's time, and `gates run` ends with one;
    test_report.py::test_every_chart_is_an_svg_that_draws draws every chart for real."""
    from gates.reporting.html import charts

    monkeypatch.setattr(charts, "_save", placeholder_save)
