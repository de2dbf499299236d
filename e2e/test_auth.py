"""Signing in and out, wrong passwords, and sessions that end under an open page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from e2e.conftest import OpenApp
from e2e.pages.login import LoginPage
from e2e.pages.shell import AppShell
from testkit.server import User


def test_sign_in_shows_the_user_and_sign_out_returns_to_login(anon_page: Page, admin: User) -> None:
    login = LoginPage(anon_page)
    login.sign_in(admin.username, admin.password)
    shell = AppShell(anon_page)
    shell.expect_signed_in(admin.username)
    shell.expect_view("dashboard")

    shell.sign_out()
    expect(anon_page).to_have_url(re.compile(r"/login$"))
    # The session is gone on the server too: a signed-in URL leads back to the login.
    anon_page.goto("/machines")
    login.expect_shown()
    expect(anon_page).to_have_url(re.compile(r"/login\?next=%2Fmachines$"))


def test_wrong_password_quotes_the_server_message(anon_page: Page, admin: User) -> None:
    login = LoginPage(anon_page)
    with anon_page.expect_response("**/api/v1/auth/login") as answer:
        login.sign_in(admin.username, "not-the-password")
    assert answer.value.status == 401
    server_text = answer.value.json()["error"]["message"]
    login.expect_error(server_text)
    expect(login.password).to_be_focused()
    expect(AppShell(anon_page).current_user).to_be_hidden()


def test_empty_form_says_what_is_missing(anon_page: Page) -> None:
    login = LoginPage(anon_page)
    login.submit.click()
    login.expect_error("Enter your username and password")
    expect(login.username).to_be_focused()


def test_direct_url_signs_in_and_lands_where_asked(open_app: OpenApp, admin: User) -> None:
    page = open_app(None, "/events")
    login = LoginPage(page)
    login.expect_shown()
    login.sign_in(admin.username, admin.password)
    AppShell(page).expect_view("events")


def test_expired_session_redirects_to_login_with_a_notice(
    open_app: OpenApp, admin: User, base_url: str
) -> None:
    page = open_app(admin, "/")
    # The server no longer knows this session (as after expiry): the next API call gets 401.
    page.context.add_cookies([{"name": "hangar_session", "value": "expired", "url": base_url}])
    AppShell(page).nav_link("machines").click()
    login = LoginPage(page)
    login.expect_shown()
    expect(login.expired_notice).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fmachines&expired=1$"))

    login.sign_in(admin.username, admin.password)
    AppShell(page).expect_view("machines")
