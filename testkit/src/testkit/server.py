"""A live hangar backend in a subprocess: `hangar serve` on a port of its own, its own data dir,
seeded users.

`LiveServer.start()` runs the server on port 0 (the kernel picks a free port, so two servers never
race for one; the port is read back from the server's log) and returns once `/ready` answers 200
and the users exist. A server that does not come up raises `ServerStartError` carrying the command
line and the tail of its log. `stop()` ends the process group it started (by PID: TERM, then KILL
after a grace period) and always returns; `start()` again serves the same data dir (on a new port).

The server carries the run's tag (`testkit.runs`) in its environment, and its process group is in
the run's journal: when the run is killed, its reaper ends the server and what it started. The
data dir must carry the run's tag too, so the sweeper also finds a killed run's server by the
`HANGAR_DATA_DIR` in its environment.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from testkit import runs
from testkit.client import ApiClient
from testkit.waiting import NotYet, WaitTimeoutError, retry

__all__ = ["LiveServer", "ServerStartError", "User", "hangar_command", "running", "running_all"]

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 40
# uvicorn's line once it listens; with port 0 it names the port the kernel chose.
LISTENING = re.compile(rb"Uvicorn running on http://[^\s:]+:(\d+)")


class ServerStartError(RuntimeError):
    """The backend did not become ready; the message carries its command line and log tail."""


@dataclass(frozen=True)
class User:
    username: str
    password: str
    role: str


def hangar_command() -> list[str]:
    """The `hangar` console script of the running environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name("hangar")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("hangar")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from hangar.cli import main; sys.exit(main())"]


@dataclass
class LiveServer:
    """One backend process on `data_dir` (which carries the run's tag). `viewer=None` seeds no
    viewer; `extra_env` is added to the server's environment (HANGAR_* of the caller are not)."""

    data_dir: Path
    providers: str = "fake"
    admin: User = field(default_factory=lambda: User("admin", "admin-password-e2e", "admin"))
    viewer: User | None = field(
        default_factory=lambda: User("viewer", "viewer-password-e2e", "viewer")
    )
    fake_latency_s: float = 0.5  # the product's default: transient states stay visible
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    seeded: bool = False  # the viewer exists in the data dir (a restart does not seed again)

    def __post_init__(self) -> None:
        if runs.tagged_dir_of(self.data_dir, None) is None:
            raise ValueError(
                f"a live server's data dir must lie in a dir named with the run's tag "
                f"({runs.RUN_TAG}…), so the sweeper can find it if the run is killed; "
                f"got {self.data_dir}"
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("HANGAR_")}
        env.update(
            {
                "HANGAR_DATA_DIR": str(self.data_dir),
                "HANGAR_ADMIN_PASSWORD": self.admin.password,
                "HANGAR_PROVIDERS": self.providers,
                "HANGAR_FAKE_LATENCY_SECONDS": str(self.fake_latency_s),
                # Every test signs in from 127.0.0.1; only wrong passwords count, but be generous.
                "HANGAR_LOGIN_ATTEMPTS_PER_ADDRESS": "1000",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        return [*hangar_command(), "serve", "--migrate", "--port", "0"]

    def start(self) -> LiveServer:
        """Start the backend, wait until it is ready, seed the viewer (once per data dir)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        try:
            self._spawn()
            self._wait_ready(log_start)
            if self.viewer is not None and not self.seeded:
                self._seed(self.viewer)
                self.seeded = True
        except ServerStartError:
            self.stop()
            raise
        return self

    def client(self, user: User | None = None) -> ApiClient:
        """An API client signed in as `user` (the admin by default); close it (or use `with`)."""
        user = user or self.admin
        return ApiClient.connect(self.url, user.username, user.password)

    def _spawn(self) -> None:
        with self.log_path.open("ab") as log:
            # A new session makes the server its own process group, so stop() reaches its children.
            self.process = subprocess.Popen(
                self.command(),
                env=self.env(),  # carries the run's tag (testkit.runs.ENV_TAG) from the start
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        runs.register_process(self.process.pid, group=True)

    def _wait_ready(self, log_start: int) -> None:
        def ready() -> None:
            assert self.process is not None
            if self.process.poll() is not None:
                raise self._start_error(f"the server exited with status {self.process.returncode}")
            if not self.port:
                with self.log_path.open("rb") as log:
                    log.seek(log_start)
                    listening = LISTENING.search(log.read())
                if listening is None:
                    raise NotYet("no 'Uvicorn running on' line in its log yet")
                self.port = int(listening.group(1))
            try:
                answer = httpx.get(f"{self.url}/ready", timeout=2.0)
            except httpx.HTTPError as error:
                raise NotYet(f"/ready: {error!r}") from error
            if answer.status_code != 200:
                raise NotYet(f"/ready answered {answer.status_code}: {answer.text[:200]}")

        self.port = 0
        try:
            retry(ready, what="the server to be ready", timeout=READY_TIMEOUT_S)
        except WaitTimeoutError as timeout:
            raise self._start_error(str(timeout)) from None

    def _seed(self, user: User) -> None:
        argv = [*hangar_command(), "create-user", user.username, "--role", user.role]
        argv += ["--password", user.password]
        result = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, check=False, timeout=60
        )
        if result.returncode != 0:
            raise self._start_error(
                f"seeding user {user.username!r} failed ({' '.join(argv[:-1])} ***): "
                f"{(result.stderr or result.stdout).strip()}"
            )

    def _start_error(self, why: str) -> ServerStartError:
        return ServerStartError(
            f"hangar did not start: {why}\ncommand: {' '.join(self.command())}\n"
            f"log {self.log_path} (last {LOG_TAIL_LINES} lines):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """End the server's process group: INT, then KILL after a grace period. Idempotent.

        SIGINT, not SIGTERM: uvicorn shuts down on either, then raises the signal again, and
        only SIGINT then ends Python the normal way (KeyboardInterrupt), running its exit
        handlers — coverage's save of what the server executed among them."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGINT)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            process.wait(timeout=STOP_GRACE_S)


@contextlib.contextmanager
def running(server: LiveServer) -> Iterator[LiveServer]:
    """A fixture's live server: started (one that does not start fails the test in one line,
    with its log's tail), stopped by PID at the end — and at interpreter exit too, when the
    session is interrupted before the fixture's end."""
    with running_all([server]) as (live,):
        yield live


@contextlib.contextmanager
def running_all(servers: Sequence[LiveServer]) -> Iterator[list[LiveServer]]:
    """`running` for several servers, started side by side (a server's start is mostly its
    imports, so two cores start three in about the time of two in a row). When one does not
    start, every one is stopped and the test fails with the first one's error."""
    servers = list(servers)
    for server in servers:
        atexit.register(server.stop)
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
            failures = [error for error in pool.map(_start, servers) if error is not None]
        if failures:
            pytest.fail(str(failures[0]), pytrace=False)
        yield servers
    finally:
        for server in servers:
            server.stop()


def _start(server: LiveServer) -> ServerStartError | None:
    try:
        server.start()
    except ServerStartError as error:
        return error
    return None
