"""Merge a later template version into a project's files: the difference between two renderings
of the template (old → new) is brought into the files under the project's root, file by file.

A file the project left as the old rendering is replaced; one both changed is merged three-way
(`git merge-file`, the old rendering as the base) and gets conflict markers where both changed the
same lines; a file the template added is added; one it deleted is deleted when the project left it
unchanged. Everything else is a conflict, listed with what happened, and the project's version
is kept.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rendering import EXECUTABLE, SYMLINK, File, TemplateError, Tree, current_umask, write_file

# How conflict markers name the project's side, the base and the template's side.
Labels = tuple[str, str, str]


class ConflictError(Exception):
    """A change of the template that needs a person: what happened, for the list."""


@dataclass
class Outcome:
    """What a merge did: each file brought in, and each conflict (path, what happened)."""

    changed: list[str] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)


def merge_text(mine: bytes, base: bytes, theirs: bytes, labels: Labels) -> tuple[bytes, bool]:
    """Three-way merge with `git merge-file`: (result, whether it has conflict markers)."""
    with tempfile.TemporaryDirectory(prefix="template-merge-") as scratch:
        paths = [Path(scratch) / side for side in ("mine", "base", "theirs")]
        for path, data in zip(paths, (mine, base, theirs), strict=True):
            path.write_bytes(data)
        names = [arg for label in labels for arg in ("-L", label)]
        result = subprocess.run(
            ["git", "merge-file", "-p", *names, *map(str, paths)], capture_output=True, check=False
        )
    if not 0 <= result.returncode <= 127:
        raise TemplateError(f"git merge-file failed: {result.stderr.decode(errors='replace')}")
    return result.stdout, result.returncode > 0


def read_current(path: Path) -> File | None:
    if path.is_symlink():
        return File(SYMLINK, str(path.readlink()).encode())
    if not path.is_file():
        return None
    executable = path.stat().st_mode & 0o111
    return File(EXECUTABLE if executable else "100644", path.read_bytes())


def merge_file(root: Path, path: str, before: File | None, after: File, labels: Labels) -> str:
    """Bring one file's change into the project; returns what happened, "" for nothing, or
    raises ConflictError."""
    target = root / path
    current = read_current(target)
    if current == after:
        return ""
    if current is None:
        if before is not None:
            raise ConflictError("changed in the template, deleted here (not added again)")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_file(target, after, current_umask())
        return "added"
    if current == before:
        write_file(target, after, current_umask())
        return "updated"
    base = before.data if before is not None else b""
    if b"\0" in current.data + base + after.data:
        raise ConflictError("a binary file changed here and in the template (yours kept)")
    merged, conflicted = merge_text(current.data, base, after.data, labels)
    mode = after.mode if before is not None and current.mode == before.mode else current.mode
    write_file(target, File(mode, merged), current_umask())
    if conflicted:
        raise ConflictError("both changed the same lines: conflict markers")
    return "merged"


def merge_trees(
    root: Path, old: Tree, new: Tree, labels: Labels, skipped: frozenset[str] = frozenset()
) -> Outcome:
    """Bring the difference old → new into the files under `root`, but for the `skipped` paths
    (see the module doc)."""
    outcome = Outcome()
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before == after or path in skipped:
            continue
        try:
            if after is not None:
                done = merge_file(root, path, before, after, labels)
            else:
                done = delete_file(root / path, before)
        except ConflictError as conflict:
            outcome.conflicts.append((path, str(conflict)))
            continue
        if done:
            outcome.changed.append(f"{done} {path}")
    return outcome


def delete_file(target: Path, before: File | None) -> str:
    """The template deleted a file: delete it here too when it is unchanged."""
    current = read_current(target)
    if current is None:
        return ""
    if current != before:
        raise ConflictError("deleted in the template, changed here (kept)")
    target.unlink()
    return "deleted"
