"""Watch a page for what must never happen in a test, and say what the test was doing.

A `PageGuard` records console errors, uncaught page errors and failed same-origin requests (network
failures and 5xx answers) of every page in a browser context. The conftest raises them after the
test. It also remembers the current step (page objects call `step(page, "...")`), so a page that
closes or crashes unexpectedly becomes an error that says what the test was doing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page, Request, Response

# The browser logs every 4xx answer as a console error; the UI handles those (wrong password,
# validation, expired session), and 5xx answers are caught from the responses themselves.
HANDLED_HTTP_ERROR = re.compile(
    r"Failed to load resource: the server responded with a status of 4\d\d"
)
# The app never aborts a request itself: net::ERR_ABORTED means the document went away under it
# (page.goto, reload, sign-out closing the event stream), which is no failure of the app.
ABORTED = "net::ERR_ABORTED"


class PageClosedError(AssertionError):
    """The page closed or crashed while the test still used it."""


class PageProblemsError(AssertionError):
    """The page logged an error, threw, or a same-origin request failed."""


@dataclass
class PageGuard:
    origin: str
    problems: list[str] = field(default_factory=list)
    doing: str = "starting the test"
    closed_while: str | None = None
    expect_closed: bool = False

    def watch_context(self, context: BrowserContext) -> None:
        for page in context.pages:
            self.watch(page)
        context.on("page", self.watch)

    def watch(self, page: Page) -> None:
        _GUARDS[page] = self
        page.on("console", self._on_console)
        page.on(
            "pageerror",
            lambda error: self.problems.append(f"uncaught page error while {self.doing}: {error}"),
        )
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)
        page.on("crash", lambda _page: self._on_closed("crashed"))
        page.on("close", lambda _page: self._on_closed("closed"))

    def _same_origin(self, url: str) -> bool:
        return url == self.origin or url.startswith(self.origin + "/")

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error" or HANDLED_HTTP_ERROR.search(message.text):
            return
        location = message.location.get("url", "") if message.location else ""
        self.problems.append(f"console error while {self.doing}: {message.text} ({location})")

    def _on_request_failed(self, request: Request) -> None:
        if not self._same_origin(request.url):
            return
        failure = request.failure or "unknown failure"
        if failure == ABORTED:
            return
        self.problems.append(
            f"request failed while {self.doing}: {request.method} {request.url}: {failure}"
        )

    def _on_response(self, response: Response) -> None:
        if response.status >= 500 and self._same_origin(response.url):
            request = f"{response.request.method} {response.url}"
            self.problems.append(f"server error while {self.doing}: {request} -> {response.status}")

    def _on_closed(self, how: str) -> None:
        if not self.expect_closed and self.closed_while is None:
            self.closed_while = f"the page {how} while the test was {self.doing}"

    @contextmanager
    def step(self, doing: str) -> Iterator[None]:
        previous, self.doing = self.doing, doing
        try:
            yield
        finally:
            self.doing = previous

    def explain(self, error: BaseException) -> PageClosedError | None:
        """A clear error for a Playwright 'target closed' failure, else None."""
        if not isinstance(error, Error) or "closed" not in str(error).lower():
            return None
        what = (
            self.closed_while
            or f"the page, context or browser closed while the test was {self.doing}"
        )
        return PageClosedError(f"{what}\n(Playwright said: {str(error).splitlines()[0]})")

    def check(self) -> None:
        """Raise PageProblemsError listing everything that went wrong, if anything did."""
        if self.problems:
            listed = "\n  ".join(self.problems)
            raise PageProblemsError(f"{len(self.problems)} problem(s) in the browser:\n  {listed}")


_GUARDS: WeakKeyDictionary[Page, PageGuard] = WeakKeyDictionary()


@contextmanager
def step(page: Page, doing: str) -> Iterator[None]:
    """Mark what the test is doing on `page` (used by the page objects)."""
    guard = _GUARDS.get(page)
    if guard is None:
        yield
        return
    with guard.step(doing):
        yield
