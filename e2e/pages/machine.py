"""The machine detail view: facts, actions, disks, snapshots, serial log, guest page panel."""

from __future__ import annotations

import re

from playwright.sync_api import FrameLocator, Locator, Page, expect

from e2e.guards import step


class MachineDetailPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.state = page.get_by_test_id("detail-state").get_by_test_id("machine-state")
        self.disks = page.get_by_test_id("disks-section")
        self.snapshots = page.get_by_test_id("snapshots-section")
        self.console = page.get_by_test_id("console")
        self.guest_panel = page.get_by_test_id("guest-panel")

    def open(self, machine_id: str, name: str) -> MachineDetailPage:
        with step(self.page, f"opening the detail view of {name}"):
            self.page.goto(f"/machines/{machine_id}")
            self.expect_shown(name)
        return self

    def expect_shown(self, name: str) -> None:
        expect(self.page.get_by_role("heading", name=name, level=1)).to_be_visible()

    def expect_state(self, state: str) -> None:
        expect(self.state).to_have_attribute("data-state", state)
        expect(self.state).not_to_have_class(re.compile(r"\bis-busy\b"))

    def action(self, label: str) -> Locator:
        return self.page.get_by_test_id(f"action-{label.lower()}")

    def act(self, label: str) -> None:
        with step(self.page, f"clicking {label} in the detail view"):
            self.action(label).click()

    # -- disks ------------------------------------------------------------------------
    def disk_row(self, name: str) -> Locator:
        return self.disks.get_by_test_id(f"disk-row-{name}")

    def create_disk(self, name: str, size_mb: int = 1024) -> None:
        with step(self.page, f"creating disk {name}"):
            self.disks.get_by_label("Disk name").fill(name)
            self.disks.get_by_label("Size (MiB)").fill(str(size_mb))
            self.disks.get_by_role("button", name="Create disk").click()
            expect(self.disk_row(name)).to_be_visible()

    def attach_disk(self, name: str) -> None:
        with step(self.page, f"attaching disk {name}"):
            self.disks.get_by_role("button", name=f"Attach disk {name}").click()
            self.expect_disk(name, attached=True)

    def detach_disk(self, name: str) -> None:
        with step(self.page, f"detaching disk {name}"):
            self.disks.get_by_role("button", name=f"Detach disk {name}").click()
            self.expect_disk(name, attached=False)

    def expect_disk(self, name: str, *, attached: bool) -> None:
        expect(self.disk_row(name).get_by_test_id("disk-attached")).to_have_text(
            "attached" if attached else "detached"
        )

    # -- snapshots --------------------------------------------------------------------
    def snapshot_row(self, name: str) -> Locator:
        return self.snapshots.get_by_test_id(f"snapshot-row-{name}")

    def take_snapshot(self, name: str) -> None:
        with step(self.page, f"taking snapshot {name}"):
            self.snapshots.get_by_label("Snapshot name").fill(name)
            self.snapshots.get_by_role("button", name="Take snapshot").click()
            expect(self.snapshot_row(name)).to_be_visible()

    def roll_back(self, name: str) -> None:
        with step(self.page, f"rolling back to snapshot {name}"):
            self.snapshots.get_by_role("button", name=f"Roll back snapshot {name}").click()
            dialog = self.page.get_by_role("dialog")
            dialog.get_by_role("button", name="Roll back").click()
            expect(dialog).to_have_count(0)
            expect(self.page.get_by_test_id("rollback-done")).to_contain_text(name)

    # -- serial log and guest page ----------------------------------------------------
    def expect_console(self, text: str) -> None:
        expect(self.console).to_contain_text(text)

    def open_guest_page(self) -> FrameLocator:
        with step(self.page, "opening the guest's web page"):
            self.guest_panel.get_by_role("button", name="Open guest page").click()
            frame = self.guest_panel.get_by_test_id("guest-frame")
            expect(frame).to_be_visible()
            return self.page.frame_locator("[data-testid=guest-frame]")

    def expect_no_endpoint(self) -> None:
        expect(self.guest_panel.get_by_test_id("guest-no-endpoint")).to_be_visible()
