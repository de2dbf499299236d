"""Rollback in real git repositories: nothing is ever lost, byte for byte."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from gates_testing import git

from gates.changes.rollback import rollback, uv_sync
from gates.engine.history import History, Record
from gates.engine.pipeline import Pipeline
from gates.errors import RollbackRefusedError

PIPELINE = Pipeline.from_table({"phases": [{"name": "p", "gates": [{"name": "g", "run": ["x"]}]}]})
BINARY = bytes(range(256)) * 4


def green(history: History, commit: str, outcome: str = "passed") -> None:
    history.append(
        Record.from_dict(
            {
                "run_id": "r",
                "time": "t",
                "commit": commit,
                "dirty": False,
                "diff_hash": "",
                "phase": "p",
                "gate": "g",
                "outcome": outcome,
                "duration_s": 1,
            }
        )
    )


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file outside .git and .gates, with its bytes."""
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not relative.startswith((".git/", ".gates/")):
            files[relative] = path.read_bytes()
    return files


def index(root: Path) -> str:
    return git(root, "ls-files", "--stage")


def run_restore(command: str) -> None:
    # The printed command, run as a person would paste it.
    done = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)  # noqa: S602
    assert done.returncode == 0, done.stderr


class Synced:
    def __init__(self) -> None:
        self.roots: list[Path] = []

    def __call__(self, root: Path) -> str:
        self.roots.append(root)
        return ""


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> tuple[Path, History, str]:
    """A repo whose first commit is green, then a later commit with more changes."""
    root = make_repo(
        {
            "keep.txt": "green\n",
            "dir/data.bin": BINARY,
            "gone later.txt": "only in green\n",
            ".gitignore": "/.gates/\n",
        }
    )
    first = git(root, "rev-parse", "HEAD").strip()
    history = History(root / ".gates" / "history.jsonl")
    green(history, first)
    (root / "keep.txt").write_text("second commit\n")
    (root / "gone later.txt").unlink()
    (root / "added later.txt").write_text("new in the second commit\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "second")
    green(history, git(root, "rev-parse", "HEAD").strip(), outcome="failed")
    return root, history, first


def make_edits(root: Path) -> None:
    """Staged, unstaged, both, untracked (binary, spaces, nested), and a deletion."""
    (root / "keep.txt").write_text("staged edit\n")
    git(root, "add", "keep.txt")
    (root / "keep.txt").write_text("staged edit\nplus an unstaged one\n")
    (root / "dir" / "data.bin").write_bytes(BINARY[::-1])
    (root / "untracked file with spaces.txt").write_text("untracked\r\nwith CRLF\r\n")
    (root / "new dir").mkdir()
    (root / "new dir" / "blob.bin").write_bytes(b"\x00\xff" * 100 + b"\n\r")
    (root / "staged new.txt").write_text("staged new file\n")
    git(root, "add", "staged new.txt")
    (root / "added later.txt").unlink()
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)


def test_rollback_restores_the_green_tree_and_the_printed_command_restores_everything(
    repo: tuple[Path, History, str],
) -> None:
    root, history, first = repo
    head = git(root, "rev-parse", "HEAD").strip()
    make_edits(root)
    before_files, before_index = snapshot(root), index(root)
    before_status = git(root, "status", "--porcelain")
    synced = Synced()

    result = rollback(root, pipeline=PIPELINE, history=history, sync=synced)

    assert result.target == first
    assert synced.roots == [root]
    assert git(root, "rev-parse", "HEAD").strip() == head  # the branch did not move
    assert git(root, "diff", "--cached", first).strip() == ""  # index == green commit
    assert (
        git(root, "status", "--porcelain", "--untracked-files=all", "--ignored=no").count("??") == 0
    )
    assert snapshot(root) == {
        "keep.txt": b"green\n",
        "dir/data.bin": BINARY,
        "gone later.txt": b"only in green\n",
        ".gitignore": b"/.gates/\n",
    }
    assert (root / ".gates" / "history.jsonl").exists()  # ignored files are never touched
    assert git(root, "rev-parse", result.saved.ref).strip() == result.saved.commit

    run_restore(result.saved.restore_command)

    assert snapshot(root) == before_files
    assert index(root) == before_index
    assert git(root, "status", "--porcelain") == before_status
    assert os.access(root / "run.sh", os.X_OK)


def test_saved_work_survives_garbage_collection(repo: tuple[Path, History, str]) -> None:
    root, history, _ = repo
    make_edits(root)
    before = snapshot(root)
    result = rollback(root, pipeline=PIPELINE, history=history, sync=Synced())
    git(root, "gc", "--prune=now", "--quiet")
    run_restore(result.saved.restore_command)
    assert snapshot(root) == before


