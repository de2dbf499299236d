"""Integration tier: real QEMU machines through the `qemu` provider.

The QEMU harness — run id, sweeper, watchdog, teardown, the `tiny` image and the `qemu`
provider fixture — lives in `integration/qemu_harness.py`, shared with the QEMU benchmarks of
`bench/`; its guarantees are described there. This tier arms the watchdog for the whole session,
so it also ends a run that hangs outside the QEMU tests.
"""

from __future__ import annotations

import pytest

from integration.qemu_harness import (
    Watchdog,
    accelerator,
    qemu,
    run_dir,
    run_id,
    tiny_image,
    watchdog,
)

__all__ = ["accelerator", "qemu", "qemu_purpose", "run_dir", "run_id", "tiny_image", "watchdog"]


@pytest.fixture(scope="session")
def qemu_purpose() -> str:
    return "QEMU integration tests"


@pytest.fixture(scope="session", autouse=True)
def _watchdog_for_the_tier(watchdog: Watchdog) -> Watchdog:
    """Armed for the whole tier: a hung run ends instead of blocking CI until its own limit."""
    return watchdog
