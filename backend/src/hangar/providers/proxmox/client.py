"""The one module that speaks to the Proxmox VE API: proxmoxer's untyped calls, typed.

What callers rely on:
- Every call has a `Deadline`. A deadline is checked between requests (one request is bounded
  by the config's `request_timeout`), so an operation ends at most one request past it.
- Errors are `ProviderError`s whose message says what to do: `ProxmoxApiError` (PVE refused:
  status, message, per-field errors), `ProxmoxAuthError` (the token), `ProxmoxUnreachableError`
  (address, TLS, time-out), `TaskFailedError` (a task ended badly: its exit status and log
  lines), `DeadlineError` (out of time; the task id when one was running).
- Transient errors are retried with bounded, doubling backoff: HTTP 502-599 (proxies, PVE's
  595/596 for an unreachable node), and a 500 whose message names a passing condition (a
  config lock timeout, `got no worker upid`, a cfs lock, lost quorum). Any other 500 is not
  retried: PVE answers 500 for every refusal of an API method (locked, already exists, not
  running), which would only fail again. A lost connection is retried only for a GET, or
  when the caller gives `settled`, which is asked before a request is sent again whether the
  first one took effect after all (a create that finds its own guest counts as done).
- A task is dispatched once: `run_task` retries the request that starts it, never the task
  after its wait failed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

try:
    import requests
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import ResourceException
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError(
        "the proxmox provider needs proxmoxer and requests: install hangar with its `proxmox` "
        "extra (`uv sync --extra proxmox` in backend/)"
    ) from exc

from hangar.providers.base import ProviderError
from hangar.providers.proxmox.config import (
    CA_FILE_VARIABLE,
    TIMEOUT_VARIABLE,
    TOKEN_ID_VARIABLE,
    TOKEN_SECRET_VARIABLE,
    URL_VARIABLE,
    VERIFY_TLS_VARIABLE,
    ProxmoxConfig,
)

log = logging.getLogger(__name__)

Value = str | int | list[str]
Params = Mapping[str, Value | bool | None]
# A 500 that a retry may cure: PVE waited for a lock, its worker did not start, pmxcfs hiccuped.
TRANSIENT_500 = re.compile(
    r"can't lock file .*got timeout|got no worker upid|cfs-lock .*(?:error|timeout)"
    r"|no quorum|got lock request timeout",
    re.IGNORECASE,
)
TASK_LOG_LINES = 20


class ProxmoxError(ProviderError):
    """Something went wrong talking to Proxmox VE."""


class ProxmoxApiError(ProxmoxError):
    """The API answered with an error status."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        message: str,
        errors: Mapping[str, str] | None = None,
        *,
        summary: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message.strip()
        self.errors = dict(errors or {})
        fields = "; ".join(f"{name}: {text.strip()}" for name, text in sorted(self.errors.items()))
        super().__init__(
            summary
            or f"Proxmox refused {method} /{path} ({status}): {self.message}"
            + (f" ({fields})" if fields else "")
        )


class ProxmoxAuthError(ProxmoxApiError):
    """401: the API token is wrong, expired or unknown."""


class ProxmoxUnreachableError(ProxmoxError):
    """No answer: the address, the network or a time-out."""


class ProxmoxTlsError(ProxmoxUnreachableError):
    """The server's certificate could not be verified (never retried: it will not change)."""


class TaskFailedError(ProxmoxError):
    """A task ended with an exit status other than OK or WARNINGS; carries its log's tail."""

    def __init__(self, what: str, upid: str, exitstatus: str, log_lines: Sequence[str]) -> None:
        self.upid = upid
        self.exitstatus = exitstatus
        self.log_lines = list(log_lines)
        shown = "\n".join(f"  {line}" for line in self.log_lines)
        super().__init__(
            f"{what} failed on Proxmox: {exitstatus} (task {upid})"
            + (f"\ntask log:\n{shown}" if shown else "")
        )


