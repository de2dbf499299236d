"""`gates init`: a starter `[tool.gates]` for a project that has none, from what it finds there.

It looks for the test directories (pytest's `testpaths`, else `tests`/`test` directories holding
test files), the dependency group that holds pytest, and the nox sessions, if a noxfile exists.
It appends the table to pyproject.toml (never rewriting what is there), adds `.gates/` to
.gitignore so the history never makes the tree dirty, and prints every choice with its reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gates.errors import ConfigError
from gates.project import PYPROJECT, load_pyproject

TEST_GROUP_NAMES = ("test", "tests", "testing", "dev")
TEST_DIR_NAMES = ("tests", "test")
NOX_SESSION = re.compile(r"@nox\.session[^\n]*\n(?:@[^\n]*\n)*def (\w+)\(")
SKIPPED_DIRS = {".git", ".venv", ".nox", ".tox", "node_modules", ".gates", "build", "dist"}


@dataclass
class Starter:
    """What init chose, why, and the TOML it makes of it."""

    dirs: list[str]
    group: str | None
    session: str | None
    locked: bool
    reasons: list[str] = field(default_factory=list)

    def pytest(self, *args: str, extra: tuple[str, ...] = ()) -> list[str]:
        """How the unit gates run pytest when there is no nox session to run it."""
        lock = ["--locked"] if self.locked else []
        group = ["--group", self.group] if self.group else []
        withs = [w for name in extra for w in ("--with", name)]
        return ["uv", "run", *lock, *group, *withs, "pytest", *args, *self.dirs]

    def toml(self) -> str:
        """The `[tool.gates]` tables, as text to append to pyproject.toml."""
        q = json.dumps  # TOML basic strings and arrays of them are valid JSON
        tier = [f"dirs = {q(self.dirs)}"]
        if self.group:
            tier.append(f"groups = {q([self.group])}")
        if self.session:
            tier.append(f"session = {q(self.session)}")
        if self.session:
            serial = f"session = {q(self.session)}, args = {q(['-p', 'no:randomly', *self.dirs])}"
            parallel = (
                f"session = {q(self.session)}, "
                f"args = {q(['-n', 'auto', '-p', 'randomly', *self.dirs])}"
            )
        else:
            serial = f"run = {q(self.pytest('-p', 'no:randomly'))}"
            plugins = ("pytest-xdist", "pytest-randomly")
            parallel = f"run = {q(self.pytest('-n', 'auto', '-p', 'randomly', extra=plugins))}"
        deps = ['  { name = "collect", check = "collect" },']
        if self.locked:
            deps.insert(0, '  { name = "lock", run = ["uv", "lock", "--check"] },')
        lines = [
            "",
            "# Written by `gates init`; docs: the gates package's docs/gates.md.",
            "[tool.gates]",
            'history = ".gates/history.jsonl"',
            'green_phases = ["deps", "unit"]',
            "",
            "[tool.gates.tiers.unit]",
            *tier,
            "",
            "[[tool.gates.phases]]",
            'name = "deps"',
            "gates = [",
            *deps,
            "]",
            "",
            "[[tool.gates.phases]]",
            'name = "unit"',
            "gates = [",
            f'  {{ name = "serial", {serial}, junit = true }},',
            f'  {{ name = "isolation", {parallel}, junit = true, same_outcomes_as = "serial" }},',
            '  { name = "speedup", check = "speedup", min_speedup = "auto" },',
            "]",
            "",
        ]
        return "\n".join(lines)


def survey(root: Path) -> Starter:
    """Look at the project at `root` and choose a starter pipeline, with the reasons."""
    data = load_pyproject(root)
    if "gates" in data.get("tool", {}):
        raise ConfigError(f"{root / PYPROJECT} already has [tool.gates]; nothing was written")
    reasons: list[str] = []
    dirs = _test_dirs(root, data, reasons)
    group = _test_group(data, reasons)
    session = _nox_session(root, reasons)
    locked = (root / "uv.lock").is_file()
    reasons.append(
        "uv.lock exists: the deps phase checks it is in sync (uv lock --check)"
        if locked
        else "no uv.lock: the pytest runs do not pass --locked"
    )
    return Starter(dirs, group, session, locked, reasons)


def _test_dirs(root: Path, data: dict[str, Any], reasons: list[str]) -> list[str]:
    configured = data.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("testpaths")
    if isinstance(configured, list) and configured:
        found = [str(p) for p in configured if (root / str(p)).exists()]
        if found:
            reasons.append(f"test dirs {found}: pytest's testpaths")
            return found
    found = []
    for candidate in sorted(_directories(root)):
        if candidate.name in TEST_DIR_NAMES and _has_tests(candidate):
            found.append(candidate.relative_to(root).as_posix())
    if not found:
        raise ConfigError(
            "no test directory found (no testpaths in [tool.pytest.ini_options], no tests/ or "
            "test/ directory with test_*.py files); add testpaths, then run gates init again"
        )
    reasons.append(f"test dirs {found}: directories named tests/test that hold test files")
    return found


def _directories(root: Path, depth: int = 2) -> list[Path]:
    """Directories up to `depth` levels below `root`, without tool and VCS directories."""
    found: list[Path] = []
    level = [root]
    for _ in range(depth):
        level = [
            child
            for parent in level
            for child in parent.iterdir()
            if child.is_dir() and child.name not in SKIPPED_DIRS
        ]
        found.extend(level)
    return found


def _has_tests(directory: Path) -> bool:
    return any(directory.rglob("test_*.py")) or any(directory.rglob("*_test.py"))


def _test_group(data: dict[str, Any], reasons: list[str]) -> str | None:
    groups = data.get("dependency-groups", {})
    with_pytest = [
        name
        for name, items in groups.items()
        if any(isinstance(i, str) and re.match(r"pytest\b(?![-_])", i) for i in items)
    ]
    preferred = [n for n in TEST_GROUP_NAMES if n in with_pytest] + with_pytest
    if preferred:
        chosen = str(preferred[0])
        reasons.append(f"dependency group {chosen!r}: it holds pytest")
        return chosen
    reasons.append("no dependency group holds pytest: pytest runs in the project environment")
    return None


def _nox_session(root: Path, reasons: list[str]) -> str | None:
    noxfile = root / "noxfile.py"
    if not noxfile.is_file():
        reasons.append("no noxfile.py: the unit gates run pytest through `uv run`")
        return None
    sessions = NOX_SESSION.findall(noxfile.read_text(errors="replace"))
    chosen = next((s for s in ("tests", "test", "unit") if s in sessions), None)
    if chosen:
        reasons.append(f"nox session {chosen!r} runs the unit gates (pytest args as posargs)")
    else:
        reasons.append(
            f"noxfile.py has no tests/test/unit session (found {sessions or 'none'}): "
            "the unit gates run pytest through `uv run`"
        )
    return chosen


def write(root: Path, starter: Starter) -> list[str]:
    """Append the starter to pyproject.toml and `.gates/` to .gitignore; return what changed."""
    changed = []
    pyproject = root / PYPROJECT
    text = pyproject.read_text()
    pyproject.write_text(text + ("" if text.endswith("\n") else "\n") + starter.toml())
    changed.append(f"{PYPROJECT}: appended [tool.gates]")
    ignore = root / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    if not {"/.gates/", ".gates/", ".gates", "/.gates"} & {line.strip() for line in lines}:
        ignore.write_text("\n".join([*lines, "/.gates/"]) + "\n")
        changed.append(".gitignore: added /.gates/ (the history must not make the tree dirty)")
    return changed
