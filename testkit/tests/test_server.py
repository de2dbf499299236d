"""The live-server launcher against stand-ins for `hangar serve` (small Python programs): the
port is read back from the log, readiness is `/ready`, a server that dies says why with its log,
stop() ends it, several start side by side and all stop when one cannot start, and a data dir
without the run's tag is refused."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit import runs
from testkit.server import LiveServer, ServerStartError, running_all

# Listens on a port the kernel picks, logs it as uvicorn does, answers /ready with 200, and ends
# on SIGINT as uvicorn does: it installs its own handler, so a SIGINT its parent ignored (a
# background job of a shell ignores it) still stops it, and stop() needs no grace period.
SERVES = """
import http.server, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ready" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Ready)
print(f"INFO:     Uvicorn running on http://127.0.0.1:{server.server_port} (Press CTRL+C to quit)")
sys.stdout.flush()
server.serve_forever()
"""
DIES = "import sys; print('no such database: x'); sys.exit(3)"


@dataclass
class StandIn(LiveServer):
    program: str = SERVES

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.program]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / f"{runs.RUN_TAG}-server" / "data"


def test_start_reads_the_port_from_the_log_and_waits_for_ready(data_dir: Path) -> None:
    server = StandIn(data_dir, viewer=None)
    try:
        server.start()
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        process = server.process
        assert process is not None
        assert process.poll() is None
    finally:
        server.stop()
    assert process.poll() is not None
    assert server.process is None
    server.stop()  # idempotent


def test_a_server_that_exits_says_so_with_its_command_and_log(data_dir: Path) -> None:
    server = StandIn(data_dir, viewer=None, program=DIES)
    with pytest.raises(ServerStartError) as failure:
        server.start()
    message = str(failure.value)
    assert "the server exited with status 3" in message
    assert f"command: {sys.executable} -c" in message
    assert "no such database: x" in message  # the log's tail
    assert server.process is None


def test_the_environment_names_the_data_dir_and_drops_the_callers_hangar_settings(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_PROVIDERS", "qemu")
    env = StandIn(data_dir, extra_env={"HANGAR_X": "1"}).env()
    assert env["HANGAR_DATA_DIR"] == str(data_dir)
    assert env["HANGAR_PROVIDERS"] == "fake"
    assert env["HANGAR_X"] == "1"


def test_a_data_dir_without_the_run_tag_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must lie in a dir named with the run's tag"):
        LiveServer(tmp_path / "data")


def test_running_all_starts_servers_side_by_side_and_stops_each(data_dir: Path) -> None:
    servers = [StandIn(data_dir.parent / f"data-{n}", viewer=None) for n in range(3)]
    with running_all(servers) as started:
        assert started == servers
        processes = [server.process for server in servers]
        assert all(process is not None and process.poll() is None for process in processes)
        assert len({server.port for server in servers}) == 3
    assert all(process is not None and process.poll() is not None for process in processes)
    assert all(server.process is None for server in servers)


def test_running_all_stops_every_server_when_one_cannot_start(data_dir: Path) -> None:
    good = StandIn(data_dir.parent / "good", viewer=None)
    bad = StandIn(data_dir.parent / "bad", viewer=None, program=DIES)
    failed = pytest.raises(pytest.fail.Exception, match="exited with status 3")
    with failed, running_all([good, bad]):
        pytest.fail("entered although a server did not start")
    assert good.process is None  # started, then stopped
    assert good.port > 0
