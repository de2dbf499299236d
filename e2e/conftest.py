"""Fixtures of the e2e tier: a live backend per xdist worker, the browser, signed-in pages, guards.

Every test fails when its pages log a console error, throw an uncaught error, or a same-origin
request fails (see guards.py); a page that closes under a test becomes an error that says what the
test was doing. Traces, screenshots and videos are kept for failed tests only (in test-results/).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import Error as PlaywrightError

from e2e.browser import browser_type_launch_args, chromium_executable
from e2e.guards import PageGuard
from e2e.pages.login import LoginPage
from e2e.pages.shell import AppShell
from testkit import runs
from testkit.client import ApiClient
from testkit.qemu import tiny_image
from testkit.server import LiveServer, User, running

# Fixtures defined elsewhere: the browser (e2e/browser.py), the QEMU flow's image (testkit.qemu).
__all__ = ["browser_type_launch_args", "chromium_executable", "qemu_purpose", "tiny_image"]

EXPECT_TIMEOUT_MS = 10_000
VIDEO_OFF_BECAUSE = pytest.StashKey[str]()  # two browsers and two servers share 2 cores under xdist

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start this process's reaper (the controller's ends its workers if it is killed: they carry
    its tag; a worker's ends its server and browser), then sweep what killed runs left behind,
    once per run (in the xdist controller, if any)."""
    runs.start_reaper()
    if hasattr(session.config, "workerinput"):
        return
    swept = runs.sweep_once()
    if swept:
        sys.stderr.write(f"\ne2e: swept leftovers of killed runs: {list(swept)}\n")


def _browser_profiles_in_a_tagged_dir(config: pytest.Config) -> None:
    """Playwright's driver makes Chromium's profile dirs in its TMPDIR: give it a dir with the
    run's tag, so a killed run's browser and profiles are swept; removed when pytest ends.

    Only where browsers run (an xdist worker, or a run without workers): workers inherit the
    controller's environment. The dir is short, right in /tmp: Chromium's singleton socket lives
    in it, and a socket path must stay under 108 bytes."""
    if not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", None):
        return
    tempfile.gettempdir()  # Python's own temp dir (pytest's tmp_path) stays where it was
    profiles = runs.new_dir("br", runs.SOCKET_ROOT)
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(profiles)

    def restore() -> None:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before
        shutil.rmtree(profiles, ignore_errors=True)

    config.add_cleanup(restore)


