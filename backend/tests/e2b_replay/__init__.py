"""Replays of E2B's control plane, for the e2b provider's unit tests. A replay is not E2B.

`replaying_e2b()` puts `respx` in front of every httpx client (`using="httpx"`: the e2b SDK's
control-plane client is httpx-based, but its transport is pyqwest's, not httpcore's) and yields
an `E2BReplay`. A test declares the exchanges it replays, by name (`sandbox_created`,
`sandboxes_listed`, ...): E2B's answers in the shapes its API description gives. Then:

- every replayed answer is checked against the vendored description (openapi-core, through
  `openapi.py`) when it is declared, and every request the SDK sends when it comes; a violation
  fails the test;
- a request no replay matches fails the test (respx's `assert_all_mocked`);
- a replay answers exactly the replies recorded for it; one request more fails the test;
- every request must carry the replay's API key in `X-API-Key`.

The command channel inside a sandbox (Connect-RPC to envd) is never replayed (see README.md).
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import respx

from hangar.providers.e2b.config import E2BConfig

from .openapi import OpenApiSpec, SpecViolationError

# A made-up key, in E2B's format: the replays check that it is sent and tests that it never
# shows in a message or a log.
API_KEY = "e2b_0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4"
DOMAIN = "e2b.app"
API_URL = f"https://api.{DOMAIN}"
TEMPLATE_ID = "rki5dems9wqfm4r03t7g"  # the id E2B gives the `base` template
ENVD_VERSION = "0.4.2"
STARTED_AT = "2026-08-21T10:00:00Z"
END_AT = "2026-08-21T10:05:00Z"

# What a replay answers: status and JSON body (None: no body), and response headers if any.
Reply = tuple[int, object | None] | tuple[int, object | None, Mapping[str, str]]


# ------------------------------------------------------------------ bodies, in E2B's shapes
def sandbox_body(sandbox_id: str) -> dict[str, object]:
    """A `Sandbox`: what create and connect answer."""
    return {
        "templateID": TEMPLATE_ID,
        "alias": "base",
        "sandboxID": sandbox_id,
        "clientID": "6532622b",
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": "replayed-envd-access-token",
    }


def listed_body(
    sandbox_id: str, metadata: Mapping[str, str], state: str = "running"
) -> dict[str, object]:
    """A `ListedSandbox`: one item of a list."""
    return {
        "templateID": TEMPLATE_ID,
        "alias": "base",
        "sandboxID": sandbox_id,
        "clientID": "6532622b",
        "startedAt": STARTED_AT,
        "endAt": END_AT,
        "cpuCount": 2,
        "memoryMB": 512,
        "diskSizeMB": 512,
        "state": state,
        "envdVersion": ENVD_VERSION,
        "metadata": dict(metadata),
    }


def error_body(code: int, message: str) -> dict[str, object]:
    """An `Error`."""
    return {"code": code, "message": message}


def metadata_query(metadata: Mapping[str, str]) -> str:
    """The `metadata` query parameter of a list, as the description spells it ("user=abc&app=prod";
    the tests' keys and values need no escaping)."""
    return "&".join(f"{key}={value}" for key, value in metadata.items())


# ------------------------------------------------------------------ the replay
Exchange = tuple[str, str, tuple[tuple[str, str], ...] | None]  # method, path, exact query


def _headers(reply: Reply) -> Mapping[str, str]:
    return reply[2] if len(reply) == 3 else {}


class E2BReplay:
    """The exchanges one test replays; see the module docstring for what is checked."""

    def __init__(self, router: respx.MockRouter, spec: OpenApiSpec, api_key: str) -> None:
        self.router = router
        self.spec = spec
        self.api_key = api_key
        self.violations: list[str] = []
        self._replies: dict[Exchange, deque[Reply]] = {}
        self._routes: dict[Exchange, respx.Route] = {}

    def answer(
        self, method: str, path: str, *replies: Reply, params: Mapping[str, str] | None = None
    ) -> respx.Route:
        """Replay `replies` in order to METHOD PATH (whose query is exactly `params`, when
        given); declaring the same exchange again adds replies to it. Returns its respx route."""
        self.spec.operation(method, path)  # even with no reply: the operation must exist
        for reply in replies:
            self.spec.check_response(method, path, reply[0], reply[1], _headers(reply))
        query = tuple(sorted(params.items())) if params is not None else None
        exchange = (method, path, query)
        if exchange in self._replies:
            self._replies[exchange].extend(replies)
            return self._routes[exchange]
        pending: deque[Reply] = deque(replies)
        self._replies[exchange] = pending
        recorded = len(replies)

        def respond(request: httpx.Request) -> httpx.Response:
            try:
                self.spec.check_request(request)
                if request.headers.get("X-API-Key") != self.api_key:
                    raise SpecViolationError(
                        f"{method} {path} came without the API key (X-API-Key)"
                    )
                if not pending:
                    raise SpecViolationError(
                        f"the replay of {method} {path} had {recorded} replies; one more request"
                    )
            except SpecViolationError as exc:
                self.violations.append(str(exc))
                raise
            reply = pending.popleft()
            status, body, headers = reply[0], reply[1], _headers(reply)
            if body is None:
                return httpx.Response(status, headers=headers)
            return httpx.Response(status, json=body, headers=headers)

        lookups: dict[str, Any] = {"method": method, "path": path}
        if params is not None:
            lookups["params__eq"] = dict(params)
        route = self.router.route(**lookups).mock(side_effect=respond)
        self._routes[exchange] = route
        return route

    # -- named exchanges ------------------------------------------------------------------
    def sandbox_created(self, sandbox_id: str) -> respx.Route:
        return self.answer("POST", "/v2/sandboxes", (201, sandbox_body(sandbox_id)))

    def sandbox_paused(self, sandbox_id: str) -> respx.Route:
        return self.answer("POST", f"/sandboxes/{sandbox_id}/pause", (204, None))

    def sandbox_resumed(self, sandbox_id: str) -> respx.Route:
        return self.answer(
            "POST", f"/v2/sandboxes/{sandbox_id}/connect", (201, sandbox_body(sandbox_id))
        )

    def sandbox_killed(self, sandbox_id: str) -> respx.Route:
        return self.answer("DELETE", f"/sandboxes/{sandbox_id}", (204, None))

    def timeout_set(self, sandbox_id: str) -> respx.Route:
        return self.answer("POST", f"/sandboxes/{sandbox_id}/timeout", (204, None))

    def sandbox_gone(self, method: str, path: str) -> respx.Route:
        """E2B's 404 for a sandbox that expired or was killed elsewhere."""
        sandbox_id = path.split("/")[-1 if method == "DELETE" else -2]
        return self.answer(method, path, (404, error_body(404, f"sandbox {sandbox_id} not found")))

    def sandboxes_listed(
        self,
        metadata: Mapping[str, str],
        *listed: dict[str, object],
        page: str | None = None,
        next_page: str | None = None,
    ) -> respx.Route:
        """One page of a list: the sandboxes whose metadata hold `metadata`. `page` is the
        token the request carries (none for the first page), `next_page` the one answered."""
        params = {"metadata": metadata_query(metadata)}
        if page is not None:
            params["nextToken"] = page
        headers = {"X-Next-Token": next_page} if next_page is not None else {}
        return self.answer("GET", "/v2/sandboxes", (200, list(listed), headers), params=params)

    def refused(
        self,
        method: str,
        path: str,
        status: int,
        message: str,
        *,
        times: int = 1,
        metadata: Mapping[str, str] | None = None,
    ) -> respx.Route:
        """E2B refusing the request `times` times with `status` (401, 429, 503...); `metadata`
        for a refused list."""
        params = {"metadata": metadata_query(metadata)} if metadata is not None else None
        reply: Reply = (status, error_body(status, message))
        return self.answer(method, path, *([reply] * times), params=params)

    # -- after the test -------------------------------------------------------------------
    def unanswered(self) -> list[str]:
        """The replays with replies no request came for."""
        return [f"{m} {p}: {len(r)} left" for (m, p, _query), r in self._replies.items() if r]

    def sent_json(self, route: respx.Route, call: int = -1) -> object:
        """The JSON body of a request that `route` answered (the last one by default)."""
        request: httpx.Request = route.calls[call].request
        return json.loads(request.content)


# ------------------------------------------------------------------ what the tests share
RUN = "run-7"  # the service's run id in these tests


def replay_config(**overrides: Any) -> E2BConfig:
    """The provider's configuration in these tests: the replay's key and domain."""
    return dataclasses.replace(E2BConfig(api_key=API_KEY, domain=DOMAIN), **overrides)


class RecordedWaits:
    """The backoff's `sleep`: records the waits instead of waiting (no real sleeps in tests)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@contextmanager
def replaying_e2b(api_key: str = API_KEY) -> Iterator[E2BReplay]:
    """Replays of E2B's control plane around the block (see the module docstring). On leaving:
    no spec violation happened and every recorded reply was answered."""
    with respx.mock(
        using="httpx", base_url=API_URL, assert_all_mocked=True, assert_all_called=False
    ) as router:
        replay = E2BReplay(router, OpenApiSpec.vendored(), api_key)
        yield replay
    assert replay.violations == [], replay.violations
    assert replay.unanswered() == [], replay.unanswered()
