"""The sign-in view."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from e2e.guards import step


class LoginPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.heading = page.get_by_role("heading", name="Sign in")
        self.username = page.get_by_label("Username")
        self.password = page.get_by_label("Password")
        self.submit = page.get_by_role("button", name="Sign in")
        self.error = page.get_by_test_id("login-error")
        self.expired_notice = page.get_by_test_id("session-expired")

    def open(self, path: str = "/login") -> LoginPage:
        with step(self.page, "opening the sign-in page"):
            self.page.goto(path)
            expect(self.heading).to_be_visible()
        return self

    def sign_in(self, username: str, password: str) -> None:
        with step(self.page, f"signing in as {username}"):
            self.username.fill(username)
            self.password.fill(password)
            self.submit.click()

    def expect_shown(self) -> None:
        expect(self.heading).to_be_visible()

    def expect_error(self, text: str) -> None:
        expect(self.error).to_be_visible()
        expect(self.error).to_contain_text(text)
