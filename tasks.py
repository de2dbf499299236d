"""Invoke tasks of the Hangar monorepo: one-line wrappers over the `gates` command (and the
`hangar` one, and the template's `tools/template/template.py`), so `uv run invoke gates` and
`uv run gates run` do and say the same.

`uv run invoke --list` shows them; `uv run invoke --help TASK` explains one.
"""

from __future__ import annotations

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task


def _gates(*argv: str) -> None:
    """Run `gates ARGV…` in this process; its exit status becomes the task's."""
    from gates.cli import main

    status = main([a for a in argv if a])
    if status:
        raise Exit(code=status)


def _option(name: str, value: object) -> list[str]:
    """`--name value` when a value was given, `--name` for a true flag, else nothing."""
    if value is True:
        return [name]
    return [name, str(value)] if value not in ("", None, False) else []


@task(
    help={
        "only": "comma-separated phases to run, e.g. deps,static,unit",
        "from": "resume at this phase and run every later one",
        "keep_going": "run the remaining gates after a failure",
        "github": "report phases as commit statuses and a sticky PR comment "
        "(automatic when GITHUB_TOKEN, GITHUB_REPOSITORY and GITHUB_SHA are set)",
        "baseline": "commit the bench gate compares with (never the candidate itself)",
        "all_benchmarks": "the bench gate runs every benchmark, not only those the change "
        "can affect (by default it runs those whose baseline coverage the change touches)",
        "shard": "run shard I/N: that part of every test gate (shard 1: the other gates too)",
        "shards": "run N shards side by side here, then merge them",
        "run_id": "the run's id (CI gives every shard the same)",
    }
)
def gates(
    c: Context,
    only: str = "",
    from_: str = "",
    keep_going: bool = False,
    github: bool = False,
    baseline: str = "",
    shard: str = "",
    shards: int = 0,
    run_id: str = "",
    all_benchmarks: bool = False,
) -> None:
    """Run the phased gates in order; stop at the first failing gate (= gates run)."""
    _gates("run", *_option("--only", only), *_option("--from", from_),
           *_option("--keep-going", keep_going), *_option("--github", github),
           *_option("--baseline", baseline), *_option("--shard", shard),
           *_option("--shards", shards or ""), *_option("--run-id", run_id),
           *_option("--all-benchmarks", all_benchmarks))  # fmt: skip


@task(
    iterable=["dirs"],
    help={
        "dirs": "one shard's results, .gates/runs/<run>/shard-I-of-N (repeatable)",
        "github": "report commit statuses and a PR comment",
    },
)
def merge(c: Context, dirs: list[str] | None = None, github: bool = False) -> None:
    """Merge every shard's results into one verdict, history and report (= gates merge)."""
    _gates("merge", *(dirs or []), *_option("--github", github))


@task(iterable=["tiers"], help={"tiers": "a tier to time (repeatable; default: every test gate's)"})
def durations(c: Context, tiers: list[str] | None = None) -> None:
    """Time every test of the tiers serially; the shards' split reads it (= gates durations)."""
    _gates("durations", *(tiers or []))


@task
def status(c: Context) -> None:
    """Show per phase and gate the last outcome and the last green commit (= gates status)."""
    _gates("status")


@task(
    iterable=["paths"],
    help={
        "to": "commit to roll back to (default: the last commit on which every gate passed)",
        "paths": "roll back only this path (repeatable)",
    },
)
def rollback(c: Context, to: str = "", paths: list[str] | None = None) -> None:
    """Save all work, bring the tree back to the last green commit (= gates rollback)."""
    _gates("rollback", *_option("--to", to), *(a for p in paths or [] for a in ("--path", p)))


@task(
    help={
        "package": "upgrade only this package (uv lock --upgrade-package)",
        "commit": "commit the upgrade when every gate passes",
        "only": "comma-separated phases to run after upgrading (default: all)",
    }
)
def upgrade(c: Context, package: str = "", commit: bool = False, only: str = "") -> None:
    """Upgrade the lock and keep it only if every gate passes (= gates upgrade)."""
    _gates("upgrade", *_option("--package", package), *_option("--commit", commit),
           *_option("--only", only))  # fmt: skip


