"""The e2b provider against real E2B sandboxes: only with HANGAR_TEST_E2B_API_KEY (an E2B API
key), otherwise every test here is skipped naming it — also under CI, like the other
credential-gated tests.

Cost and cleanup. Every sandbox carries this run's id (metadata `run`, `testkit.runs.RUN_ID`) and
a short lifetime (`LIFETIME_S`), so a killed run's running sandboxes expire on their own within
minutes. Each test deletes what it made (a finalizer, even when it fails); the session ends by
sweeping this run's sandboxes and checking, by listing, that none is left; and it starts by
killing the sandboxes of test runs older than `STALE_AFTER` — paused sandboxes do not expire,
and only age can tell a dead run's from a live one on another machine sharing the account.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from hangar.providers.base import MachineSpec
from hangar.providers.e2b.config import HANGAR_MARK, RUN_LABEL, E2BConfig
from hangar.providers.e2b.control import ControlPlane
from hangar.providers.e2b.provider import E2BProvider
from hangar.providers.e2b.sweep import sweep
from testkit.runs import RUN_ID

KEY_VARIABLE = "HANGAR_TEST_E2B_API_KEY"
TEMPLATE_VARIABLE = "HANGAR_TEST_E2B_TEMPLATE"  # optional; default `base`
LIFETIME_S = 180  # a sandbox's lifetime: what a killed run can leave running, at most
STALE_AFTER = timedelta(hours=2)  # longer than any run of this tier
# testkit's run ids: a test run's sandbox, never a service's
TEST_RUN = re.compile(r"\d+-[0-9a-f]{6}")


def config() -> E2BConfig:
    return E2BConfig(
        api_key=os.environ[KEY_VARIABLE],
        template=os.environ.get(TEMPLATE_VARIABLE) or "base",
        timeout_s=LIFETIME_S,
        key_variable=KEY_VARIABLE,
    )


async def sweep_stale(control: ControlPlane) -> list[str]:
    """Kill the sandboxes of test runs started before `STALE_AFTER` ago; return their ids."""
    oldest = datetime.now(UTC) - STALE_AFTER
    killed = []
    for info in await control.find(HANGAR_MARK, "list hangar's sandboxes"):
        run = info.metadata.get(RUN_LABEL, "")
        if TEST_RUN.fullmatch(run) and run != RUN_ID and info.started_at < oldest:
            await control.kill(info.sandbox_id, f"kill stale test sandbox {info.sandbox_id}")
            killed.append(info.sandbox_id)
    return killed


async def sandboxes_of_this_run(control: ControlPlane) -> list[str]:
    found = await control.find({**HANGAR_MARK, RUN_LABEL: RUN_ID}, "list this run's sandboxes")
    return [info.sandbox_id for info in found]


@pytest.fixture(scope="session")
def e2b_config() -> Iterator[E2BConfig]:
    """The key's config; the session's own sandboxes are swept at its end, and none may remain."""
    if not os.environ.get(KEY_VARIABLE):
        pytest.skip(f"set {KEY_VARIABLE} (an E2B API key) to run the E2B tests on real sandboxes")
    settings = config()
    control = ControlPlane(settings)
    stale = asyncio.run(sweep_stale(control))
    if stale:
        sys.stderr.write(f"\ne2b: killed sandboxes of stale test runs: {stale}\n")
    yield settings
    asyncio.run(sweep(settings, lambda run: run == RUN_ID))
    left = asyncio.run(sandboxes_of_this_run(control))
    assert left == [], f"sandboxes of run {RUN_ID} outlived the session: {left}"


@dataclass
class Sandboxes:
    """The provider as this run, and the machines a test made through it (deleted after it)."""

    provider: E2BProvider
    made: list[str] = field(default_factory=list)

    async def create(self, name: str) -> str:
        """A new machine (stopped, as the protocol creates them); returns its key."""
        key = f"it{secrets.token_hex(6)}"
        self.made.append(key)
        image = self.provider.config.template
        await self.provider.create(MachineSpec(key, name, image, cpus=1, memory_mb=512))
        return key


@pytest_asyncio.fixture
async def sandboxes(e2b_config: E2BConfig) -> AsyncIterator[Sandboxes]:
    """Every machine a test made is deleted after it, pass or fail."""
    made = Sandboxes(E2BProvider(e2b_config, RUN_ID))
    try:
        yield made
    finally:
        for key in made.made:
            await made.provider.delete(key)
        await made.provider.close()
