"""A throwaway PostgreSQL server for a test run: real `initdb` + `pg_ctl`, one per run.

The cluster lives in `/tmp/hangar-test-<run id>-pg…` (`testkit.runs.new_dir`; short: its Unix
socket lives there too), listens only on 127.0.0.1 at a free port, trusts local connections, and
is stopped (`pg_ctl stop -m immediate`) and deleted when the session ends, even when tests fail.
Its postmaster's pidfile is in the run's journal before it starts, so when the run is killed its
reaper ends it with SIGQUIT (PostgreSQL's immediate shutdown, which also frees its shared memory)
and removes the dir; a run whose reaper was killed too is swept by the next run.

The tools are found (and installed, when that needs no password) by the project's provisioning;
still missing, the tests are skipped with the install command on a person's machine and fail
under CI=true. A conftest imports the `postgres` fixture.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gates import provision
from testkit import runs

__all__ = ["PostgresServer", "postgres", "start_cluster", "stop_cluster", "tool"]

START_TIMEOUT_S = 60


class ClusterStartError(RuntimeError):
    """initdb or pg_ctl failed; the message carries their words and the server's log."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path
    pg_ctl: str = "pg_ctl"

    def stop(self) -> None:
        """Stop the server as an administrator would (`pg_ctl stop -m fast`: its clients are
        disconnected), keeping its files; `start()` brings it back on its port."""
        stop = [self.pg_ctl, "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30"]
        subprocess.run([*_runner(), *stop], capture_output=True, text=True, check=True)

    def start(self) -> None:
        """Start the stopped server again, as it was (same port, socket dir and options)."""
        _start_server(self.pg_ctl, self.data_dir, self.port)

    def url(self, database: str, driver: str = "psycopg") -> str:
        """A SQLAlchemy URL of `database`."""
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        """A libpq connection string of `database`."""
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"


def tool(name: str) -> str:
    """The path of PostgreSQL's `name`, provisioning the tier's packages first when it is missing.

    Still missing afterwards: skipped with the reason and the install command on a person's
    machine, failed under CI=true."""
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
            "running as root needs the `postgres` system user (Debian's postgresql package)",
            pytrace=False,
        )
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_cluster(initdb: str, pg_ctl: str) -> PostgresServer:
    """initdb and start a cluster in a new tagged dir; ClusterStartError (after removing what
    was made) if it does not come up."""
    base = runs.new_dir("pg", runs.SOCKET_ROOT)
    data_dir = base / "data"
    runner = _runner()
    if runner:
        shutil.chown(base, user="postgres")
    port = _free_port()
    log = base / "server.log"
    runs.register_pidfile(data_dir / "postmaster.pid", stop=signal.SIGQUIT)  # before the start
    try:
        init = [initdb, "-D", str(data_dir), "-U", "hangar", "--auth=trust", "-E", "UTF8"]
        subprocess.run([*runner, *init], capture_output=True, text=True, check=True)
        _start_server(pg_ctl, data_dir, port)
    except subprocess.CalledProcessError as error:
        detail = log.read_text(errors="replace") if log.exists() else ""
        stop_cluster(pg_ctl, data_dir)
        raise ClusterStartError(f"PostgreSQL did not start: {error.stderr}\n{detail}") from None
    return PostgresServer("127.0.0.1", port, "hangar", data_dir, pg_ctl)


def _start_server(pg_ctl: str, data_dir: Path, port: int) -> None:
    """`pg_ctl start` of the cluster in `data_dir`: on 127.0.0.1:`port`, its socket in the
    tagged dir above it, its log there too."""
    base = data_dir.parent
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
    start = [pg_ctl, "start", "-D", str(data_dir), "-w", "-t", str(START_TIMEOUT_S),
             "-o", options, "-l", str(base / "server.log")]  # fmt: skip
    subprocess.run([*_runner(), *start], capture_output=True, text=True, check=True)


def stop_cluster(pg_ctl: str, data_dir: Path) -> None:
    """Stop the cluster (`pg_ctl stop -m immediate`, else SIGKILL to the postmaster) and delete
    its tagged dir."""
    pid_file = data_dir / "postmaster.pid"
    if pid_file.exists():
        stop = [pg_ctl, "stop", "-D", str(data_dir), "-m", "immediate", "-w", "-t", "30"]
        result = subprocess.run([*_runner(), *stop], capture_output=True, check=False)
        if result.returncode != 0 and pid_file.exists():
            # pg_ctl could not stop it (e.g. a half-written pid file): end the postmaster ourselves.
            with contextlib.suppress(ProcessLookupError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for this test session."""
    initdb, pg_ctl = tool("initdb"), tool("pg_ctl")
    runs.sweep_once()  # a killed run's cluster (a tier's session start may have swept already)
    try:
        server = start_cluster(initdb, pg_ctl)
    except ClusterStartError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        stop_cluster(pg_ctl, server.data_dir)
