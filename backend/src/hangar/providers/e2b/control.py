"""The E2B control plane as hangar uses it: the SDK's sandbox calls with the configured key,
domain and request timeout, a bounded backoff when E2B refuses a call for its rate limit or
concurrency cap (429) or as busy (503), and every SDK error turned into a `ProviderError` whose
message a person can act on.

What callers rely on: the SDK's own retries are off (`retries=0`), so the backoff here is the
only one and its waits are exactly `E2BConfig.backoff_s` (`sleep` is injectable: tests do not
wait); a sandbox that is gone raises `NotFoundError`; the API key never appears in a message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import httpx
from e2b import (
    AsyncSandbox,
    AuthenticationException,
    InvalidArgumentException,
    NotFoundException,
    RateLimitException,
    SandboxException,
    SandboxInfo,
    SandboxNotRunningException,
    SandboxQuery,
    SandboxUnreachableException,
    ServiceBusyException,
    TimeoutException,
)
from e2b.connection_config import ApiParams, ConnectionConfig

from hangar.providers.base import NotFoundError, ProviderError
from hangar.providers.e2b.config import E2BConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]

# What the SDK raises for a failed call (its httpx client raises httpx errors, its transport
# the builtin ConnectionError, an OSError). Anything else is a bug and propagates as it is.
SDK_ERRORS = (AuthenticationException, SandboxException, ServiceBusyException, httpx.HTTPError)
NETWORK_ERRORS = (httpx.TransportError, OSError)
REFUSALS = (RateLimitException, ServiceBusyException)  # retried after a backoff

KEYS_URL = "https://e2b.dev/dashboard?tab=keys"


class KeyRejectedError(ProviderError):
    """E2B did not accept the API key (401); the message names the variable it came from."""


class ControlPlane:
    """E2B's sandbox API for one key; see the module docstring for the guarantees."""

    def __init__(self, config: E2BConfig, *, sleep: Sleep = asyncio.sleep) -> None:
        self.config = config
        self._sleep = sleep

    def opts(self) -> ApiParams:
        """The connection options of every SDK call."""
        opts = ApiParams(
            api_key=self.config.api_key,
            request_timeout=self.config.request_timeout_s,
            retries=0,  # one backoff policy: ours (bounded, injectable, tested)
        )
        if self.config.domain:
            opts["domain"] = self.config.domain
        return opts

    def connection(self) -> ConnectionConfig:
        """The SDK's connection settings for these options (domain, hosts of sandboxes)."""
        return ConnectionConfig(**self.opts())

    async def call(self, doing: str, make: Callable[[], Awaitable[T]]) -> T:
        """Run one SDK call; `doing` says what for in messages ("pause sandbox i1 of machine m1").

        A 429/503 refusal is tried again after each wait of `backoff_s`; then it fails."""
        waits = self.config.backoff_s
        for attempt in range(len(waits) + 1):
            try:
                return await make()
            except REFUSALS as exc:
                if attempt == len(waits):
                    raise self._refused(doing, exc, attempt + 1) from exc
                log.info(
                    "e2b: %s was refused (%s); trying again in %.1fs",
                    doing,
                    _status_of(exc),
                    waits[attempt],
                )
                await self._sleep(waits[attempt])
            except (*SDK_ERRORS, OSError) as exc:
                raise self.translate(doing, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the calls the provider, the sweep and the doctor make ------------------------------
    async def find(self, metadata: Mapping[str, str], doing: str) -> list[SandboxInfo]:
        """Every sandbox (running or paused) whose metadata holds all of `metadata`."""
        pages = AsyncSandbox.list(query=SandboxQuery(metadata=dict(metadata)), **self.opts())
        found: list[SandboxInfo] = []
        while pages.has_next:
            found += await self.call(doing, pages.next_items)
        return found

    async def create(self, template: str, metadata: Mapping[str, str], doing: str) -> AsyncSandbox:
        return await self.call(
            doing,
            lambda: AsyncSandbox.create(
                template, timeout=self.config.timeout_s, metadata=dict(metadata), **self.opts()
            ),
        )

    async def kill(self, sandbox_id: str, doing: str) -> bool:
        """Kill the sandbox; False when it was already gone."""
        return await self.call(doing, lambda: AsyncSandbox.kill(sandbox_id, **self.opts()))

    async def pause(self, sandbox_id: str, doing: str) -> bool:
        """Pause the sandbox; False when it was paused already."""
        return await self.call(doing, lambda: AsyncSandbox.pause(sandbox_id, **self.opts()))

    async def resume(self, sandbox_id: str, doing: str) -> AsyncSandbox:
        """Connect to the sandbox, resuming it when paused; its lifetime starts anew."""
        return await self.call(
            doing,
            lambda: AsyncSandbox.connect(sandbox_id, timeout=self.config.timeout_s, **self.opts()),
        )

    async def set_timeout(self, sandbox_id: str, doing: str) -> None:
        """The sandbox expires `timeout_s` from now (unless extended again)."""
        await self.call(
            doing,
            lambda: AsyncSandbox.set_timeout(sandbox_id, self.config.timeout_s, **self.opts()),
        )

    # -- messages ------------------------------------------------------------------------
    def translate(self, doing: str, error: BaseException) -> ProviderError:
        """The ProviderError a person sees for an SDK error while `doing`."""
        detail = self.scrub(str(error))
        if isinstance(error, AuthenticationException):
            return KeyRejectedError(
                f"{self.config.key_variable} is not accepted by E2B (401 Unauthorized), so it "
                f"could not {doing}; set a valid API key from {KEYS_URL}"
            )
        if isinstance(error, NotFoundException | SandboxNotRunningException):
            return NotFoundError(
                f"could not {doing}: the E2B sandbox is gone (it expired when its "
                "HANGAR_E2B_TIMEOUT_S lifetime ran out without a keep-alive, or it was killed "
                "elsewhere)"
            )
        if isinstance(error, SandboxUnreachableException):
            return ProviderError(f"could not {doing}: the E2B sandbox cannot be reached: {detail}")
        if isinstance(error, TimeoutException | httpx.TimeoutException):
            return ProviderError(
                f"E2B did not answer within {self.config.request_timeout_s:g}s, so it could not "
                f"{doing}; try again"
            )
        if isinstance(error, NETWORK_ERRORS):
            kind = type(error).__name__
            return ProviderError(
                f"cannot reach the E2B API to {doing} (network failure, {kind}): {detail}"
            )
        if isinstance(error, InvalidArgumentException):
            return ProviderError(f"E2B rejected the request to {doing}: {detail}")
        return ProviderError(f"E2B could not {doing}: {detail}")

    def _refused(self, doing: str, error: BaseException, attempts: int) -> ProviderError:
        waited = sum(self.config.backoff_s)
        if isinstance(error, RateLimitException):
            why = "its rate limit or your team's concurrent-sandbox cap was reached (429)"
            hint = "free sandboxes (`hangar e2b sweep`) or wait, then try again"
        else:
            why = "it is busy (503)"
            hint = "try again later"
        return ProviderError(
            f"E2B refused to {doing}: {why}, {attempts} times over {waited:g}s; {hint} "
            f"[{self.scrub(str(error))}]"
        )

    def scrub(self, text: str) -> str:
        """`text` without the API key (should E2B ever echo it)."""
        return text.replace(self.config.api_key, "***")


def _status_of(error: BaseException) -> str:
    return "429" if isinstance(error, RateLimitException) else "503"
