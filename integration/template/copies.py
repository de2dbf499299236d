"""What the template's end-to-end tests share: a scratch template made of this checkout's working
tree, the commands a person runs, and an environment that belongs to the copy, never to this run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_NAME = "hangar"
# Variables that would point a copy's uv, Python, pytest or coverage at this run's environment.
FOREIGN = (
    "VIRTUAL_ENV",
    "UV_PROJECT_ENVIRONMENT",
    "UV_PYTHON",
    "PYTHONPATH",
    "PYTHONPYCACHEPREFIX",
    "COVERAGE_FILE",
    "COVERAGE_PROCESS_CONFIG",  # coverage.py's subprocess patch, which measures this tier
    "COVERAGE_PROCESS_START",
)
IDENTITY = ("-c", "user.name=Template Test", "-c", "user.email=template@example.invalid")
# This run's settings a copy gets under its own prefix: how the tiers find and install their tools.
CARRIED = ("PROVISION", "CHROMIUM")
# The OSV service the copies' audit gate asks (conftest.py serves a fake one for the run: the
# copies' verdicts must not depend on whether api.osv.dev answers from this machine).
AUDIT_SERVICE: list[str] = []
GATES_TIMEOUT_S = 1500


def git(root: Path, *args: str) -> str:
    """Run git in `root` with a fixed identity; a failure raises with git's words."""
    return subprocess.run(
        ["git", *IDENTITY, *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout


def snapshot(dest: Path) -> Path:
    """A git repository at `dest` holding this checkout's working tree (tracked files and new
    ones not ignored) as one commit: the template under test, uncommitted changes included."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git(dest, "init", "--quiet", "-b", "main")
    git(dest, "add", "--all")
    git(dest, "commit", "--quiet", "-m", "the template under test")
    return dest


def copy_environ(name: str) -> dict[str, str]:
    """This process's environment for a copy named `name`: without what ties it to this run's
    environments or to this repository on GitHub (a copy's gates would report to it), and with
    this run's CARRIED settings under the copy's prefix (HANGAR_PROVISION → ACME_PROVISION).
    CI=true stays: under CI a copy's missing tool fails its tier too."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in FOREIGN
        and not k.startswith(("PYTEST_", "COV_CORE_", "GATES_", "NOX_", "GITHUB_"))
    }
    for setting in CARRIED:
        value = os.environ.get(f"{TEMPLATE_NAME.upper()}_{setting}")
        if value is not None:
            environ[f"{name.replace('-', '_').upper()}_{setting}"] = value
    environ["UV_PYTHON_DOWNLOADS"] = "never"
    if AUDIT_SERVICE:
        environ["GATES_AUDIT_SERVICE_URL"] = AUDIT_SERVICE[0]
    return environ


def new(template: Path, dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`new` of the template at `template` (its tools/template/template.py: `invoke new` wraps
    it), as a person runs it."""
    script = template / "tools" / "template" / "template.py"
    return subprocess.run(
        [sys.executable, str(script), "new", str(dest), *args],
        cwd=template,
        env=copy_environ("x"),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def uv_run(copy: Path, name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`uv run ARGV` (`invoke gates`, `nox -s docs`) in the copy, in the copy's own environment."""
    return subprocess.run(
        ["uv", "run", "--locked", *argv],
        cwd=copy,
        env=copy_environ(name),
        capture_output=True,
        text=True,
        check=False,
        timeout=GATES_TIMEOUT_S,
    )


def said(result: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    """The end of what a command printed, for a failure's message."""
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


def files_naming(root: Path, word: str) -> list[str]:
    """Every file under `root` (hidden ones and .git too, as `grep -rni` reads them) whose bytes
    contain `word` in any letter case."""
    found = []
    needle = word.lower().encode()
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes().lower():
            found.append(path.relative_to(root).as_posix())
    return found
