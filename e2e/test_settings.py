"""Settings: an API token is shown once, works, and stops working when revoked; password errors."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from e2e.pages.settings import SettingsPage
from testkit.server import User


def test_token_is_shown_once_works_and_can_be_revoked(admin_page: Page, base_url: str) -> None:
    settings = SettingsPage(admin_page).open()
    secret = settings.create_token("e2e-script")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{base_url}/api/v1/auth/me", headers=bearer).status_code == 200

    settings.revoke_token("e2e-script")
    assert httpx.get(f"{base_url}/api/v1/auth/me", headers=bearer).status_code == 401

    admin_page.reload()
    expect(settings.token_row("e2e-script").first).to_be_visible()
    expect(settings.new_token).to_have_count(0)  # the secret is never shown again


def test_password_change_errors_quote_the_server(admin_page: Page, admin: User) -> None:
    settings = SettingsPage(admin_page).open()
    settings.change_password(admin.password, "short")
    expect(settings.password_form.get_by_test_id("new_password-error")).to_contain_text("8")
    settings.change_password("wrong-current-password", "long-enough-password")
    expect(admin_page.get_by_test_id("password-error")).to_be_visible()
    # A 403 wrong_password names the field, as a 422 would.
    expect(settings.password_form.get_by_test_id("current_password-error")).to_contain_text(
        "not your current password"
    )
