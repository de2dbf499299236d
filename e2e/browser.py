"""Which Chromium the tier drives, and the flags it needs on a closed network.

Order: an explicit path in HANGAR_CHROMIUM; Playwright's own Chromium when `playwright install`
has put it there; else the system Chromium found (and installed when allowed) by the project's
provisioning step. No browser at all skips the tier with the install command, or fails it under
CI=true.

The tier's conftest takes this module's two fixtures by importing them: `chromium_executable`
and `browser_type_launch_args` (pytest-playwright's, with the browser chosen here and the flags).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Playwright

from testkit.ci import skip_or_fail

# Without the background-networking flags Chromium's own connections (updates, sync, QUIC probes)
# are refused many at a time on a closed network; --no-sandbox because CI runs as root.
CLOSED_NETWORK_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
ENV_VAR = "HANGAR_CHROMIUM"
INSTALL_HINT = "apt-get install -y --no-install-recommends chromium"


def playwright_chromium(playwright: Playwright) -> Path | None:
    """Playwright's own Chromium, when it was installed (`playwright install chromium`)."""
    try:
        path = Path(playwright.chromium.executable_path)
    except Exception:
        return None
    return path if path.is_file() else None


def system_chromium() -> tuple[Path | None, str]:
    """The system Chromium via provisioning (installing it when allowed); else (None, why)."""
    try:
        from gates import provision
    except ImportError:  # a project made from the template without the gates package
        return _chromium_on_this_machine()
    report = provision.ensure("e2e")
    tool = report.tools.get("chromium")
    if tool is not None:
        return tool.path, ""
    return None, report.reason("the e2e tier needs a browser")


def _chromium_on_this_machine() -> tuple[Path | None, str]:
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).is_file():
            return Path(candidate), ""
    return None, f"the e2e tier needs a browser: chromium not found; install with: {INSTALL_HINT}"


def choose_executable(playwright: Playwright) -> tuple[Path | None, str]:
    """Return (path, "") of the browser to launch, or (None, why) when there is none.

    (None, "") means Playwright's own Chromium: launch without an executable path.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        path = Path(explicit)
        if path.is_file():
            return path, ""
        return None, f"{ENV_VAR}={explicit} is not a file"
    if playwright_chromium(playwright) is not None:
        return None, ""
    return system_chromium()


# --------------------------------------------- fixtures (the tier's conftest imports them)
@pytest.fixture(scope="session")
def chromium_executable(playwright: Playwright, pytestconfig: pytest.Config) -> Path | None:
    """The browser binary to launch; None means Playwright's own (or the --browser-channel)."""
    if pytestconfig.getoption("--browser-channel"):
        return None
    path, missing = choose_executable(playwright)
    if missing:
        skip_or_fail(missing)
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any], chromium_executable: Path | None
) -> dict[str, Any]:
    """pytest-playwright's options (--headed, --slowmo, …) plus the closed-network flags."""
    args = dict(browser_type_launch_args)
    if chromium_executable is not None:
        args["executable_path"] = str(chromium_executable)
    args["args"] = [*args.get("args", []), *CLOSED_NETWORK_FLAGS]
    return args
