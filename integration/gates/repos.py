"""What the gate engine's end-to-end checks share: git with an identity, scratch repositories,
and an environment that belongs to the project under test, never to the test run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

# Variables that would point a child project's uv, Python or pytest at this run's environment.
FOREIGN = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "PYTHONPATH", "COVERAGE_FILE")


def git(root: Path, *args: str) -> str:
    """Run git in `root` with a fixed identity; a failure raises with git's words."""
    return subprocess.run(
        ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def project_environ() -> dict[str, str]:
    """This process's environment without what ties it to the run's own environments."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in FOREIGN and not k.startswith(("PYTEST_", "COV_CORE_", "GATES_"))
    }


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A git repository at `root` with one commit of the given files."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


def toml_list(items: list[str]) -> str:
    """A TOML array of basic strings (JSON's escaping is valid TOML)."""
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def working_tree_copy(source: Path, copy: Path) -> Path:
    """`source`'s working tree (tracked and untracked, not ignored files) as a one-commit
    repository at `copy`."""
    listed = git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        if (source / name).is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target)
    git(copy, "init", "-q", "-b", "main")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "--no-gpg-sign", "-m", "self-check")
    return copy
