"""A person opens the page in a real Chromium and counts: the page renders and its script runs."""

from __future__ import annotations

from playwright.sync_api import Page, expect


def test_a_person_counts_clicks(page: Page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/")
    expect(page).to_have_title("Hangar")
    expect(page.get_by_role("heading", name="Hangar")).to_be_visible()
    clicks = page.get_by_label("clicks")
    expect(clicks).to_have_text("0")
    page.get_by_role("button", name="Count").click()
    page.get_by_role("button", name="Count").click()
    expect(clicks).to_have_text("2")
    assert errors == []
