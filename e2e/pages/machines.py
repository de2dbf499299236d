"""The machines view: the table with live state, the create form, the row actions."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from e2e.guards import step


class MachinesPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.heading = page.get_by_role("heading", name="Machines", level=1)
        self.form = page.get_by_test_id("create-form")
        self.form_error = page.get_by_test_id("create-error")
        self.table = page.get_by_test_id("machines-table")

    def open(self) -> MachinesPage:
        with step(self.page, "opening the machines view"):
            self.page.goto("/machines")
            expect(self.heading).to_be_visible()
            expect(self.table.get_by_text("Loading…")).to_have_count(0)
        return self

    # -- reading ----------------------------------------------------------------------
    def row(self, name: str) -> Locator:
        return self.page.get_by_test_id(f"machine-row-{name}")

    def state(self, name: str) -> Locator:
        return self.row(name).get_by_test_id("machine-state")

    def expect_state(self, name: str, state: str, timeout: float | None = None) -> None:
        """Wait until the machine shows the stable `state` and no operation is pending on it.

        Waiting for another state stops at `error` at once, with the machine's error message.
        """
        idle_row = self.page.locator(f'[data-testid="machine-row-{name}"][aria-busy="false"]')
        settled = idle_row.locator(f'[data-state="{state}"], [data-state="error"]')
        expect(settled).to_be_visible(timeout=timeout)
        if state != "error" and self.state(name).get_attribute("data-state") == "error":
            why = self.row(name).get_by_test_id("machine-error").all_inner_texts()
            raise AssertionError(f"machine {name} went to error instead of {state}: {why}")
        expect(self.state(name)).to_have_attribute("data-state", state)

    def expect_pending(self, name: str) -> None:
        """The row shows that an operation is running: busy, spinner, every action disabled.

        One locator checks all of it at once, so the check cannot straddle the operation's end.
        """
        busy_row = self.page.locator(f'[data-testid="machine-row-{name}"][aria-busy="true"]')
        pending = busy_row.locator('[data-testid="machine-state"].is-busy').filter(visible=True)
        expect(pending).to_have_count(1)
        expect(busy_row.locator("button:enabled")).to_have_count(0)

    def expect_gone(self, name: str) -> None:
        expect(self.row(name)).to_have_count(0)

    def expect_error(self, name: str, message: str) -> None:
        self.expect_state(name, "error")
        expect(self.row(name).get_by_test_id("machine-error")).to_contain_text(message)

    def action(self, name: str, label: str) -> Locator:
        return self.row(name).get_by_role("button", name=f"{label} {name}", exact=True)

    def field_error(self, field: str) -> Locator:
        return self.form.get_by_test_id(f"{field}-error")

    # -- doing ------------------------------------------------------------------------
    def fill_create_form(
        self,
        name: str,
        *,
        provider: str = "fake",
        image: str | None = None,
        cpus: int | str = 1,
        memory_mb: int | str = 256,
        start: bool = True,
    ) -> None:
        self.form.get_by_label("Name").fill(name)
        self.form.get_by_label("Provider").select_option(provider)
        if image is not None:
            self.form.get_by_label("Image").select_option(image)
        self.form.get_by_label("CPUs").fill(str(cpus))
        self.form.get_by_label("Memory (MiB)").fill(str(memory_mb))
        self.form.get_by_label("Start after creating").set_checked(start)

    def create(self, name: str, **spec: object) -> None:
        """Fill in the form and submit it; the new row appears (its state is not awaited)."""
        with step(self.page, f"creating machine {name}"):
            self.fill_create_form(name, **spec)  # type: ignore[arg-type]
            self.form.get_by_role("button", name="Create machine").click()
            expect(self.row(name)).to_be_visible()

    def submit_invalid(self, name: str, **spec: object) -> None:
        with step(self.page, f"submitting an invalid machine {name!r}"):
            self.fill_create_form(name, **spec)  # type: ignore[arg-type]
            self.form.get_by_role("button", name="Create machine").click()
            expect(self.form_error).to_be_visible()

    def _act(self, name: str, label: str) -> None:
        with step(self.page, f"clicking {label} on {name}"):
            self.action(name, label).click()

    def start(self, name: str) -> None:
        self._act(name, "Start")

    def stop(self, name: str) -> None:
        self._act(name, "Stop")

    def restart(self, name: str) -> None:
        self._act(name, "Restart")

    def delete(self, name: str) -> None:
        with step(self.page, f"deleting {name}"):
            self.action(name, "Delete").click()
            dialog = self.page.get_by_role("dialog")
            dialog.get_by_role("button", name="Delete machine").click()
            expect(dialog).to_have_count(0)

    def clone(self, name: str, copy: str) -> None:
        with step(self.page, f"cloning {name} as {copy}"):
            self.action(name, "Clone").click()
            dialog = self.page.get_by_role("dialog")
            dialog.get_by_label("Name of the copy").fill(copy)
            dialog.get_by_role("button", name="Clone").click()
            expect(dialog).to_have_count(0)

    def open_machine(self, name: str) -> None:
        with step(self.page, f"opening the detail view of {name}"):
            self.row(name).get_by_role("link", name=name, exact=True).click()
            expect(self.page.get_by_role("heading", name=name, level=1)).to_be_visible()