@task(
    help={
        "output": "directory for index.html and its charts (default: .gates/report)",
        "commits": "how many of the latest commits the outcome grid shows",
    }
)
def report(c: Context, output: str = "", commits: int = 20) -> None:
    """Write the gate history as a static HTML report with charts (= gates report)."""
    _gates("report", *_option("--output", output), "--commits", str(commits))


@task(
    help={
        "tier": "the test tier to run again and again (e2e, unit, integration), or all",
        "runs": "how many times to run it (with all: how many rounds of every tier)",
        "pytest_args": 'extra pytest arguments, e.g. "-k auth"',
    }
)
def soak(c: Context, tier: str = "e2e", runs: int = 10, pytest_args: str = "") -> None:
    """Run a tier, or every tier, N times; list every flaky test (= gates soak)."""
    import shlex

    _gates(
        "soak",
        "--tier",
        tier,
        "--runs",
        str(runs),
        *(["--", *shlex.split(pytest_args)] if pytest_args else []),
    )


@task(
    help={
        "runs": "how many runs (each: HEAD against itself, then once per slowdown factor)",
        "factors": "slowdowns to inject, comma-separated (default 1.05,1.1,1.25)",
        "metric": "wall, instructions (only the callgrind runs of cpu_bound benchmarks) or both",
        "select": "which benchmarks, as pytest arguments (default: the bench gate's)",
    }
)
def calibrate(
    c: Context, runs: int = 10, factors: str = "", metric: str = "both", select: str = ""
) -> None:
    """Measure the bench gate's false-alarm and detection rates here (= gates calibrate)."""
    _gates("calibrate", "--runs", str(runs), *_option("--factors", factors),
           "--metric", metric, *_option("--select", select))  # fmt: skip


@task
def setup(c: Context) -> None:
    """Install the workspace exactly as locked, then the system packages the tiers need."""
    c.run("uv sync --locked", pty=False)
    _provision_system_packages()


def _provision_system_packages() -> None:
    """System packages (QEMU, Chromium, ...): `gates provision`; HANGAR_PROVISION=0 skips it."""
    _gates("provision")


def _template(*argv: str) -> None:
    """Run `python tools/template/template.py ARGV…`; its exit status becomes the task's."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent / "tools" / "template" / "template.py"
    status = subprocess.run([sys.executable, str(script), *argv], check=False).returncode
    if status:
        raise Exit(code=status)


@task(
    positional=["dest"],
    help={
        "dest": "the new project's directory (new or empty, outside this checkout)",
        "name": "the project's name: lowercase letters, digits and dashes, e.g. acme-corp",
        "bare": "without the example service: the gate engine, the test kit, one test per tier",
        "description": "the project's one-line description",
    },
)
def new(c: Context, dest: str, name: str = "", bare: bool = False, description: str = "") -> None:
    """Make a new project from this template, renamed, locked and committed (docs/template.md)."""
    _template("new", dest, "--name", name, *_option("--bare", bare),
              *_option("--description", description))  # fmt: skip


@task(help={"to": "template commit to update to (default: the template's newest)"})
def template_update(c: Context, to: str = "") -> None:
    """Merge what changed in the template since this project was made or last updated."""
    _template("update", *_option("--to", to))


# ---- The example service's tasks (a project made with `invoke new --bare` has none).
@task(help={"force": "rebuild even when the cached image is current"})
def image(c: Context, force: bool = False) -> None:
    """Build the qemu provider's guest image `tiny` (cached; rebuilt only when an input changes)."""
    c.run("hangar image build" + (" --force" if force else ""), pty=False)


DEV_DATA_DIR = ".hangar/dev"


@task(help={"host": "address to listen on", "port": "port to listen on"})
def dev(c: Context, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve hangar with auto-reload: data in .hangar/dev, migrated, an admin ready to log in."""
    import os
    from pathlib import Path

    data_dir = os.environ.get("HANGAR_DATA_DIR") or str(Path(__file__).parent / DEV_DATA_DIR)
    env = {"HANGAR_DATA_DIR": data_dir}
    c.run("uv run hangar dev-setup", env=env, pty=False)  # migrates; prints the admin login
    print(f"url:      http://{host}:{port}/")
    c.run(f"uv run hangar serve --reload --host {host} --port {port}", env=env, pty=False)
