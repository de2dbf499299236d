"""The critical flow on a real QEMU virtual machine, through the web UI.

Runs when QEMU and the `tiny` guest image can be had: skipped with the reason on a person's
machine otherwise, and failed under CI=true (CI never hides a tier). It drives its own backend,
with the `fake` and `qemu` providers enabled, so the other tests keep their fast fake-only server.
"""

from __future__ import annotations

import atexit
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from e2e.guards import PageGuard
from e2e.pages.login import LoginPage
from e2e.pages.machine import MachineDetailPage
from e2e.pages.machines import MachinesPage
from e2e.pages.shell import AppShell
from testkit import runs
from testkit.ci import skip_or_fail
from testkit.qemu import seed_data_dir
from testkit.server import LiveServer, running

BOOT_TIMEOUT_MS = 240_000
QEMU_DIR_LABEL = "q"


@pytest.fixture(scope="module")
def qemu_server(tiny_image: Path) -> Iterator[LiveServer]:
    """A backend with the `fake` and `qemu` providers and the shared `tiny` image."""
    # QEMU's monitor socket lives in the data dir and a socket path must stay under 108 bytes,
    # so this data dir is short and under /tmp: `hangar-test-<run id>-q…`. It carries the run's
    # tag (so do the VMs, by their pidfiles in it): a killed run's dir, VMs and server are swept
    # at the next start.
    data_dir = seed_data_dir(runs.new_dir(QEMU_DIR_LABEL, runs.SOCKET_ROOT), tiny_image)
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    server = LiveServer(data_dir=data_dir, providers="fake,qemu")
    try:
        with running(server):
            try:
                yield server
            finally:
                # QEMU machines outlive the API server: delete this run's machines before it stops.
                with server.client() as api:
                    api.delete_machines(f"e2e-{runs.RUN_ID}")
    finally:
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

    name = f"e2e-{runs.RUN_ID}-qemu"
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


# ---------------------------------------------------------------------- what it leaves
def test_the_qemu_flow_tags_its_data_dir_with_this_run_and_keeps_socket_paths_short() -> None:
    data_dir = runs.new_dir(QEMU_DIR_LABEL, runs.SOCKET_ROOT)
    try:
        assert data_dir.name.startswith(f"hangar-test-{os.getpid()}-")
        assert runs.tagged_dir_of(data_dir) == data_dir  # what the sweeper recognises
        # The longest socket path QEMU gets: a 7-digit pid, mkdtemp's 8 characters, a 32-hex key.
        longest = str(data_dir).replace(str(os.getpid()), "9" * 7)
        assert len(f"{longest}/qemu/machines/{'f' * 32}/control.sock") <= 107
        assert runs.SOCKET_ROOT in runs.TEMP_ROOTS  # where the flow puts its data dirs
    finally:
        data_dir.rmdir()
