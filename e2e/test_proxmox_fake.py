"""The web UI with the `proxmox` provider enabled, against fakepve — a fake Proxmox VE API server
(not Proxmox VE; real Proxmox is tested in integration/proxmox/ when credentials are set): the
create form offers it, and a machine's page shows its guest kind, node and VMID.

The fake runs in this process (fakepve's pytest plugin, `time_scale` 0) with a certificate the
server verifies (`HANGAR_PROXMOX_CA_FILE`); a second live server of this run is pointed at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.pages.login import LoginPage
from e2e.pages.machine import MachineDetailPage
from e2e.pages.machines import MachinesPage
from e2e.pages.shell import AppShell
from testkit import runs
from testkit.server import LiveServer, User, running

TOKEN_ID = "hangar@pve!e2e"
TOKEN_SECRET = "e2e-token-secret"  # the fake's, made up here
TEMPLATE_VMID = 100
NODE = "pve1"
ADMIN = User("admin", "admin-password-e2e-pve", "admin")


@pytest.fixture(scope="module")
def proxmox_server(
    fakepve_session: Any, fakepve_cafile: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """`hangar serve` with the fake and the proxmox providers, the latter on the fake PVE."""
    pve = fakepve_session
    pve.apitokens[TOKEN_ID] = TOKEN_SECRET
    if not any(vm.vmid == TEMPLATE_VMID for vm in pve.vms):
        pve.add_vm(
            TEMPLATE_VMID,
            "debian-template",
            template=True,
            config={"scsi0": f"local-lvm:base-{TEMPLATE_VMID}-disk-0,size=2G", "memory": 512},
        )
    server = LiveServer(
        data_dir=tmp_path_factory.mktemp(f"{runs.RUN_TAG}-pve"),
        providers="fake,proxmox",
        admin=ADMIN,
        viewer=None,
        extra_env={
            "HANGAR_PROXMOX_URL": pve.url,
            "HANGAR_PROXMOX_TOKEN_ID": TOKEN_ID,
            "HANGAR_PROXMOX_TOKEN_SECRET": TOKEN_SECRET,
            "HANGAR_PROXMOX_NODE": NODE,
            "HANGAR_PROXMOX_STORAGE": "local-lvm",
            "HANGAR_PROXMOX_CA_FILE": fakepve_cafile,
            "HANGAR_RUN_ID": runs.RUN_ID,
        },
    )
    with running(server):
        yield server


@pytest.fixture
def pve_page(
    proxmox_server: LiveServer, browser: Browser, browser_context_args: dict[str, Any]
) -> Iterator[Page]:
    """A page of that server (the tier's own fixtures all point at the tier's live server)."""
    context = browser.new_context(**{**browser_context_args, "base_url": proxmox_server.url})
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_proxmox_guest_shows_its_kind_node_and_vmid(
    proxmox_server: LiveServer, fakepve_session: Any, pve_page: Page
) -> None:
    page = pve_page
    LoginPage(page).open().sign_in(ADMIN.username, ADMIN.password)
    AppShell(page).expect_signed_in(ADMIN.username)
    machines = MachinesPage(page).open()
    providers = machines.form.get_by_label("Provider").locator("option")
    expect(providers).to_have_text(["fake", "proxmox"])

    name = "pve-guest"
    machines.create(
        name, provider="proxmox", image=f"pve-vm:{TEMPLATE_VMID}", memory_mb=512, start=False
    )
    machines.expect_state(name, "stopped")
    with proxmox_server.client(ADMIN) as api:
        (machine,) = [m for m in api.ok("GET", "/machines")["items"] if m["name"] == name]
    vmid = int(machine["details"]["vmid"])
    assert vmid in range(9000, 10000)
    (guest,) = [vm for vm in fakepve_session.vms if vm.vmid == vmid]
    assert {"hangar", f"run-{runs.RUN_ID}"} <= set(str(guest.config["tags"]).split(";"))

    detail = MachineDetailPage(page).open(machine["id"], name)
    facts = page.get_by_test_id("machine-facts")
    expect(facts.get_by_test_id("detail-kind")).to_have_text("qemu")
    expect(facts.get_by_test_id("detail-node")).to_have_text(NODE)
    expect(facts.get_by_test_id("detail-vmid")).to_have_text(str(vmid))
    expect(facts).to_contain_text("Guest kind")
    expect(facts).to_contain_text("VMID")

    detail.act("Delete")
    page.get_by_role("dialog").get_by_role("button", name="Delete machine").click()
    expect(page.get_by_role("heading", name="Machines", level=1)).to_be_visible()
    machines.expect_gone(name)
    assert vmid not in {vm.vmid for vm in fakepve_session.vms}  # the guest went with its machine
