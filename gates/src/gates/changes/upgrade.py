"""Upgrade: move the lock forward, run the gates, and keep the change only when they all pass.

pyproject.toml and uv.lock are saved byte for byte first; a failing gate (or an interrupt, or uv
failing) puts them back exactly and re-syncs, so a failed upgrade leaves no trace in them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gates.engine.execution import GateResult
from gates.engine.pipeline import Gate
from gates.engine.runner import Run
from gates.errors import UpgradeError
from gates.git.repository import Repository
from gates.project import toml_loads

FILES = ("pyproject.toml", "uv.lock")
SYNC = ("uv", "sync", "--locked", "--all-groups")
# Runs a uv command in the root; returns (exit status, its output).
Uv = Callable[[Sequence[str], Path], tuple[int, str]]


def run_uv(argv: Sequence[str], root: Path) -> tuple[int, str]:
    result = subprocess.run(
        list(argv), cwd=root, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    return result.returncode, result.stdout + result.stderr


@dataclass(frozen=True)
class VersionChange:
    """One package whose locked version moved (None: added or removed)."""

    name: str
    old: str | None
    new: str | None

    def __str__(self) -> str:
        return f"{self.name} {self.old or '(new)'} → {self.new or '(removed)'}"


@dataclass
class UpgradeResult:
    changes: list[VersionChange] = field(default_factory=list)
    run: Run | None = None
    restored: bool = False
    staged: bool = False
    commit: str | None = None
    sync_problem: str = ""

    @property
    def failing(self) -> tuple[Gate, GateResult] | None:
        return self.run.failed[0] if self.run and self.run.failed else None


def locked_versions(lock: bytes) -> dict[str, str]:
    """Package name → version of every versioned package in a uv.lock."""
    data = toml_loads(lock.decode())
    return {str(p["name"]): str(p["version"]) for p in data.get("package", []) if "version" in p}


def version_changes(before: dict[str, str], after: dict[str, str]) -> list[VersionChange]:
    return [
        VersionChange(name, before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]


def commit_message(changes: Sequence[VersionChange]) -> str:
    lines = "\n".join(f"- {change}" for change in changes)
    return f"Upgrade dependencies ({len(changes)} versions changed)\n\n{lines}\n"


def upgrade(
    root: Path,
    *,
    run_gates: Callable[[], Run],
    package: str | None = None,
    commit: bool = False,
    uv: Uv = run_uv,
) -> UpgradeResult:
    """Upgrade the lock (all packages, or `package`), sync, run the gates, keep or restore."""
    saved = {name: _read(root / name) for name in FILES}
    before = locked_versions(saved["uv.lock"])
    upgrade_args = ["--upgrade-package", package] if package else ["--upgrade"]
    result = UpgradeResult()
    try:
        status, output = uv(["uv", "lock", *upgrade_args], root)
        if status != 0:
            raise UpgradeError(f"`uv lock {' '.join(upgrade_args)}` failed: {_last(output)}")
        result.changes = version_changes(before, locked_versions(_read(root / "uv.lock")))
        if not result.changes:
            return result
        status, output = uv(list(SYNC), root)
        if status != 0:
            raise UpgradeError(f"`{' '.join(SYNC)}` failed after the upgrade: {_last(output)}")
        result.run = run_gates()
    except BaseException:
        _restore(root, saved)
        uv(list(SYNC), root)
        raise
    if not result.run.passed:
        _restore(root, saved)
        status, output = uv(list(SYNC), root)
        result.restored = True
        result.sync_problem = "" if status == 0 else _last(output)
        return result
    repo = Repository(root)
    repo.add(list(FILES))
    result.staged = True
    if commit:
        repo.git("commit", "--quiet", "-m", commit_message(result.changes), "--", *FILES)
        result.commit = repo.head()
    return result


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UpgradeError(f"{path} is missing: run `uv lock` and commit it first") from None


def _restore(root: Path, saved: dict[str, bytes]) -> None:
    for name, content in saved.items():
        (root / name).write_bytes(content)


def _last(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
