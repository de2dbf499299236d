"""Take the README's dashboard screenshot with the e2e tier's own tooling.

`uv run --group e2e python -m e2e.screenshot [OUT.png]` starts a live backend (as the tests do),
seeds a few machines through the API, signs in through the login page object, and saves the
dashboard at 1280x800 (default docs/img/dashboard.png). Everything it started is stopped again.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from e2e.browser import CLOSED_NETWORK_FLAGS, choose_executable
from e2e.pages.dashboard import DashboardPage
from e2e.pages.login import LoginPage
from e2e.pages.shell import AppShell
from testkit.client import ApiClient
from testkit.runs import RUN_TAG
from testkit.server import LiveServer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "img" / "dashboard.png"


def seed(api: ApiClient) -> None:
    """A small, believable fleet: running, stopped and one failed machine."""
    for name, image, cpus, memory in [
        ("web-1", "debian-12", 2, 2048),
        ("web-2", "debian-12", 2, 2048),
        ("ci-runner", "ubuntu-24.04", 4, 8192),
    ]:
        api.create_machine(name, image=image, cpus=cpus, memory_mb=memory)
    api.create_machine("db-staging", image="alpine-3.20", start=False, memory_mb=1024)
    api.inject_fault("start", "fake provider: host ran out of memory")
    api.create_machine("batch-7", image="alpine-3.20")


def take(out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix=f"{RUN_TAG}-screenshot") as scratch:
        server = LiveServer(data_dir=Path(scratch) / "data", fake_latency_s=0.05).start()
        try:
            with server.client() as api:
                seed(api)
            with sync_playwright() as playwright:
                executable, missing = choose_executable(playwright)
                if missing:
                    raise SystemExit(missing)
                browser = playwright.chromium.launch(
                    executable_path=str(executable) if executable else None,
                    args=list(CLOSED_NETWORK_FLAGS),
                )
                try:
                    context = browser.new_context(
                        base_url=server.url, viewport={"width": 1280, "height": 800}
                    )
                    page = context.new_page()
                    LoginPage(page).open().sign_in(server.admin.username, server.admin.password)
                    AppShell(page).expect_signed_in(server.admin.username)
                    dashboard = DashboardPage(page)
                    dashboard.expect_loaded()
                    expect(dashboard.state_count("error")).to_be_visible()
                    page.evaluate("document.activeElement && document.activeElement.blur()")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(out))
                finally:
                    browser.close()
        finally:
            server.stop()
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    print(f"saved {take(target)}")
