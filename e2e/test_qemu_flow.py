"""The critical flow on a real QEMU virtual machine, through the web UI.

Runs when QEMU and the `tiny` guest image can be had: skipped with the reason on a person's
machine otherwise, and failed under CI=true (CI never hides a tier). It drives its own backend,
with the `fake` and `qemu` providers enabled, so the other tests keep their fast fake-only server.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from e2e.api import ApiClient
from e2e.conftest import (
    QEMU_ROOT,
    RUN_ID,
    TEMP_ROOTS,
    TEST_PREFIX,
    skip_or_fail,
    sweep_dead_runs,
)
from e2e.guards import PageGuard
from e2e.pages.login import LoginPage
from e2e.pages.machine import MachineDetailPage
from e2e.pages.machines import MachinesPage
from e2e.pages.shell import AppShell
from e2e.server import LiveServer, ServerStartError

ROOT = Path(__file__).resolve().parents[1]
# Built images are cached across runs here (gitignored); each run's data dir only registers them.
IMAGE_CACHE = Path(os.environ.get("HANGAR_E2E_IMAGE_CACHE", ROOT / ".hangar" / "e2e-images"))
BOOT_TIMEOUT_MS = 240_000
QEMU_TOOLS = ("qemu-system-x86_64", "qemu-img")

BUILD_IMAGE = """
import sys
import tempfile
from pathlib import Path
from hangar.images import tiny
from hangar.images.registry import Registry
result = tiny.build(Path(sys.argv[1]), log=print)
Registry(Path(sys.argv[2])).save(result.image)
print("image", result.image.name, "ready")
"""


def _tiny_image(data_dir: Path) -> None:
    """Build (or find cached) the `tiny` guest image and register it in `data_dir`."""
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", BUILD_IMAGE, str(IMAGE_CACHE), str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        skip_or_fail(
            f"the QEMU flow needs the tiny guest image, which could not be built: "
            f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}"
        )


def qemu_data_dir_prefix(run_id: str) -> str:
    """`hangar-test-<run id>-q`: the run's tag, which both tiers' sweepers recognise. The run id
    is per xdist worker already; the name stays short for QEMU's socket paths (107 bytes)."""
    return f"{TEST_PREFIX}{run_id}-q"


def require_qemu() -> None:
    """Return when QEMU's tools are there (provisioning them if it can); else skip with the
    reason and the install command, or fail under CI=true."""
    try:
        from gates import provision
    except ImportError:  # gates is a workspace member; this only guards a partial environment
        skip_or_fail(
            "the QEMU flow needs QEMU, and gates.provision (which finds and installs it) is not "
            "importable; install with: uv sync --group e2e"
        )
        return
    report = provision.ensure("integration")  # QEMU's packages are listed under integration
    if any(tool in report.missing for tool in QEMU_TOOLS):  # PostgreSQL is not needed here
        report.skip_or_fail("the QEMU flow needs QEMU")


@pytest.fixture(scope="module")
def qemu_server() -> Iterator[LiveServer]:
    require_qemu()
    # QEMU's monitor socket lives in the data dir and a socket path must stay under 108 bytes,
    # so this data dir is short and under /tmp. It carries the run's tag (so do the VMs, by
    # their pidfiles in it): a killed run's dir, VMs and server are swept at the next start.
    data_dir = Path(tempfile.mkdtemp(prefix=qemu_data_dir_prefix(RUN_ID), dir=QEMU_ROOT))
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    _tiny_image(data_dir)
    server = LiveServer(data_dir=data_dir, providers="fake,qemu")
    atexit.register(server.stop)
    try:
        server.start()
    except ServerStartError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        # QEMU machines outlive the API server: delete this run's machines before stopping it.
        with ApiClient(server.url, server.admin.username, server.admin.password) as api:
            api.delete_machines(f"e2e-{RUN_ID}")
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser_context_args(
    browser_context_args: dict[str, Any], qemu_server: LiveServer
) -> dict[str, Any]:
    """This module's pages talk to the QEMU-enabled backend."""
    return {**browser_context_args, "base_url": qemu_server.url}


@pytest.fixture
def qemu_page(
    qemu_server: LiveServer, new_context: Callable[..., BrowserContext], guard: PageGuard
) -> Page:
    guard.origin = qemu_server.url
    context = new_context()
    guard.watch_context(context)
    page = context.new_page()
    LoginPage(page).open().sign_in(qemu_server.admin.username, qemu_server.admin.password)
    AppShell(page).expect_signed_in(qemu_server.admin.username)
    return page


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_critical_flow_on_a_real_qemu_machine(qemu_page: Page, qemu_server: LiveServer) -> None:
    """create → running → stop → start → restart → the guest's own web page → delete → gone."""
    page = qemu_page
    providers = page.request.get("/api/v1/providers").json()
    qemu = next((p for p in providers if p["name"] == "qemu"), None)
    if qemu is None or "tiny" not in qemu["images"]:
        skip_or_fail(f"the qemu provider is not enabled or lacks the tiny image: {providers}")

    name = f"e2e-{RUN_ID}-qemu"
    machines = MachinesPage(page).open()
    machines.create(name, provider="qemu", image="tiny", cpus=1, memory_mb=256)
    machines.expect_state(name, "running", timeout=BOOT_TIMEOUT_MS)

    machines.stop(name)
    machines.expect_state(name, "stopped", timeout=BOOT_TIMEOUT_MS)
    machines.start(name)
    machines.expect_state(name, "running", timeout=BOOT_TIMEOUT_MS)
    machines.restart(name)
    machines.expect_state(name, "running", timeout=BOOT_TIMEOUT_MS)

    machines.open_machine(name)
    detail = MachineDetailPage(page)
    detail.expect_state("running")
    guest = detail.open_guest_page()
    expect(guest.get_by_role("heading", name=f"hangar machine {name}")).to_be_visible(
        timeout=60_000
    )

    page.go_back()
    machines.delete(name)
    machines.expect_gone(name)


