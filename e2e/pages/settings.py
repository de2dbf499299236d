"""Settings: API tokens (created once-shown, listed, revoked) and the password change."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from e2e.guards import step


class SettingsPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.tokens = page.get_by_test_id("tokens-section")
        self.new_token = page.get_by_test_id("new-token-value")
        self.password_form = page.get_by_test_id("password-form")

    def open(self) -> SettingsPage:
        with step(self.page, "opening the settings"):
            self.page.goto("/settings")
            expect(self.page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
        return self

    def token_row(self, name: str) -> Locator:
        return self.tokens.get_by_test_id(f"token-row-{name}")

    def create_token(self, name: str) -> str:
        """Create a token and return its secret, which is shown this once."""
        with step(self.page, f"creating API token {name}"):
            self.tokens.get_by_label("Token name").fill(name)
            self.tokens.get_by_role("button", name="Create token").click()
            expect(self.new_token).to_have_text(re.compile(r"^hgr_"))
            expect(self.token_row(name)).to_be_visible()
            return self.new_token.inner_text()

    def revoke_token(self, name: str) -> None:
        with step(self.page, f"revoking API token {name}"):
            self.tokens.get_by_role("button", name=f"Revoke token {name}").click()
            expect(self.token_row(name).get_by_test_id("token-status")).to_have_text("revoked")

    def change_password(self, current: str, new: str) -> None:
        with step(self.page, "changing the password"):
            self.password_form.get_by_label("Current password").fill(current)
            self.password_form.get_by_label("New password").fill(new)
            self.password_form.get_by_role("button", name="Change password").click()
