"""The dashboard: machines by state and provider, recent events."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from e2e.guards import step


class DashboardPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.total = page.get_by_test_id("total-machines")
        self.recent_events = page.get_by_role("list", name="Recent events")

    def open(self) -> DashboardPage:
        with step(self.page, "opening the dashboard"):
            self.page.goto("/")
            expect(self.page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
        return self

    def state_count(self, state: str) -> Locator:
        return self.page.get_by_test_id(f"state-count-{state}")

    def provider_count(self, provider: str) -> Locator:
        return self.page.get_by_test_id(f"provider-count-{provider}")

    def expect_loaded(self) -> None:
        expect(self.total).to_have_attribute("aria-busy", "false")
