"""The git repository the gates run in: the commit, whether the tree is dirty, and saving work."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gates.errors import GitError


@dataclass(frozen=True)
class TreeState:
    """Where the work tree stands: HEAD's commit, whether anything differs, a hash of the diff."""

    commit: str
    dirty: bool
    diff_hash: str


class Repository:
    """Thin, typed access to the git commands the gate engine needs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def git(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
        """Run git in the repository and return its stdout; a failure raises GitError."""
        result = subprocess.run(
            ["git", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        if check and result.returncode != 0:
            raise GitError(f"`git {' '.join(args)}` failed in {self.root}: {result.stderr.strip()}")
        return result.stdout

    def git_bytes(self, *args: str) -> bytes:
        result = subprocess.run(["git", *args], cwd=self.root, capture_output=True, check=False)
        if result.returncode != 0:
            raise GitError(f"`git {' '.join(args)}` failed in {self.root}: {result.stderr!r}")
        return result.stdout

    def is_repository(self) -> bool:
        return self.git("rev-parse", "--is-inside-work-tree", check=False).strip() == "true"

    def head(self) -> str:
        """HEAD's full sha, or '' in a repository without commits."""
        return self.git("rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()

    def state(self) -> TreeState:
        """HEAD, dirtiness and a hash of the diff including untracked files' names and bytes."""
        if not self.is_repository():
            return TreeState("", False, "")
        status = self.git_bytes("status", "--porcelain=v1", "-z", "--untracked-files=all")
        if not status:
            return TreeState(self.head(), False, "")
        digest = hashlib.sha256()
        digest.update(self.git_bytes("diff", "HEAD", "--binary") if self.head() else b"")
        for entry in status.split(b"\0"):
            if entry.startswith(b"?? "):
                name = entry[3:].decode(errors="surrogateescape")
                digest.update(name.encode(errors="surrogateescape"))
                path = self.root / name
                if path.is_file():
                    digest.update(path.read_bytes())
        return TreeState(self.head(), True, digest.hexdigest()[:16])

    def operation_in_progress(self) -> str:
        """Name the merge, rebase, cherry-pick, revert or bisect under way, or ''."""
        git_dir = Path(self.git("rev-parse", "--absolute-git-dir").strip())
        markers = {
            "MERGE_HEAD": "a merge",
            "rebase-merge": "a rebase",
            "rebase-apply": "a rebase",
            "CHERRY_PICK_HEAD": "a cherry-pick",
            "REVERT_HEAD": "a revert",
            "BISECT_LOG": "a bisect",
        }
        for marker, name in markers.items():
            if (git_dir / marker).exists():
                return name
        return ""

    def resolve(self, revision: str) -> str | None:
        """The full sha of a commit-ish, or None when it names no commit here."""
        sha = self.git(
            "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", check=False
        ).strip()
        return sha or None

    def short(self, sha: str) -> str:
        return sha[:12]

    def add(self, paths: Sequence[str]) -> None:
        self.git("add", "--", *paths)
