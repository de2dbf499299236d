"""Which Chromium the tier drives, and the flags it needs on a closed network.

Order: an explicit path in HANGAR_CHROMIUM; Playwright's own Chromium when `playwright install`
has put it there; else the system Chromium found (and installed when allowed) by the project's
provisioning step. No browser at all skips the tier with the install command, or fails it under
CI=true.
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Playwright

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