# ---------------------------------------------------------------------- cleanup and fallbacks
# Fast tests of this module's own guarantees; they start no server and no browser.
def _dead_pid() -> int:
    """The pid of a process that has ended (the pid of a killed run)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _fake_process(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A sleeping process carrying `argv` on its command line (and `env`); never a real VM."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", *argv],
        env={**os.environ, **(env or {})},
    )


def _leftovers(root: Path, run_id: str) -> tuple[Path, list[subprocess.Popen[bytes]]]:
    """What an e2e run `run_id` leaves when it is killed: the QEMU flow's data dir, a daemonized
    VM keyed by the service's id with its pidfile there and its API server, and the fake-only
    API server of the other tests."""
    data_dir = Path(tempfile.mkdtemp(prefix=qemu_data_dir_prefix(run_id), dir=root))
    pidfile = data_dir / "qemu" / "machines" / "m-0123" / "qemu.pid"
    pidfile.parent.mkdir(parents=True)
    vm = _fake_process(["-name", "hangar:m-0123,debug-threads=on", "-pidfile", str(pidfile)])
    server = _fake_process(["serve"], env={"HANGAR_DATA_DIR": str(data_dir)})
    # The fake-only server of `live_server`, whose data dir is in pytest's own temp dir.
    fake_dir = root / "pytest-of-me" / "pytest-7" / "popen-gw0" / f"hangar-test-{run_id}-gw00"
    fake_dir.mkdir(parents=True)
    fake_server = _fake_process(["serve"], env={"HANGAR_DATA_DIR": str(fake_dir)})
    return data_dir, [vm, server, fake_server]


def test_a_dead_runs_qemu_flow_leftovers_are_swept_a_live_runs_are_not(tmp_path: Path) -> None:
    live_owner = _fake_process([])  # another run, still alive (a python process)
    dead_dir, dead = _leftovers(tmp_path, f"{_dead_pid()}-dead00")
    mine_dir, mine = _leftovers(tmp_path, RUN_ID)
    other_dir, other = _leftovers(tmp_path, f"{live_owner.pid}-a11ce0")
    not_a_run = tmp_path / "hangar-test-notes"  # only starts like a tag: never swept
    not_a_run.mkdir()
    stranger = _fake_process(["serve"], env={"HANGAR_DATA_DIR": str(not_a_run)})
    try:
        swept = sweep_dead_runs(roots=(tmp_path,))
        for leftover in dead:
            assert leftover.wait(10) == -signal.SIGKILL
        assert not dead_dir.exists()
        for leftover in [*mine, *other]:
            assert leftover.poll() is None, f"pid {leftover.pid} of a live run was killed"
        assert mine_dir.exists()
        assert other_dir.exists()
        assert not_a_run.exists()
        assert stranger.poll() is None, "a process that is no run's was killed"
        vm, server, fake_server = dead
        assert f"QEMU m-0123 pid {vm.pid}" in swept
        assert f"server pid {server.pid}" in swept
        assert f"server pid {fake_server.pid}" in swept
        assert str(dead_dir) in swept
        assert len(swept) == 4, swept
    finally:
        for started in [live_owner, stranger, *dead, *mine, *other]:
            started.kill()
            started.wait()


def test_the_qemu_flow_tags_what_it_leaves_with_this_run_and_its_pid() -> None:
    prefix = qemu_data_dir_prefix(RUN_ID)
    assert prefix.startswith(f"hangar-test-{os.getpid()}-")
    # The longest socket path QEMU gets: a 7-digit pid, mkdtemp's 8 characters, a 32-hex key.
    longest = f"/tmp/{prefix.replace(str(os.getpid()), '9' * 7)}12345678"
    assert len(f"{longest}/qemu/machines/{'f' * 32}/control.sock") <= 107
    assert Path("/tmp") in TEMP_ROOTS  # where the flow puts its data dirs (socket path length)


def test_without_the_provisioning_module_the_flow_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gates.provision", None)  # `import` raises ImportError
    monkeypatch.setenv("CI", "true")
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as outcome:
        require_qemu()
    assert outcome.type is pytest.fail.Exception, f"skipped under CI=true: {outcome.value}"
    assert "CI=true: a missing tool fails the tier" in str(outcome.value)


def test_without_the_provisioning_module_the_flow_skips_locally_with_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gates.provision", None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"uv sync"):
        require_qemu()
