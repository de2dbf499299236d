"""Integration tier: real QEMU machines through the `qemu` provider, a real PostgreSQL.

The QEMU harness — run id, watchdog, teardown, the `tiny` image and the `qemu` provider fixture —
is `testkit.qemu`, shared with the QEMU benchmarks of `bench/` and the e2e tier's QEMU flow; its
guarantees are described there. The session starts the run's reaper (`testkit.runs`: if the run
is killed, even by `kill -9`, its VMs, servers, PostgreSQL clusters and temp dirs go within
seconds), then sweeps what killed runs left behind (`testkit.runs.sweep`: never a live run's).
This tier arms the watchdog for the whole session, so it also ends a run that hangs outside the
QEMU tests, and re-arms it as each test starts: it ends a run that stopped making progress (no
test started for `HANGAR_IT_WATCHDOG_S`, or for a test's own longer timeout), never a long run
that still makes progress.
"""

from __future__ import annotations

import sys

import pytest

from testkit import runs
from testkit.qemu import (
    WATCHDOG_S,
    Watchdog,
    accelerator,
    qemu,
    run_dir,
    run_id,
    tiny_image,
    watchdog,
)

__all__ = ["accelerator", "qemu", "qemu_purpose", "run_dir", "run_id", "tiny_image", "watchdog"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start this run's reaper and sweep what killed runs left behind, before anything of this
    run exists (in every pytest process: an xdist worker is a run of its own)."""
    runs.start_reaper()
    swept = runs.sweep_once()
    if swept:
        sys.stderr.write(f"\nintegration: swept leftovers of killed runs: {list(swept)}\n")


@pytest.fixture(scope="session")
def qemu_purpose() -> str:
    return "QEMU integration tests"


@pytest.fixture(scope="session", autouse=True)
def _watchdog_for_the_tier(watchdog: Watchdog) -> Watchdog:
    """Armed for the whole tier: a hung run ends instead of blocking CI until its own limit."""
    return watchdog


@pytest.fixture(autouse=True)
def _watchdog_per_test(request: pytest.FixtureRequest, _watchdog_for_the_tier: Watchdog) -> None:
    """Re-armed as each test starts, for the tier's limit or the test's own timeout (a
    `pytest.mark.timeout`) and a minute more, whichever is longer."""
    marker = request.node.get_closest_marker("timeout")
    own = 0.0
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout", 0)
        own = float(value or 0)
    _watchdog_for_the_tier.rearm(max(WATCHDOG_S, own + 60))
