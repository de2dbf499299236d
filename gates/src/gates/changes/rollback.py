"""Rollback: bring the tree (or some paths) back to the last green commit without losing work.

Before anything changes, the current state — staged, unstaged and untracked files — is saved as
two commits (the index, and the work tree with untracked files) under `refs/gates/saved/`, so
no garbage collection can lose it, and the one command that restores it is returned. HEAD and
the branch stay where they are: the rolled back tree shows up as changes against HEAD, ready to
commit or to discard.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from gates.engine.history import History
from gates.engine.pipeline import Pipeline
from gates.errors import RollbackRefusedError
from gates.git.repository import Repository

# Re-syncs the environment after the tree changed; returns '' or what went wrong.
Sync = Callable[[Path], str]
SYNC_COMMAND = ("uv", "sync", "--locked", "--all-groups")


def uv_sync(root: Path) -> str:
    """Sync the project environment to the (rolled back) lock."""
    result = subprocess.run(
        list(SYNC_COMMAND), cwd=root, capture_output=True, text=True, check=False
    )
    if result.returncode == 0:
        return ""
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


@dataclass(frozen=True)
class Saved:
    """The saved work: the work-tree commit (its second parent holds the index) and how to
    restore both."""

    commit: str
    ref: str
    restore_command: str


@dataclass(frozen=True)
class RollbackResult:
    target: str
    paths: tuple[str, ...]
    saved: Saved
    sync_problem: str


def choose_target(repo: Repository, history: History, pipeline: Pipeline, to: str | None) -> str:
    """The commit to roll back to: `to`, or the last green commit; refuses with a reason."""
    if to is not None:
        sha = repo.resolve(to)
        if sha is None:
            raise RollbackRefusedError(f"unknown target {to!r}: it names no commit in {repo.root}")
        return sha
    green = history.last_green_commit(pipeline.green_gates())
    if green is None:
        phases = ", ".join(pipeline.green_phases)
        raise RollbackRefusedError(
            f"history ({history.path}) has no green commit: no clean run where phases {phases} "
            "all passed. Run `gates run` on a clean tree first, or pass --to COMMIT."
        )
    sha = repo.resolve(green)
    if sha is None:
        raise RollbackRefusedError(
            f"the last green commit {green[:12]} is not in this repository any more "
            "(rebased or garbage-collected?); pass --to COMMIT"
        )
    return sha


def rollback(
    root: Path,
    *,
    pipeline: Pipeline,
    history: History,
    to: str | None = None,
    paths: Sequence[str] = (),
    sync: Sync = uv_sync,
) -> RollbackResult:
    """Save the current state, then set index and tree (or `paths`) to the target commit."""
    repo = Repository(root)
    if not repo.is_repository():
        raise RollbackRefusedError(f"{root} is not a git work tree")
    if not repo.head():
        raise RollbackRefusedError(
            "the repository has no commit yet: there is nothing to roll back to"
        )
    operation = repo.operation_in_progress()
    if operation:
        raise RollbackRefusedError(
            f"{operation} is in progress: finish or abort it first (rollback never mixes with it)"
        )
    target = choose_target(repo, history, pipeline, to)
    relative = tuple(_relative(root, p) for p in paths)
    for path in relative:
        if not _known(repo, target, path):
            raise RollbackRefusedError(
                f"path {path!r} is neither in the work tree, the index, HEAD nor {target[:12]}"
            )
    saved = save(repo, relative, target)
    if relative:
        scope = [p for p in relative if _in_commit(repo, target, p) or _in_index(repo, p)]
        if scope:
            repo.git("restore", f"--source={target}", "--staged", "--worktree", "--", *scope)
        present = [p for p in relative if (root / p).exists()]
        if present:
            repo.git("clean", "-f", "-d", "-q", "--", *present)  # saved above; not in the target
    else:
        repo.git("restore", f"--source={target}", "--staged", "--worktree", "--", ":/")
        repo.git("clean", "-f", "-d", "-q")  # untracked files are saved; ignored ones stay
    return RollbackResult(target, relative, saved, sync(root))


def save(repo: Repository, paths: Sequence[str], target: str) -> Saved:
    """Record the index and the work tree (with untracked files) of `paths`, or of everything,
    as two commits kept under refs/gates/saved/; return the command that puts them back.

    `git stash push -- PATHS` cannot serve here: its index commit holds the whole index, so
    applying it back conflicts with staged files outside PATHS that rollback left alone.
    """
    head = repo.head()
    index_tree = repo.git("write-tree").strip()
    present = [p for p in paths if (repo.root / p).exists() or _in_index(repo, p)]
    with tempfile.TemporaryDirectory() as scratch:
        scratch_index = Path(scratch) / "index"
        real_index = repo.root / repo.git("rev-parse", "--git-path", "index").strip()
        if real_index.exists():
            shutil.copyfile(real_index, scratch_index)
        env = {**os.environ, "GIT_INDEX_FILE": str(scratch_index)}
        if present or not paths:
            repo.git("add", "--all", "--", *(present or [":/"]), env=env)
        work_tree = repo.git("write-tree", env=env).strip()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    message = f"gates rollback to {target[:12]} at {stamp}"
    index_commit = repo.git(
        "commit-tree", index_tree, "-p", head, "-m", f"index before {message}"
    ).strip()
    work_commit = repo.git(
        "commit-tree",
        work_tree,
        "-p",
        head,
        "-p",
        index_commit,
        "-m",
        f"work tree before {message}",
    ).strip()
    ref = f"refs/gates/saved/{stamp}"
    repo.git("update-ref", ref, work_commit)
    git_c = f"git -C {shlex.quote(str(repo.root))}"
    specs = list(paths) or [":/"]
    # git restore rejects a pathspec that matches nothing in the source or the index.
    work_specs = [
        s
        for s in specs
        if not paths or _in_commit(repo, work_commit, s) or _in_commit(repo, target, s)
    ]
    index_specs = [
        s
        for s in specs
        if not paths or _in_commit(repo, index_commit, s) or _in_commit(repo, target, s)
    ]
    steps = []
    if work_specs:
        steps.append(f"{git_c} restore --source={work_commit} --worktree -- {_quote(work_specs)}")
    if index_specs:
        steps.append(f"{git_c} restore --source={index_commit} --staged -- {_quote(index_specs)}")
    return Saved(work_commit, ref, " && ".join(steps) or "true")


def _quote(paths: Sequence[str]) -> str:
    return " ".join(shlex.quote(p) for p in paths)


def _in_index(repo: Repository, path: str) -> bool:
    return bool(repo.git("ls-files", "--", path).strip())


def _relative(root: Path, path: str) -> str:
    """A path relative to the root; relative input is read from the working directory when that
    is inside the repository (as a person types it), else from the root."""
    base = Path.cwd() if Path.cwd().resolve().is_relative_to(root.resolve()) else root
    absolute = (base / path).resolve()
    try:
        return absolute.relative_to(root.resolve()).as_posix() or "."
    except ValueError:
        raise RollbackRefusedError(f"path {path!r} is outside the repository {root}") from None


def _in_commit(repo: Repository, commit: str, path: str) -> bool:
    return bool(repo.git("ls-tree", "-r", "--name-only", commit, "--", path).strip())


def _known(repo: Repository, target: str, path: str) -> bool:
    return (
        (repo.root / path).exists()
        or _in_index(repo, path)
        or _in_commit(repo, "HEAD", path)
        or _in_commit(repo, target, path)
    )
