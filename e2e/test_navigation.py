"""History-API routing: every view to every view, back/forward, direct URLs, reloads, speed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import MachineNames
from e2e.pages.machine import MachineDetailPage
from e2e.pages.machines import MachinesPage
from e2e.pages.shell import VIEWS, AppShell
from testkit.client import ApiClient


@pytest.mark.parametrize("source", list(VIEWS))
def test_every_view_reaches_every_view_and_back(admin_page: Page, source: str) -> None:
    shell = AppShell(admin_page)
    shell.open(source)
    for target in VIEWS:
        if target == source:
            continue
        shell.go(target)
        admin_page.go_back()
        shell.expect_view(source)
        admin_page.go_forward()
        shell.expect_view(target)
        admin_page.go_back()
        shell.expect_view(source)


@pytest.mark.parametrize("view", list(VIEWS))
def test_direct_url_and_reload_land_on_the_view(admin_page: Page, view: str) -> None:
    shell = AppShell(admin_page)
    shell.open(view)
    admin_page.reload()
    shell.expect_view(view)


def test_machine_detail_by_url_back_forward_and_reload(
    admin_page: Page, api: ApiClient, names: MachineNames
) -> None:
    name = names.new("nav")
    machine = api.create_machine(name, start=False)
    machines = MachinesPage(admin_page).open()
    machines.open_machine(name)
    expect(admin_page).to_have_url(re.compile(f"/machines/{machine['id']}$"))

    admin_page.go_back()
    AppShell(admin_page).expect_view("machines")
    admin_page.go_forward()
    detail = MachineDetailPage(admin_page)
    detail.expect_shown(name)
    admin_page.reload()
    detail.expect_shown(name)
    detail.expect_state("stopped")


def test_unknown_path_shows_not_found(admin_page: Page) -> None:
    admin_page.goto("/no/such/page")
    expect(admin_page.get_by_role("heading", name="Page not found", level=1)).to_be_visible()
    admin_page.get_by_role("link", name="Go to the dashboard").click()
    AppShell(admin_page).expect_view("dashboard")


def test_rapid_navigation_through_all_views(admin_page: Page) -> None:
    """Five fast cycles through every view without waiting in between: no error, right view."""
    shell = AppShell(admin_page)
    order = ["machines", "events", "settings", "dashboard"]
    for _ in range(5):
        for view in order:
            shell.nav_link(view).click()
    shell.expect_view("dashboard")
    for _ in range(len(order)):
        admin_page.go_back()
    shell.expect_view("dashboard")
    admin_page.go_back()
    shell.expect_view("settings")
