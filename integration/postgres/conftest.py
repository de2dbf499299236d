"""A throwaway PostgreSQL server for the integration tier: real `initdb` + `pg_ctl`, one per run.

The cluster lives in a temp dir named with the run id, listens only on 127.0.0.1 at a free port,
trusts local connections, and is stopped and deleted at the end of the session even when tests
fail. Its dir carries the run's tag (`hangar-test-<run id>-pg…`, `testkit.runs`), so a cluster
left behind by a killed run is stopped and removed by the next run's sweep, never a live run's.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit import runs

START_TIMEOUT_S = 60


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path

    def url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"


def _tool(name: str) -> str:
    """The path of PostgreSQL's `name`, provisioning the tier's packages first when it is missing.

    Still missing afterwards: skipped with the reason and the install command on a person's
    machine, failed under CI=true (`skip_or_fail`)."""
    import gates.provision as provision

    path = provision.find_tool(name)
    if path is None:
        report = provision.ensure("integration")  # installs what it can without a password
        path = provision.find_tool(name)
        if path is None:
            if name in report.missing:
                report.skip_or_fail(f"PostgreSQL's `{name}` was not found")
            pytest.fail(
                f"PostgreSQL's `{name}` was not found on PATH or in [tool.gates.provision] "
                f"extra_dirs, though provisioning found every tool of the tier: {report.tools}",
                pytrace=False,
            )
    return str(path)


def _runner() -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "running as root needs the `postgres` system user (Debian's postgresql package)"
        )
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_cluster(pg_ctl: str, data_dir: Path) -> None:
    pid_file = data_dir / "postmaster.pid"
    if pid_file.exists():
        result = subprocess.run(
            [*_runner(), pg_ctl, "stop", "-D", str(data_dir), "-m", "immediate", "-w", "-t", "30"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 and pid_file.exists():
            # pg_ctl could not stop it (e.g. a half-written pid file): end the postmaster ourselves.
            with contextlib.suppress(ProcessLookupError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for this test session."""
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    runs.sweep_once()  # a killed run's cluster (the tier's session start has swept already)
    base = runs.new_dir("pg")
    data_dir = base / "data"
    runner = _runner()
    if runner:
        shutil.chown(base, user="postgres")
    port = _free_port()
    try:
        subprocess.run(
            [*runner, initdb, "-D", str(data_dir), "-U", "hangar", "--auth=trust", "-E", "UTF8"],
            capture_output=True,
            text=True,
            check=True,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        subprocess.run(
            [
                *runner,
                pg_ctl,
                "start",
                "-D",
                str(data_dir),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-o",
                options,
                "-l",
                str(base / "server.log"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        log = base / "server.log"
        detail = log.read_text() if log.exists() else ""
        _stop_cluster(pg_ctl, data_dir)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr}\n{detail}")
    try:
        yield PostgresServer("127.0.0.1", port, "hangar", data_dir)
    finally:
        _stop_cluster(pg_ctl, data_dir)


@pytest.fixture
def postgres_database(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards); yields its SQLAlchemy URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = f"host={postgres.host} port={postgres.port} user={postgres.user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres.url(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
