"""Upgrade in a real git repository with a fake uv: keep on green, restore byte for byte on red."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from gates_testing import git

from gates.changes.upgrade import (
    VersionChange,
    commit_message,
    locked_versions,
    run_uv,
    upgrade,
    version_changes,
)
from gates.engine.execution import GateResult
from gates.engine.pipeline import Gate, Phase
from gates.engine.runner import Run
from gates.errors import UpgradeError
from gates.git.repository import TreeState

PYPROJECT = b"[project]\nname = 'demo'  # keep this comment\ndependencies = ['rich']\n"
LOCK = b"""version = 1
[[package]]
name = "demo"
source = { virtual = "." }

[[package]]
name = "rich"
version = "13.0.0"

[[package]]
name = "old-dep"
version = "1.0"
"""
UPGRADED = LOCK.replace(b'"13.0.0"', b'"14.1.0"').replace(
    b'name = "old-dep"\nversion = "1.0"\n', b'name = "new-dep"\nversion = "2.0"\n'
)
GATE = Gate("unit", "serial", "run", ("x",))


def run_with(outcome: str) -> Callable[[], Run]:
    def run() -> Run:
        result = GateResult(outcome, summary="3 failed" if outcome == "failed" else "ok")  # type: ignore[arg-type]
        return Run("r", TreeState("", False, ""), [Phase(0, "unit", (GATE,))], [(GATE, result)])

    return run


class FakeUv:
    """`uv lock --upgrade…` writes the upgraded lock; sync is recorded; failures on demand."""

    def __init__(self, fail: str = "") -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: Sequence[str], root: Path) -> tuple[int, str]:
        self.calls.append(list(argv))
        if self.fail and self.fail in argv:
            return 2, "error: resolution failed\n"
        if argv[:2] == ["uv", "lock"]:
            (root / "uv.lock").write_bytes(UPGRADED)
        return 0, ""


@pytest.fixture
def project(make_repo: Callable[..., Path]) -> Path:
    return make_repo({"pyproject.toml": PYPROJECT, "uv.lock": LOCK})


def test_version_changes_are_read_from_the_lock() -> None:
    changes = version_changes(locked_versions(LOCK), locked_versions(UPGRADED))
    assert [str(c) for c in changes] == [
        "new-dep (new) → 2.0",
        "old-dep 1.0 → (removed)",
        "rich 13.0.0 → 14.1.0",
    ]
    assert commit_message(changes).startswith("Upgrade dependencies (3 versions changed)\n\n- ")


def test_a_failing_gate_restores_both_files_exactly(project: Path) -> None:
    (project / "pyproject.toml").write_bytes(PYPROJECT + b"# an uncommitted edit\n")
    before = {n: (project / n).read_bytes() for n in ("pyproject.toml", "uv.lock")}
    uv = FakeUv()
    result = upgrade(project, run_gates=run_with("failed"), uv=uv)
    assert result.restored
    assert result.failing is not None
    assert result.failing[0] is GATE
    assert {n: (project / n).read_bytes() for n in before} == before
    assert uv.calls == [
        ["uv", "lock", "--upgrade"],
        ["uv", "sync", "--locked", "--all-groups"],
        ["uv", "sync", "--locked", "--all-groups"],  # re-synced to the restored lock
    ]
    assert [str(c) for c in result.changes][-1] == "rich 13.0.0 → 14.1.0"
    assert git(project, "diff", "--cached", "--name-only") == ""


def test_all_green_leaves_the_upgrade_staged(project: Path) -> None:
    uv = FakeUv()
    result = upgrade(project, run_gates=run_with("passed"), package="rich", uv=uv)
    assert uv.calls[0] == ["uv", "lock", "--upgrade-package", "rich"]
    assert result.staged
    assert result.commit is None
    assert git(project, "diff", "--cached", "--name-only").split() == ["uv.lock"]


def test_commit_puts_the_version_changes_in_the_message(project: Path) -> None:
    (project / "unrelated.txt").write_text("not part of the upgrade\n")
    git(project, "add", "unrelated.txt")
    result = upgrade(project, run_gates=run_with("passed"), commit=True, uv=FakeUv())
    assert result.commit == git(project, "rev-parse", "HEAD").strip()
    message = git(project, "log", "-1", "--format=%B")
    assert "- rich 13.0.0 → 14.1.0" in message
    assert git(project, "show", "--name-only", "--format=", "HEAD").split() == ["uv.lock"]
    assert git(project, "diff", "--cached", "--name-only").split() == ["unrelated.txt"]


def test_nothing_to_upgrade_runs_no_gates(project: Path) -> None:
    class Unchanged(FakeUv):
        def __call__(self, argv: Sequence[str], root: Path) -> tuple[int, str]:
            self.calls.append(list(argv))
            return 0, ""

    def never() -> Run:
        raise AssertionError("gates must not run")

    result = upgrade(project, run_gates=never, uv=Unchanged())
    assert result.changes == []


@pytest.mark.parametrize(
    ("fail", "message"), [("--upgrade", "uv lock --upgrade"), ("sync", "uv sync")]
)
def test_uv_failure_restores_and_explains(project: Path, fail: str, message: str) -> None:
    with pytest.raises(UpgradeError, match=f"`{message}.*` failed.*resolution failed"):
        upgrade(project, run_gates=run_with("passed"), uv=FakeUv(fail=fail))
    assert (project / "uv.lock").read_bytes() == LOCK


def test_an_interrupt_during_the_gates_restores_too(project: Path) -> None:
    def interrupted() -> Run:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upgrade(project, run_gates=interrupted, uv=FakeUv())
    assert (project / "uv.lock").read_bytes() == LOCK


def test_a_missing_lock_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_bytes(PYPROJECT)
    with pytest.raises(UpgradeError, match=r"uv\.lock is missing"):
        upgrade(tmp_path, run_gates=run_with("passed"), uv=FakeUv())


def test_run_uv_returns_status_and_output(tmp_path: Path) -> None:
    status, output = run_uv(["uv", "--version"], tmp_path)
    assert status == 0
    assert output.startswith("uv ")


def test_version_change_of_an_added_package_reads_well() -> None:
    assert str(VersionChange("a", None, "1")) == "a (new) → 1"
