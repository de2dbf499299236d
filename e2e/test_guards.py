"""The guards themselves: a closed page names what the test was doing; browser errors are caught."""

from __future__ import annotations

import pytest
from playwright.sync_api import Error, Page

from e2e.guards import PageClosedError, PageGuard, PageProblemsError, step


def test_closed_page_error_says_what_the_test_was_doing(admin_page: Page, guard: PageGuard) -> None:
    with step(admin_page, "opening the machines view"):
        admin_page.close()
        with pytest.raises(Error) as raised:
            admin_page.goto("/machines")
    explained = guard.explain(raised.value)
    assert isinstance(explained, PageClosedError)
    assert "the page closed while the test was opening the machines view" in str(explained)


def test_console_and_page_errors_are_collected(admin_page: Page, guard: PageGuard) -> None:
    with step(admin_page, "provoking errors"):
        with admin_page.expect_console_message(lambda m: m.type == "error"):
            admin_page.evaluate("console.error('e2e: a deliberate console error')")
        with admin_page.expect_event("pageerror"):
            admin_page.evaluate("setTimeout(() => { throw new Error('e2e: deliberate') }, 0)")
    with pytest.raises(PageProblemsError) as raised:
        guard.check()
    text = str(raised.value)
    assert "console error while provoking errors: e2e: a deliberate console error" in text
    assert "uncaught page error while provoking errors" in text
    guard.problems.clear()  # they were provoked on purpose
