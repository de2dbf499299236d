"""The critical flow on a real QEMU virtual machine, through the web UI.

Runs when QEMU and the `tiny` guest image can be had: skipped with the reason on a person's
machine otherwise, and failed under CI=true (CI never hides a tier). It drives its own backend,
with the `fake` and `qemu` providers enabled, so the other tests keep their fast fake-only server.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from e2e.api import ApiClient
from e2e.conftest import RUN_ID, skip_or_fail
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


@pytest.fixture(scope="module")
def qemu_server(worker_id: str) -> Iterator[LiveServer]:
    try:
        from gates import provision
    except ImportError:
        pytest.skip("gates.provision is not importable")
    provision.ensure("integration").skip_or_fail("the QEMU flow needs QEMU")
    # QEMU's monitor socket lives in the data dir and a socket path must stay under 108 bytes,
    # so this data dir is short and under /tmp (named with the run id, removed afterwards).
    data_dir = Path(tempfile.mkdtemp(prefix=f"hangar-{RUN_ID}-{worker_id}-q", dir="/tmp"))
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
