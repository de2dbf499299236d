"""Disks (create, attach, detach, delete) and snapshots (take, roll back) in the detail view."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from e2e.conftest import MachineNames
from e2e.pages.machine import MachineDetailPage
from testkit.client import ApiClient


def test_disk_attach_and_detach(admin_page: Page, api: ApiClient, names: MachineNames) -> None:
    name = names.new("disks")
    machine = api.create_machine(name, start=False)
    detail = MachineDetailPage(admin_page).open(machine["id"], name)

    detail.create_disk("data", size_mb=2048)
    detail.expect_disk("data", attached=False)
    detail.attach_disk("data")
    # A disk that is attached cannot be deleted: the server's reason is shown.
    detail.disk_row("data").get_by_role("button", name="Delete disk data").click()
    admin_page.get_by_role("dialog").get_by_role("button", name="Delete disk").click()
    expect(admin_page.get_by_test_id("disk-error")).to_contain_text("attached")

    detail.detach_disk("data")
    assert [d["attached"] for d in api.ok("GET", f"/machines/{machine['id']}/disks")] == [False]


def test_snapshot_rollback(admin_page: Page, api: ApiClient, names: MachineNames) -> None:
    name = names.new("snaps")
    machine = api.create_machine(name, start=False)
    detail = MachineDetailPage(admin_page).open(machine["id"], name)

    detail.take_snapshot("before-upgrade")
    detail.roll_back("before-upgrade")
    detail.expect_console("rolled back to snapshot before-upgrade")
    detail.expect_state("stopped")


def test_snapshot_needs_a_stopped_machine(
    admin_page: Page, api: ApiClient, names: MachineNames
) -> None:
    name = names.new("running")
    machine = api.create_machine(name, start=True)
    detail = MachineDetailPage(admin_page).open(machine["id"], name)
    detail.expect_state("running")
    detail.snapshots.get_by_label("Snapshot name").fill("now")
    detail.snapshots.get_by_role("button", name="Take snapshot").click()
    expect(admin_page.get_by_test_id("snapshot-error")).to_contain_text(
        f"machine '{name}' is running"
    )
