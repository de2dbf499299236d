"""The events view: every event, newest first, live."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from e2e.guards import step


class EventsPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.rows = page.get_by_test_id("event-row")

    def open(self) -> EventsPage:
        with step(self.page, "opening the events view"):
            self.page.goto("/events")
            expect(self.page.get_by_role("heading", name="Events", level=1)).to_be_visible()
        return self

    def event_mentioning(self, text: str) -> Locator:
        return self.rows.filter(has_text=text)
