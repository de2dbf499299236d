"""A throwaway PostgreSQL server for the integration tier: real `initdb` + `pg_ctl`, one per run.

The tools are found (and installed, when that needs no password) by the project's provisioning;
still missing, the tier is skipped with the install command on a person's machine and fails under
CI=true. The cluster lives in /tmp/hangar-test-<pid>-<hex>-pg…, listens only on 127.0.0.1 at a
free port, trusts local connections, and is stopped and deleted when the session ends, even when
tests fail. A cluster whose run was killed is stopped and deleted by the next run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gates import provision

ROOT = Path("/tmp")  # short: PostgreSQL's socket lives in the cluster's dir
PREFIX = "hangar-test-"
OWNED = re.compile(rf"^{PREFIX}(\d+)-[0-9a-f]{{6}}-pg")
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def conninfo(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"


def _tool(name: str) -> str:
    path = provision.find_tool(name)
    if path is None:
        report = provision.ensure("integration")  # installs what it can without a password
        path = provision.find_tool(name)
        if path is None:
            report.skip_or_fail(f"PostgreSQL's `{name}` was not found")
            pytest.fail(f"PostgreSQL's `{name}` was not found", pytrace=False)
    return str(path)


def _runner() -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root needs the `postgres` system user (Debian's postgresql)")
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(pg_ctl: str, base: Path) -> None:
    """Stop the cluster in `base` (pg_ctl, else the postmaster's pid) and delete `base`."""
    data = base / "data"
    pid_file = data / "postmaster.pid"
    if pid_file.exists():
        stop = [*_runner(), pg_ctl, "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "30"]
        result = subprocess.run(stop, capture_output=True, check=False)
        if result.returncode != 0 and pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(pg_ctl: str) -> None:
    """Stop and delete the clusters of runs whose pytest process is gone."""
    for base in ROOT.glob(f"{PREFIX}*-pg*"):
        owner = OWNED.match(base.name)
        if owner and base.is_dir() and not _alive(int(owner.group(1))):
            _stop(pg_ctl, base)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for this test session."""
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    _sweep(pg_ctl)
    tag = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}-pg"
    base = Path(tempfile.mkdtemp(prefix=tag, dir=ROOT))
    runner = _runner()
    if runner:
        shutil.chown(base, user="postgres")
    port = _free_port()
    data = base / "data"
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
    try:
        for command in (
            [initdb, "-D", str(data), "-U", "hangar", "--auth=trust", "-E", "UTF8"],
            [pg_ctl, "start", "-D", str(data), "-w", "-t", str(START_TIMEOUT_S), "-o", options,
             "-l", str(base / "server.log")],
        ):  # fmt: skip
            subprocess.run([*runner, *command], capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as error:
        log = base / "server.log"
        detail = log.read_text() if log.exists() else ""
        _stop(pg_ctl, base)
        pytest.fail(f"PostgreSQL did not start: {error.stderr}\n{detail}")
    try:
        yield PostgresServer("127.0.0.1", port, "hangar")
    finally:
        _stop(pg_ctl, base)
