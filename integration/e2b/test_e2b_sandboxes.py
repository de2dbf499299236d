"""The e2b provider with real E2B sandboxes (see conftest.py for the key, cost and cleanup):
commands, a page served from inside the sandbox, pause and resume, delete, and the sweep."""

from __future__ import annotations

import httpx
import pytest

from hangar.providers.base import NotFoundError, ProviderError
from hangar.providers.e2b.config import E2BConfig
from hangar.providers.e2b.sweep import sweep
from testkit.runs import RUN_ID
from testkit.waiting import wait_until

from .conftest import Sandboxes

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(300)]

PAGE = "hangar machine e2b-page"
# Serves /tmp/www on the sandbox's port 80 (the provider's endpoint), detached from the command.
SERVE = (
    "mkdir -p /tmp/www && echo '{page}' > /tmp/www/index.html && "
    "(sudo nohup python3 -m http.server 80 --directory /tmp/www >/tmp/www.log 2>&1 &) && sleep 1"
)


async def test_a_sandbox_runs_commands_serves_a_page_and_pauses(sandboxes: Sandboxes) -> None:
    provider = sandboxes.provider
    key = await sandboxes.create("e2b-page")
    stopped = await provider.runtime(key)
    assert stopped is not None
    assert (stopped.running, stopped.endpoint) == (False, None)
    placement = await provider.placement(key)
    assert placement["sandbox"]
    assert placement["template"]

    runtime = await provider.start(key)
    assert runtime.running
    assert runtime.endpoint is not None
    assert runtime.endpoint.startswith("https://")

    echoed = await provider.exec(key, "echo hello from e2b", timeout=30)
    assert (echoed.exit_status, echoed.output.strip()) == (0, "hello from e2b")
    failed = await provider.exec(key, "echo on stderr >&2; exit 3", timeout=30)
    assert (failed.exit_status, failed.output.strip()) == (3, "on stderr")
    with pytest.raises(ProviderError, match=r"did not finish within 2s and was killed"):
        await provider.exec(key, "sleep 60", timeout=2)
    survivors = await provider.exec(key, "pgrep -x sleep || true", timeout=30)
    assert survivors.output.strip() == ""  # the timed-out command was killed, not left running

    served = await provider.exec(key, SERVE.format(page=PAGE), timeout=30)
    assert served.exit_status == 0, served.output
    endpoint = runtime.endpoint

    def page() -> str:
        response = httpx.get(endpoint, timeout=10)
        response.raise_for_status()
        return response.text

    assert PAGE in wait_until(
        page, timeout=60, interval=2, ignoring=(httpx.HTTPError,), what="the sandbox page"
    )

    await provider.stop(key)
    paused = await provider.runtime(key)
    assert paused is not None
    assert not paused.running
    with pytest.raises(ProviderError, match="start it to run commands"):
        await provider.exec(key, "true", timeout=10)
    resumed = await provider.start(key)
    assert resumed.running
    marker = await provider.exec(key, "cat /tmp/www/index.html", timeout=30)
    assert marker.output.strip() == PAGE  # the same sandbox, with what it wrote before the pause

    await provider.delete(key)
    assert await provider.runtime(key) is None
    await provider.delete(key)  # already gone: success
    with pytest.raises(NotFoundError):
        await provider.placement(key)


async def test_inventory_and_the_sweep_find_this_runs_sandboxes(
    sandboxes: Sandboxes, e2b_config: E2BConfig
) -> None:
    provider = sandboxes.provider
    key = await sandboxes.create("e2b-sweep")
    assert key in {runtime.key for runtime in await provider.inventory()}

    others = await sweep(e2b_config, lambda run: run == f"{RUN_ID}-not-this-one", dry_run=True)
    assert all(swept.machine != key for swept in others)  # another run's sweep never takes ours

    swept = await sweep(e2b_config, lambda run: run == RUN_ID)
    assert [(s.machine, s.run, s.killed) for s in swept if s.machine == key] == [
        (key, RUN_ID, True)
    ]
    assert await provider.runtime(key) is None
    assert key not in {runtime.key for runtime in await provider.inventory()}