def test_rollback_of_paths_leaves_other_work_alone(repo: tuple[Path, History, str]) -> None:
    root, history, _ = repo
    make_edits(root)
    before_files, before_index = snapshot(root), index(root)
    result = rollback(
        root,
        pipeline=PIPELINE,
        history=history,
        paths=[str(root / "keep.txt"), "gone later.txt", "untracked file with spaces.txt"],
        sync=Synced(),
    )
    after = snapshot(root)
    assert after["keep.txt"] == b"green\n"
    assert after["gone later.txt"] == b"only in green\n"
    assert "untracked file with spaces.txt" not in after  # saved, not in green
    assert after["dir/data.bin"] == BINARY[::-1]  # outside the paths: untouched
    assert after["new dir/blob.bin"] == before_files["new dir/blob.bin"]
    assert "keep.txt" in result.saved.restore_command
    run_restore(result.saved.restore_command)
    assert snapshot(root) == before_files
    assert index(root) == before_index


def test_clean_tree_rolls_back_and_restores(
    repo: tuple[Path, History, str],
) -> None:
    root, history, _ = repo
    before = snapshot(root)
    result = rollback(root, pipeline=PIPELINE, history=history, sync=Synced())
    assert snapshot(root)["keep.txt"] == b"green\n"
    run_restore(result.saved.restore_command)
    assert snapshot(root) == before


def test_rollback_to_an_explicit_commit(repo: tuple[Path, History, str]) -> None:
    root, _, first = repo
    (root / "keep.txt").write_text("edit\n")
    result = rollback(
        root, pipeline=PIPELINE, history=History(root / "empty"), to=first[:7], sync=Synced()
    )
    assert result.target == first
    assert (root / "keep.txt").read_text() == "green\n"


def test_refuses_without_a_green_commit(make_repo: Callable[..., Path]) -> None:
    root = make_repo()
    (root / "README.md").write_text("work\n")
    with pytest.raises(RollbackRefusedError, match="has no green commit"):
        rollback(root, pipeline=PIPELINE, history=History(root / "h.jsonl"), sync=Synced())
    assert (root / "README.md").read_text() == "work\n"


def test_refuses_an_unknown_target(repo: tuple[Path, History, str]) -> None:
    root, history, _ = repo
    with pytest.raises(RollbackRefusedError, match="unknown target 'nope'"):
        rollback(root, pipeline=PIPELINE, history=history, to="nope", sync=Synced())


def test_refuses_a_green_commit_that_left_the_repository(make_repo: Callable[..., Path]) -> None:
    root = make_repo()
    history = History(root / "h.jsonl")
    green(history, "0" * 40)
    with pytest.raises(RollbackRefusedError, match="not in this repository any more"):
        rollback(root, pipeline=PIPELINE, history=history, sync=Synced())


def test_refuses_during_a_merge(repo: tuple[Path, History, str]) -> None:
    root, history, first = repo
    git(root, "checkout", "-q", "-b", "other", first)
    (root / "keep.txt").write_text("conflicting\n")
    git(root, "commit", "-q", "-am", "conflict")
    subprocess.run(["git", "merge", "main"], cwd=root, capture_output=True, check=False)
    before = snapshot(root)
    with pytest.raises(RollbackRefusedError, match="a merge is in progress"):
        rollback(root, pipeline=PIPELINE, history=history, sync=Synced())
    assert snapshot(root) == before


def test_refuses_during_a_rebase(repo: tuple[Path, History, str]) -> None:
    root, history, first = repo
    git(root, "checkout", "-q", "-b", "other", first)
    (root / "keep.txt").write_text("conflicting\n")
    git(root, "commit", "-q", "-am", "conflict")
    subprocess.run(["git", "rebase", "main"], cwd=root, capture_output=True, check=False)
    with pytest.raises(RollbackRefusedError, match="a rebase is in progress"):
        rollback(root, pipeline=PIPELINE, history=history, sync=Synced())


def test_refuses_outside_git_and_without_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run inside a checkout (nox puts tmp dirs there): git must not look above.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    with pytest.raises(RollbackRefusedError, match="is not a git work tree"):
        rollback(tmp_path, pipeline=PIPELINE, history=History(tmp_path / "h"), sync=Synced())
    git(tmp_path, "init", "-q")
    with pytest.raises(RollbackRefusedError, match="no commit yet"):
        rollback(tmp_path, pipeline=PIPELINE, history=History(tmp_path / "h"), sync=Synced())


def test_refuses_unknown_or_outside_paths(repo: tuple[Path, History, str], tmp_path: Path) -> None:
    root, history, _ = repo
    with pytest.raises(RollbackRefusedError, match="is neither in the work tree"):
        rollback(root, pipeline=PIPELINE, history=history, paths=["no/such"], sync=Synced())
    with pytest.raises(RollbackRefusedError, match="is outside the repository"):
        rollback(root, pipeline=PIPELINE, history=history, paths=[str(tmp_path)], sync=Synced())


def test_uv_sync_reports_its_last_words(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\n")
    problem = uv_sync(tmp_path)
    assert problem  # uv cannot parse it and says why