class DeadlineError(ProxmoxError):
    """An operation ran out of time; `upid` is the task that was still running, if any."""

    def __init__(self, message: str, upid: str | None = None) -> None:
        self.upid = upid
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in (monotonic) time by which `what` must be done."""

    what: str
    seconds: float
    at: float

    @classmethod
    def after(cls, seconds: float, what: str) -> Deadline:
        return cls(what, seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def sooner(self, other: Deadline) -> Deadline:
        return self if self.at <= other.at else other

    def error(self, doing: str, upid: str | None = None) -> DeadlineError:
        """The error of this deadline, met while `doing` (when that is not `what` itself)."""
        while_ = f" (while {doing})" if doing != self.what else ""
        still = f"; task {upid} was still running" if upid else ""
        return DeadlineError(
            f"{self.what} did not finish within {self.seconds:g} s{while_}{still}", upid
        )


@dataclass(frozen=True, slots=True)
class TaskStatus:
    upid: str
    running: bool
    exitstatus: str | None

    @property
    def ok(self) -> bool:
        return self.exitstatus is not None and (
            self.exitstatus == "OK" or self.exitstatus.startswith("WARNINGS")
        )


def node_of(upid: str) -> str:
    """`UPID:pve1:...` -> `pve1`."""
    parts = upid.split(":")
    if len(parts) < 3 or parts[0] != "UPID":
        raise ProxmoxError(f"Proxmox returned {upid!r} where a task id (UPID:...) was expected")
    return parts[1]


class ProxmoxClient:
    """Typed, retried, deadline-bound calls to one Proxmox VE API (see the module docstring).

    proxmoxer is synchronous: each request runs in a worker thread, each thread with its own
    HTTP session (a requests Session is not meant to be shared between threads).
    """

    def __init__(self, config: ProxmoxConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []

    # -- requests ----------------------------------------------------------------------
    async def call(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        *,
        deadline: Deadline,
        settled: Callable[[], Awaitable[bool]] | None = None,
    ) -> Any:
        """One API request; transient errors are retried (module docstring) until
        `config.attempts` or the deadline. With `settled`, a request whose answer was lost is
        sent again only after `settled()` said it had not taken effect (True returns None)."""
        wire = {name: _wire(value) for name, value in (params or {}).items() if value is not None}
        resend_safe = method == "GET" or settled is not None
        delay = self.config.backoff
        attempt = 1
        while True:
            try:
                return await asyncio.to_thread(self._request, method, path, wire)
            except ProxmoxError as exc:
                if attempt >= self.config.attempts or not _transient(exc, resend_safe):
                    raise
                pause = min(delay, self.config.backoff_max)
                if deadline.remaining() < pause:
                    raise
                log.info(
                    "proxmox: %s /%s failed (%s); trying again in %gs", method, path, exc, pause
                )
            await asyncio.sleep(pause)
            delay *= 2
            attempt += 1
            if settled is not None:
                try:
                    if await settled():
                        return None
                except ProxmoxError as exc:
                    log.info(
                        "proxmox: could not tell whether %s /%s took effect: %s", method, path, exc
                    )

    async def get_object(
        self, path: str, params: Params | None = None, *, deadline: Deadline
    ) -> dict[str, Any]:
        data = await self.call("GET", path, params, deadline=deadline)
        if not isinstance(data, dict):
            raise ProxmoxError(
                f"Proxmox answered GET /{path} with {type(data).__name__}, not an object"
            )
        return data

    async def get_list(
        self, path: str, params: Params | None = None, *, deadline: Deadline
    ) -> list[dict[str, Any]]:
        data = await self.call("GET", path, params, deadline=deadline)
        if data is None:
            return []
        if not isinstance(data, list):
            raise ProxmoxError(
                f"Proxmox answered GET /{path} with {type(data).__name__}, not a list"
            )
        return [item for item in data if isinstance(item, dict)]

    # -- tasks -------------------------------------------------------------------------
    async def run_task(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        *,
        deadline: Deadline,
        what: str,
        settled: Callable[[], Awaitable[bool]] | None = None,
    ) -> str | None:
        """Start a task and wait for it to end well. Returns its UPID, or None when the API
        answered without a task (a synchronous change) or `settled()` found it done."""
        answer = await self.call(method, path, params, deadline=deadline, settled=settled)
        if answer is None:
            return None
        if not isinstance(answer, str):
            raise ProxmoxError(f"{what}: Proxmox answered with {answer!r}, not a task id")
        await self.wait_task(answer, deadline=deadline, what=what)
        return answer

    async def task_status(self, upid: str, *, deadline: Deadline) -> TaskStatus:
        data = await self.get_object(
            f"nodes/{node_of(upid)}/tasks/{upid}/status", deadline=deadline
        )
        running = data.get("status") != "stopped"
        exitstatus = None if running else str(data.get("exitstatus", "unknown"))
        return TaskStatus(upid, running, exitstatus)

    async def wait_task(self, upid: str, *, deadline: Deadline, what: str) -> TaskStatus:
        """Poll the task until it stops: its status when it ended OK (or with WARNINGS),
        TaskFailedError with its log otherwise, DeadlineError (with the UPID) past the deadline."""
        while True:
            status = await self.task_status(upid, deadline=deadline)
            if not status.running:
                break
            if deadline.expired:
                raise deadline.error(what, upid)
            await asyncio.sleep(min(self.config.poll_interval, deadline.remaining()))
        if status.ok:
            return status
        raise TaskFailedError(what, upid, status.exitstatus or "unknown", await self.task_log(upid))

    async def task_log(self, upid: str) -> list[str]:
        """The last lines of a task's log (a note instead when it cannot be read)."""
        deadline = Deadline.after(self.config.request_timeout, f"reading the log of {upid}")
        try:
            lines = await self.get_list(
                f"nodes/{node_of(upid)}/tasks/{upid}/log",
                {"start": 0, "limit": 1000},
                deadline=deadline,
            )
        except ProxmoxError as exc:
            return [f"(the task's log could not be read: {exc})"]
        return [str(line.get("t", "")) for line in lines][-TASK_LOG_LINES:]

    async def stop_task(self, upid: str) -> None:
        """Ask Proxmox to end a running task (best effort: a failure is only logged)."""
        deadline = Deadline.after(self.config.request_timeout, f"stopping task {upid}")
        try:
            await self.call("DELETE", f"nodes/{node_of(upid)}/tasks/{upid}", deadline=deadline)
        except ProxmoxError as exc:
            log.warning("proxmox: could not stop task %s: %s", upid, exc)

    # -- the wire ----------------------------------------------------------------------
    def _api(self) -> Any:
        api = getattr(self._local, "api", None)
        if api is None:
            config = self.config
            api = ProxmoxAPI(
                config.host,
                backend="https",
                user=config.user,
                token_name=config.token_name,
                token_value=config.token_secret,
                verify_ssl=config.verify,
                timeout=config.request_timeout,
            )
            self._local.api = api
            with self._lock:
                self._sessions.append(api._store["session"])
        return api

    def _request(self, method: str, path: str, params: dict[str, Value]) -> Any:
        if method not in ("GET", "POST", "PUT", "DELETE"):
            raise ValueError(f"unknown HTTP method {method}")
        resource = self._api()(path)
        try:
            return getattr(resource, method.lower())(**params)
        except ResourceException as exc:
            error: ProxmoxError = self._refused(method, path, exc)
        except requests.exceptions.SSLError as exc:
            error = ProxmoxTlsError(
                f"cannot verify the TLS certificate of {URL_VARIABLE}={self.config.url} "
                f"({_tls_reason(exc)}); set {CA_FILE_VARIABLE} to the cluster's CA certificate "
                f"(/etc/pve/pve-root-ca.pem on a node), or {VERIFY_TLS_VARIABLE}=false on a "
                "network you trust"
            )
        except requests.exceptions.Timeout:
            error = ProxmoxUnreachableError(
                f"Proxmox at {URL_VARIABLE}={self.config.url} did not answer {method} /{path} "
                f"within {self.config.request_timeout:g} s ({TIMEOUT_VARIABLE})"
            )
        except requests.exceptions.RequestException as exc:
            error = ProxmoxUnreachableError(
                f"cannot reach Proxmox at {URL_VARIABLE}={self.config.url}: {_network_reason(exc)}"
            )
        # Raised out here, not from the handlers: an exception raised while handling another
        # keeps it as its context, and with it proxmoxer's frames, whose response holds its
        # connection open for as long as anyone keeps our error.
        raise error

    def _refused(self, method: str, path: str, exc: Any) -> ProxmoxApiError:
        status = int(exc.status_code)
        message = str(exc.content or exc.status_message or "").strip()
        errors = exc.errors if isinstance(exc.errors, dict) else None
        fields = {str(k): str(v) for k, v in (errors or {}).items()}
        if status == 401:
            return ProxmoxAuthError(
                method,
                path,
                status,
                message,
                fields,
                summary=f"Proxmox refused the API token {TOKEN_ID_VARIABLE}="
                f"{self.config.token_id} ({message}); check it and {TOKEN_SECRET_VARIABLE}",
            )
        return ProxmoxApiError(method, path, status, message, fields)

    def close(self) -> None:
        """Close every thread's HTTP session."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


def _wire(value: Value | bool) -> Value:
    """PVE's booleans are 0 and 1."""
    if isinstance(value, bool):
        return int(value)
    return value


def _transient(error: ProxmoxError, resend_safe: bool) -> bool:
    if isinstance(error, ProxmoxAuthError):
        return False
    if isinstance(error, ProxmoxApiError):
        if error.status >= 502:
            return True
        return error.status == 500 and TRANSIENT_500.search(error.message) is not None
    return (
        isinstance(error, ProxmoxUnreachableError)
        and not isinstance(error, ProxmoxTlsError)
        and resend_safe
    )


def _tls_reason(error: Exception) -> str:
    match = re.search(r"certificate verify failed: ([^()'\"]+)", str(error))
    return match[1].strip() if match else "TLS handshake failed"


def _network_reason(error: Exception) -> str:
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
    return match[1].strip() if match else type(error).__name__