def pytest_configure(config: pytest.Config) -> None:
    """Keep traces, screenshots and videos for failed tests only, unless told otherwise."""
    _browser_profiles_in_a_tagged_dir(config)
    option = config.option
    if getattr(option, "tracing", None) == "off":
        option.tracing = "retain-on-failure"
    if getattr(option, "screenshot", None) == "off":
        option.screenshot = "only-on-failure"
    if getattr(option, "video", None) == "off" and os.environ.get("HANGAR_E2E_VIDEO", "1") != "0":
        option.video = "retain-on-failure"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    why = config.stash.get(VIDEO_OFF_BECAUSE, "")
    if why:
        terminalreporter.write_line(
            f"e2e: no video of failed tests ({why}); traces and screenshots kept"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Turn 'target closed' into what the test was doing; fail on problems the guard saw."""
    guard = getattr(item, "funcargs", {}).get("guard")
    try:
        result = yield
    except Exception as error:
        if isinstance(guard, PageGuard):
            clear = guard.explain(error)
            if clear is not None:
                raise clear from error
            for problem in guard.problems:
                error.add_note(f"browser: {problem}")
        raise
    if isinstance(guard, PageGuard):
        guard.check()
    return result


# ---------------------------------------------------------------------------------- server
@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[LiveServer]:
    """One backend per xdist worker, with its own data dir and seeded users; stopped by PID."""
    server = LiveServer(data_dir=tmp_path_factory.mktemp(f"{runs.RUN_TAG}-{worker_id}"))
    with running(server):
        yield server


@pytest.fixture(scope="session")
def base_url(live_server: LiveServer) -> str:
    return live_server.url


@pytest.fixture(scope="session")
def admin(live_server: LiveServer) -> User:
    return live_server.admin


@pytest.fixture(scope="session")
def viewer(live_server: LiveServer) -> User:
    assert live_server.viewer is not None
    return live_server.viewer


@pytest.fixture(scope="session")
def api(live_server: LiveServer) -> Iterator[ApiClient]:
    """The admin's API client, for arranging and checking state around browser steps."""
    with live_server.client() as client:
        yield client


@pytest.fixture(scope="session")
def viewer_api(live_server: LiveServer, viewer: User) -> Iterator[ApiClient]:
    with live_server.client(viewer) as client:
        yield client


class MachineNames:
    """Unique machine names for one test; everything named so is deleted after it."""

    def __init__(self) -> None:
        self.prefix = f"e2e-{uuid.uuid4().hex[:6]}"

    def new(self, stem: str = "vm") -> str:
        return f"{self.prefix}-{stem}"


@pytest.fixture
def names(api: ApiClient) -> Iterator[MachineNames]:
    made = MachineNames()
    yield made
    api.clear_faults()
    api.delete_machines(made.prefix)


@pytest.fixture(scope="session")
def qemu_purpose() -> str:
    """How the shared QEMU harness names the QEMU flow in a skip or a failure."""
    return "the QEMU flow needs QEMU"


# ---------------------------------------------------------------------------------- browser
def _can_record_video(browser: Browser, video_dir: str) -> str:
    """'' when this Playwright can record video, else why not (its ffmpeg is missing)."""
    context = None
    try:
        context = browser.new_context(record_video_dir=video_dir)
        context.new_page()
    except PlaywrightError as error:
        return str(error).splitlines()[0]
    finally:
        if context is not None:
            context.close()
    return ""


@pytest.fixture(scope="session")
def browser_context_args(
    browser_context_args: dict[str, Any], browser: Browser, pytestconfig: pytest.Config
) -> dict[str, Any]:
    """pytest-playwright's context options at 1280x800; video only where Playwright can record.

    Video needs Playwright's own ffmpeg (`playwright install ffmpeg`), which a closed network
    cannot download; traces and screenshots, which carry the same evidence, are kept regardless.
    """
    args = {**browser_context_args, "viewport": {"width": 1280, "height": 800}}
    video_dir = args.get("record_video_dir")
    if video_dir:
        why = _can_record_video(browser, str(video_dir))
        if why:
            del args["record_video_dir"]
            pytestconfig.stash[VIDEO_OFF_BECAUSE] = why
    return args


def _signed_in_state(
    browser: Browser, context_args: dict[str, Any], user: User, path: Path
) -> Path:
    args = {k: v for k, v in context_args.items() if k != "record_video_dir"}
    context = browser.new_context(**args)
    try:
        page = context.new_page()
        LoginPage(page).open().sign_in(user.username, user.password)
        AppShell(page).expect_signed_in(user.username)
        context.storage_state(path=path)
    finally:
        context.close()
    return path


@pytest.fixture(scope="session")
def admin_state(
    browser: Browser,
    browser_context_args: dict[str, Any],
    admin: User,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The admin's signed-in storage state, made once per worker and reused by every test."""
    path = tmp_path_factory.mktemp("state") / "admin.json"
    return _signed_in_state(browser, browser_context_args, admin, path)


@pytest.fixture(scope="session")
def viewer_state(
    browser: Browser,
    browser_context_args: dict[str, Any],
    viewer: User,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    path = tmp_path_factory.mktemp("state") / "viewer.json"
    return _signed_in_state(browser, browser_context_args, viewer, path)


@pytest.fixture
def guard(live_server: LiveServer) -> PageGuard:
    """Collects what went wrong in the test's pages; checked after the test (see the hook)."""
    return PageGuard(origin=live_server.url)


@pytest.fixture
def context(new_context: Callable[..., BrowserContext], guard: PageGuard) -> BrowserContext:
    """pytest-playwright's plain `context` (and so `page`), watched by the guard like the rest."""
    plain = new_context()
    guard.watch_context(plain)
    return plain


OpenApp = Callable[..., Page]


@pytest.fixture
def open_app(
    new_context: Callable[..., BrowserContext],
    guard: PageGuard,
    request: pytest.FixtureRequest,
) -> OpenApp:
    """open_app(user=None|User, path='/') -> a page of the app, signed in as `user` (proven)."""

    def _open(user: User | None = None, path: str = "/", **context_args: Any) -> Page:
        state = None
        if user is not None:
            state = request.getfixturevalue(f"{user.role}_state")
        context = new_context(storage_state=state, **context_args)
        guard.watch_context(context)
        page = context.new_page()
        if user is None:
            page.goto(path)
            return page
        with guard.step(f"opening {path} signed in as {user.username}"):
            page.goto(path)
            # Ready means: the UI shows who is signed in, and an API call with this session works.
            AppShell(page).expect_signed_in(user.username)
            answer = page.request.get("/api/v1/auth/me")
            assert answer.ok, f"GET /api/v1/auth/me -> {answer.status}: {answer.text()}"
            assert answer.json()["user"]["username"] == user.username
        return page

    return _open


@pytest.fixture
def admin_page(open_app: OpenApp, admin: User) -> Page:
    """A page signed in as the admin (login reused per worker), on the dashboard."""
    return open_app(admin)


@pytest.fixture
def viewer_page(open_app: OpenApp, viewer: User) -> Page:
    return open_app(viewer)


@pytest.fixture
def anon_page(open_app: OpenApp) -> Page:
    """A page with no session, on the login view."""
    return open_app(None, "/login")
