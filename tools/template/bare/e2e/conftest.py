"""Fixtures of the e2e tier: the package's server in a subprocess on a free port, and the browser.

The browser is the one `e2e/browser.py` chooses: HANGAR_CHROMIUM, Playwright's own Chromium, or
the system's (installed by provisioning when that needs no password). Without one the tier is
skipped with the install command on a person's machine and fails under CI=true.

Each pytest process starts its reaper first (`testkit.runs`): the server and the browser carry
the run's tag in their environment, so when the run is killed, even by `kill -9`, they are ended
within seconds.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from e2e.browser import browser_type_launch_args, chromium_executable
from playwright.sync_api import expect

from testkit import runs
from testkit.waiting import wait_until

__all__ = ["browser_type_launch_args", "chromium_executable"]  # e2e/browser.py

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10

expect.set_options(timeout=10_000)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start this process's reaper before anything of the run exists."""
    runs.start_reaper()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:  # noqa: S310 -- ours
        return bool(answer.status == 200)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`hangar serve` on a free port, until the session ends (stopped even when tests fail);
    what it prints goes to a log, shown when it does not come up."""
    port = _free_port()
    command = [sys.executable, "-m", "hangar", "serve", "--port", str(port)]
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until(
                lambda: server.poll() is None and _healthy(url),
                what=f"`hangar serve --port {port}` to answer {url}/health",
                timeout=START_TIMEOUT_S,
                ignoring=(OSError,),
            )
        except AssertionError as error:
            pytest.fail(f"{error}\n{log.read_text()}", pytrace=False)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def base_url(live_server: str) -> str:
    """Where pytest-playwright's `page.goto("/")` goes."""
    return live_server
