"""The frame around every signed-in view: main navigation, who is signed in, sign out."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from e2e.guards import step

# view -> (path, heading, nav link name)
VIEWS: dict[str, tuple[str, str, str]] = {
    "dashboard": ("/", "Dashboard", "Dashboard"),
    "machines": ("/machines", "Machines", "Machines"),
    "events": ("/events", "Events", "Events"),
    "settings": ("/settings", "Settings", "Settings"),
}


class AppShell:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.nav = page.get_by_role("navigation", name="Main")
        self.current_user = page.get_by_test_id("current-user")
        self.heading = page.get_by_role("heading", level=1)

    def nav_link(self, view: str) -> Locator:
        return self.nav.get_by_role("link", name=VIEWS[view][2], exact=True)

    def go(self, view: str) -> None:
        """Click the view's link in the main navigation and wait until it is shown."""
        with step(self.page, f"navigating to {view} by the main navigation"):
            self.nav_link(view).click()
            self.expect_view(view)

    def open(self, view: str) -> None:
        """Load the view by its URL (a direct link or a reload)."""
        with step(self.page, f"opening {VIEWS[view][0]} directly"):
            self.page.goto(VIEWS[view][0])
            self.expect_view(view)

    def expect_view(self, view: str) -> None:
        path, heading, _ = VIEWS[view]
        expect(self.page).to_have_url(re.compile(re.escape(path) + r"$"))
        expect(self.heading).to_have_text(heading)
        expect(self.nav_link(view)).to_have_attribute("aria-current", "page")

    def expect_signed_in(self, username: str) -> None:
        expect(self.current_user).to_contain_text(username)

    def sign_out(self) -> None:
        with step(self.page, "signing out"):
            self.page.get_by_role("button", name="Sign out").click()
            expect(self.page.get_by_role("heading", name="Sign in")).to_be_visible()

    def error_message(self) -> Locator:
        return self.page.get_by_test_id("error-message")
