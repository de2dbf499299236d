"""A live hangar backend in a subprocess: its own port, data dir and seeded users.

`LiveServer.start()` returns once `/ready` answers 200 and the users exist; a server that does not
come up raises `ServerStartError` carrying the command line and the tail of its log. `stop()` ends
the process group it started (by PID: TERM, then KILL after a grace period) and always returns.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 40


class ServerStartError(RuntimeError):
    """The backend did not become ready; the message carries its command line and log tail."""


@dataclass(frozen=True)
class User:
    username: str
    password: str
    role: str


def free_port() -> int:
    """A TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    """One backend process. `run_id` goes into the data dir name so leftovers can be swept."""

    data_dir: Path
    providers: str = "fake"
    admin: User = field(default_factory=lambda: User("admin", "admin-password-e2e", "admin"))
    viewer: User = field(default_factory=lambda: User("viewer", "viewer-password-e2e", "viewer"))
    fake_latency_s: float = 0.5  # the product's default: transient states stay visible
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

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
        return [*hangar_command(), "serve", "--migrate", "--port", str(self.port)]

    def start(self, attempts: int = 3) -> LiveServer:
        """Start the backend and seed the viewer; retries on a port taken in between."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last: ServerStartError | None = None
        for _ in range(attempts):
            self.port = free_port()
            try:
                self._spawn()
                self._wait_ready()
                self._seed_viewer()
                return self
            except ServerStartError as error:
                self.stop()
                last = error
                if "address already in use" not in str(error).lower():
                    break
        assert last is not None
        raise last

    def _spawn(self) -> None:
        log = self.log_path.open("ab")
        try:
            # A new session makes the server its own process group, so stop() reaches its children.
            self.process = subprocess.Popen(
                self.command(),
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer yet"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise self._start_error(f"the server exited with status {self.process.returncode}")
            try:
                answer = httpx.get(f"{self.url}/ready", timeout=2.0)
                if answer.status_code == 200:
                    return
                last = f"/ready answered {answer.status_code}: {answer.text[:200]}"
            except httpx.HTTPError as error:
                last = f"/ready: {error!r}"
            time.sleep(0.1)
        raise self._start_error(f"not ready after {READY_TIMEOUT_S:.0f} s ({last})")

    def _seed_viewer(self) -> None:
        argv = [*hangar_command(), "create-user", self.viewer.username, "--role", self.viewer.role]
        argv += ["--password", self.viewer.password]
        result = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, check=False, timeout=60
        )
        if result.returncode != 0:
            raise self._start_error(
                f"seeding user {self.viewer.username!r} failed ({' '.join(argv[:-1])} ***): "
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
        """End the server's process group: TERM, then KILL after a grace period. Idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
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
