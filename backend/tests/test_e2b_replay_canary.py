"""The E2B replays themselves: no request escapes them, and nothing the vendored API description
does not allow can be replayed or sent. If these fail, every other e2b test proves nothing."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx
import pytest
import respx
from e2b import AsyncSandbox
from openapi_core import OpenAPI

from hangar.providers.e2b.provider import E2BProvider

from .e2b_replay import (
    API_KEY,
    API_URL,
    RUN,
    E2BReplay,
    error_body,
    listed_body,
    replay_config,
    replaying_e2b,
    sandbox_body,
)
from .e2b_replay.openapi import SPEC_FILE, OpenApiSpec, SpecViolationError


@pytest.mark.asyncio
async def test_canary_a_request_no_replay_matches_fails_the_test(e2b_replay: E2BReplay) -> None:
    provider = E2BProvider(replay_config(), RUN)
    with pytest.raises(respx.models.AllMockedAssertionError, match="not mocked"):
        await provider.delete("m1")  # lists the machine's sandboxes: no replay of that
    with pytest.raises(respx.models.AllMockedAssertionError, match="not mocked"):
        await AsyncSandbox.kill("isb-unreplayed", api_key=API_KEY, domain="e2b.app", retries=0)


@pytest.mark.asyncio
async def test_canary_a_request_to_any_other_host_fails_too(e2b_replay: E2BReplay) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(respx.models.AllMockedAssertionError):
            await client.get("https://49983-isb1.e2b.app/health")  # a sandbox's envd


@pytest.mark.asyncio
async def test_canary_one_request_more_than_replayed_fails() -> None:
    with (  # noqa: PT012
        pytest.raises(SpecViolationError, match="had 1 replies; one more request"),
        replaying_e2b() as replay,
    ):
        replay.sandbox_killed("isb1")
        assert await AsyncSandbox.kill("isb1", api_key=API_KEY, domain="e2b.app", retries=0)
        await AsyncSandbox.kill("isb1", api_key=API_KEY, domain="e2b.app", retries=0)


@pytest.mark.asyncio
async def test_canary_a_request_without_the_key_fails() -> None:
    with (  # noqa: PT012
        pytest.raises(SpecViolationError, match="without the API key"),
        replaying_e2b() as replay,
    ):
        replay.sandbox_killed("isb1")
        await AsyncSandbox.kill("isb1", api_key="e2b_another", domain="e2b.app", retries=0)


def test_canary_a_replay_left_unanswered_fails() -> None:
    with (
        pytest.raises(AssertionError, match=r"DELETE /sandboxes/isb1: 1 left"),
        replaying_e2b() as replay,
    ):
        replay.sandbox_killed("isb1")


# ------------------------------------------------------------------ the description's say
def test_replays_of_operations_the_description_lacks_are_refused(e2b_replay: E2BReplay) -> None:
    with pytest.raises(SpecViolationError, match="no operation DELETE /sandboxes/isb1/pause"):
        e2b_replay.answer("DELETE", "/sandboxes/isb1/pause", (204, None))
    with pytest.raises(SpecViolationError, match="Unknown response http status: 418"):
        e2b_replay.answer("DELETE", "/sandboxes/isb1", (418, error_body(418, "teapot")))


def test_replayed_bodies_must_have_the_described_shape(e2b_replay: E2BReplay) -> None:
    incomplete = sandbox_body("isb1")
    del incomplete["envdVersion"]
    with pytest.raises(SpecViolationError, match="'envdVersion' is a required property"):
        e2b_replay.answer("POST", "/v2/sandboxes", (201, incomplete))
    wrong_state = listed_body("isb1", {"hangar": "1"}, state="sleeping")
    with pytest.raises(SpecViolationError, match=r"\$\[0\]\.state: 'sleeping' is not one of"):
        e2b_replay.sandboxes_listed({"hangar": "1"}, wrong_state)
    unknown_field = {**sandbox_body("isb1"), "ipAddress": "10.0.0.1"}
    with pytest.raises(SpecViolationError, match=re.escape("('ipAddress' was unexpected)")):
        e2b_replay.answer("POST", "/v2/sandboxes/isb1/connect", (201, unknown_field))
    with pytest.raises(SpecViolationError, match="without a body"):
        e2b_replay.answer("DELETE", "/sandboxes/isb1", (204, {"killed": True}))
    with pytest.raises(SpecViolationError, match="404: Missing response data"):
        e2b_replay.answer("DELETE", "/sandboxes/isb1", (404, None))
    with pytest.raises(
        SpecViolationError, match=re.escape("declares no header(s) ['X-Next-Token']")
    ):
        e2b_replay.answer("DELETE", "/sandboxes/isb1", (204, None, {"X-Next-Token": "t2"}))


def test_a_status_only_the_shared_responses_list_is_checked_against_them() -> None:
    """E2B answers 429 on any operation; the description lists it in components/responses."""
    spec = OpenApiSpec.vendored()
    spec.check_response("DELETE", "/sandboxes/isb1", 429, error_body(429, "slow down"))
    with pytest.raises(SpecViolationError, match="'message' is a required property"):
        spec.check_response("DELETE", "/sandboxes/isb1", 429, {"code": 429})


def test_requests_are_held_to_the_description() -> None:
    spec = OpenApiSpec.vendored()

    def request(method: str, path: str, **kwargs: Any) -> httpx.Request:
        return httpx.Request(method, f"{API_URL}{path}", headers={"X-API-Key": API_KEY}, **kwargs)

    timeout = request("POST", "/sandboxes/isb1/timeout", json={"timeout": 60})
    assert str(spec.check_request(timeout)) == "POST /sandboxes/{sandboxID}/timeout"
    negative = request("POST", "/sandboxes/isb1/timeout", json={"timeout": -1})
    with pytest.raises(SpecViolationError, match=r"\$\.timeout: -1 is less than the minimum of 0"):
        spec.check_request(negative)
    listing = request("GET", "/v2/sandboxes", params={"owner": "me"})
    with pytest.raises(
        SpecViolationError, match=re.escape("undeclared query parameter(s) ['owner']")
    ):
        spec.check_request(listing)
    create = request("POST", "/v2/sandboxes", json={"timeout": 60})
    with pytest.raises(SpecViolationError, match="'templateID' is a required property"):
        spec.check_request(create)
    kill = request("DELETE", "/sandboxes/isb1", json={"force": True})
    with pytest.raises(SpecViolationError, match="takes no body"):
        spec.check_request(kill)
    keyless = httpx.Request("DELETE", f"{API_URL}/sandboxes/isb1")
    with pytest.raises(SpecViolationError, match="SecurityValidationError: Security not found"):
        spec.check_request(keyless)


def test_the_v2_routes_of_the_sdk_are_checked_against_their_v1_twins() -> None:
    spec = OpenApiSpec.vendored()
    assert str(spec.operation("POST", "/v2/sandboxes")) == "POST /sandboxes"
    assert str(spec.operation("POST", "/v2/sandboxes/isb1/connect")) == (
        "POST /sandboxes/{sandboxID}/connect"
    )
    assert str(spec.operation("GET", "/v2/sandboxes")) == "GET /v2/sandboxes"


def test_the_description_the_replays_read_is_valid_openapi() -> None:
    """The vendored file with the additions of `openapi.py` (shared responses, v2 routes); the
    replays skip this check, which openapi-core runs whenever it loads a document by default."""
    OpenAPI(OpenApiSpec.vendored().api.spec)  # raises unless openapi-spec-validator accepts it


def test_the_vendored_description_is_the_one_the_readme_names() -> None:
    readme = (SPEC_FILE.parent / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(SPEC_FILE.read_bytes()).hexdigest()
    assert f"sha256: `{digest}`" in readme
    assert "licence: Apache-2.0" in readme
