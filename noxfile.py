"""Test tiers of the Hangar monorepo: one session per tier, each in its own uv environment.

Run `uv run nox -l` for the list, `uv run nox -s unit-3.11` for one, `uv run nox -R -s unit-3.11`
to reuse a warm environment (installs are skipped, so it costs about nothing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PYTHONS: list[str] = nox.project.python_versions(PYPROJECT)
DEFAULT_PYTHON = PYTHONS[0]
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# A person without some Python gets that session skipped; CI must never hide one.
nox.options.error_on_missing_interpreters = CI

TEST_DIRS = {
    "unit": ["backend/tests", "gates/tests"],
}
SOURCES = ["noxfile.py", "tasks.py", "conftest.py", "backend", "gates"]


def _activate_pyenv_versions() -> None:
    """Make every installed pyenv Python that we support resolvable.

    pyenv's `python3.12` shim exists even when 3.12 is not the active version and then fails when
    run, which uv and nox cannot tell from a real interpreter. Activating all supported installed
    versions for this process (and its children) turns those shims into working interpreters.
    """
    pyenv = shutil.which("pyenv")
    if pyenv is None or "PYENV_VERSION" in os.environ:
        return
    installed = subprocess.run(
        [pyenv, "versions", "--bare", "--skip-aliases"], capture_output=True, text=True, check=False
    ).stdout.split()
    chosen = [
        max((v for v in installed if v.startswith(f"{py}.") and v.count(".") == 2), default="")
        for py in PYTHONS
    ]
    if any(chosen):
        os.environ["PYENV_VERSION"] = ":".join(v for v in chosen if v)


_activate_pyenv_versions()
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # a missing Python is reported, not fetched


def sync(session: nox.Session, *groups: str) -> None:
    """Install the workspace and the given dependency groups, exactly as locked, into the session."""
    env_dir = session.virtualenv.location
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--no-default-groups",
        *(f"--group={group}" for group in groups),
        f"--python={Path(env_dir) / 'bin' / 'python'}",
        env={"UV_PROJECT_ENVIRONMENT": env_dir},
        silent=True,
    )


@nox.session(python=PYTHONS, tags=["tests"])
def unit(session: nox.Session) -> None:
    """Unit tier: logic, API contracts and bad input, serially, with coverage of backend/src."""
    sync(session, "test")
    args = session.posargs or TEST_DIRS["unit"]
    session.run(
        "pytest",
        "-p",
        "no:randomly",
        "--cov",
        "--cov-report=term",
        "--cov-fail-under=90",
        *args,
        env={"COVERAGE_FILE": str(Path(session.create_tmp()) / ".coverage")},
    )


@nox.session(python=DEFAULT_PYTHON, tags=["tests"])
def parallel(session: nox.Session) -> None:
    """Parallel tier: the unit tests under pytest-xdist in random order, proving isolation."""
    sync(session, "test")
    session.run("pytest", "-n", "auto", "-p", "randomly", *(session.posargs or TEST_DIRS["unit"]))


@nox.session(python=DEFAULT_PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and format check with ruff (no changes; `nox -s fmt` fixes)."""
    sync(session, "lint")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session(python=DEFAULT_PYTHON, default=False)
def fmt(session: nox.Session) -> None:
    """Apply ruff's fixes and formatting."""
    sync(session, "lint")
    session.run("ruff", "check", "--fix", *SOURCES)
    session.run("ruff", "format", *SOURCES)


@nox.session(python=DEFAULT_PYTHON)
def typecheck(session: nox.Session) -> None:
    """Static types: mypy --strict on the service and the gate engine."""
    sync(session, "typecheck")
    session.run("mypy", "--strict", "backend/src", "gates/src", *session.posargs)


if __name__ == "__main__":
    nox.main()
