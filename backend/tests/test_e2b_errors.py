"""How E2B's refusals and failures reach a person, against replays of E2B's control plane: a bad
key, the rate limit or concurrency cap, a sandbox that is gone, the network; and the key never
shows in a message or a log."""

from __future__ import annotations

import logging

import httpx
import pytest

from hangar.providers.base import MachineSpec, NotFoundError, ProviderError
from hangar.providers.e2b.config import SDK_KEY_VARIABLE
from hangar.providers.e2b.control import KeyRejectedError
from hangar.providers.e2b.provider import E2BProvider

from .e2b_replay import (
    API_KEY,
    RUN,
    E2BReplay,
    RecordedWaits,
    listed_body,
    replay_config,
    replaying_e2b,
)

pytestmark = pytest.mark.asyncio

SPEC = MachineSpec(key="m1", name="web-1", image="base", cpus=2, memory_mb=512)
MACHINE = {"hangar": "1", "machine": "m1"}
BACKOFF = (1.0, 2.0, 4.0)
CAP = "you have reached the maximum number of concurrent E2B sandboxes (20)"


@pytest.fixture
def e2b(waits: RecordedWaits) -> E2BProvider:
    return E2BProvider(replay_config(backoff_s=BACKOFF), RUN, sleep=waits)


async def test_a_key_e2b_does_not_accept_is_one_line_naming_the_variable(
    e2b: E2BProvider, e2b_replay: E2BReplay, waits: RecordedWaits
) -> None:
    e2b_replay.refused("POST", "/v2/sandboxes", 401, "Invalid API key")

    with pytest.raises(KeyRejectedError) as caught:
        await e2b.create(SPEC)

    message = str(caught.value)
    assert message.startswith("HANGAR_E2B_API_KEY is not accepted by E2B (401 Unauthorized)")
    assert "\n" not in message
    assert waits.seconds == []  # a bad key is not retried


async def test_the_401_names_the_sdks_variable_when_the_key_came_from_there(
    waits: RecordedWaits,
) -> None:
    provider = E2BProvider(replay_config(key_variable=SDK_KEY_VARIABLE), RUN, sleep=waits)
    with replaying_e2b() as replay:
        replay.refused("GET", "/v2/sandboxes", 401, "Invalid API key", metadata=MACHINE)
        with pytest.raises(KeyRejectedError, match=r"^E2B_API_KEY is not accepted"):
            await provider.runtime("m1")


async def test_429_is_retried_after_a_bounded_backoff_then_fails_clearly(
    e2b: E2BProvider, e2b_replay: E2BReplay, waits: RecordedWaits
) -> None:
    refused = e2b_replay.refused("POST", "/v2/sandboxes", 429, CAP, times=len(BACKOFF) + 1)

    with pytest.raises(ProviderError) as caught:
        await e2b.create(SPEC)

    assert refused.call_count == 4
    assert waits.seconds == [1.0, 2.0, 4.0]
    message = str(caught.value)
    assert message.startswith(
        "E2B refused to create a sandbox for machine web-1: its rate limit or your team's "
        "concurrent-sandbox cap was reached (429), 4 times over 7s; free sandboxes "
        "(`hangar e2b sweep`) or wait, then try again"
    )
    assert CAP in message


async def test_429_then_an_answer_succeeds_after_the_waits_it_took(
    e2b: E2BProvider, e2b_replay: E2BReplay, waits: RecordedWaits
) -> None:
    e2b_replay.refused("GET", "/v2/sandboxes", 429, "rate limit", times=2, metadata=MACHINE)
    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", {**MACHINE, "run": RUN}))

    runtime = await e2b.runtime("m1")

    assert runtime is not None
    assert runtime.running
    assert waits.seconds == [1.0, 2.0]


async def test_503_busy_is_retried_like_429(
    e2b: E2BProvider, e2b_replay: E2BReplay, waits: RecordedWaits
) -> None:
    e2b_replay.refused("POST", "/v2/sandboxes", 503, "no capacity", times=4)
    with pytest.raises(ProviderError, match=r"E2B refused to .*: it is busy \(503\), 4 times"):
        await e2b.create(SPEC)
    assert waits.seconds == [1.0, 2.0, 4.0]


async def test_a_sandbox_that_is_gone_is_not_found(e2b: E2BProvider, e2b_replay: E2BReplay) -> None:
    e2b_replay.sandbox_gone("POST", "/sandboxes/isb1/timeout")
    with pytest.raises(NotFoundError, match="expired when its HANGAR_E2B_TIMEOUT_S lifetime"):
        await e2b.control.set_timeout("isb1", "extend the lifetime of sandbox isb1")


async def test_a_network_failure_says_e2b_cannot_be_reached(
    e2b: E2BProvider, e2b_replay: E2BReplay, waits: RecordedWaits
) -> None:
    e2b_replay.router.get("/v2/sandboxes").mock(
        side_effect=httpx.ConnectError("[Errno -3] Temporary failure in name resolution")
    )
    with pytest.raises(ProviderError) as caught:
        await e2b.runtime("m1")
    assert str(caught.value) == (
        "cannot reach the E2B API to look up the sandbox of machine m1 (network failure, "
        "ConnectError): [Errno -3] Temporary failure in name resolution"
    )
    assert waits.seconds == []


async def test_a_request_timeout_says_so(e2b: E2BProvider, e2b_replay: E2BReplay) -> None:
    e2b_replay.router.delete("/sandboxes/isb1").mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(ProviderError, match="E2B did not answer within 30s, so it could not kill"):
        await e2b.control.kill("isb1", "kill sandbox isb1")


async def test_the_key_never_shows_in_a_message_or_a_log(
    e2b: E2BProvider, e2b_replay: E2BReplay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echoing = f"key {API_KEY} is invalid"  # should E2B ever echo the key back
    e2b_replay.refused("POST", "/v2/sandboxes", 401, echoing)
    e2b_replay.refused("POST", "/v2/sandboxes", 429, echoing, times=4)
    e2b_replay.refused("POST", "/v2/sandboxes", 400, echoing)
    e2b_replay.sandboxes_listed(MACHINE, listed_body("isb1", {**MACHINE, "run": RUN}))
    messages = []
    for _ in range(3):
        with pytest.raises(ProviderError) as caught:
            await e2b.create(SPEC)
        messages.append(str(caught.value))
    await e2b.placement("m1")

    assert "***" in messages[1]
    assert "***" in messages[2]
    for text in [*messages, caplog.text, repr(e2b.config), repr(e2b)]:
        assert API_KEY not in text
