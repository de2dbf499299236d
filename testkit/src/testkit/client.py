"""A small client of the hangar API, signed in as a person is (cookie session + CSRF token), for
arranging and checking state around the steps a test takes.

The same client talks to a live server over HTTP (`ApiClient.connect(url, …)`) or to the app in
this process (`in_process(app, loop)` gives the `http` to sign in over), and every wait it offers
(`wait`, `wait_for_state`, `delete_machines`) is a `testkit.waiting` wait with a deadline and an
error that names what it waited for and what it saw last.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import httpx

from testkit.loop import LoopThread
from testkit.waiting import NotYet, retry, wait_until

__all__ = [
    "OPERATION_TIMEOUT_S",
    "STATE_TIMEOUT_S",
    "ApiClient",
    "Http",
    "InProcessHttp",
    "in_process",
]

OPERATION_TIMEOUT_S = 60.0
STATE_TIMEOUT_S = 180.0  # a real QEMU boot under load (TCG) takes most of a minute
API = "/api/v1"
FINISHED = frozenset({"succeeded", "failed"})


class InProcessHttp:
    """An `httpx.AsyncClient` on an ASGI app, driven synchronously on a `LoopThread` (the loop
    the app's lifespan runs in)."""

    def __init__(self, client: httpx.AsyncClient, loop: LoopThread, timeout: float = 60.0) -> None:
        self.client = client
        self.loop = loop
        self.timeout = timeout

    @property
    def headers(self) -> MutableMapping[str, str]:
        return self.client.headers

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run(self.client.request(method, url, **kwargs), self.timeout)

    def close(self) -> None:
        self.loop.run(self.client.aclose(), 30)


@contextmanager
def in_process(app: Any, loop: LoopThread) -> Iterator[InProcessHttp]:
    """The app's lifespan entered on `loop` for the block, and an HTTP session to it."""
    lifespan = app.router.lifespan_context(app)
    loop.run(lifespan.__aenter__(), 60)
    transport = httpx.ASGITransport(app=app)
    http = InProcessHttp(
        httpx.AsyncClient(transport=transport, base_url="http://hangar.test", timeout=30), loop
    )
    try:
        yield http
    finally:
        try:
            http.close()
        finally:
            loop.run(lifespan.__aexit__(None, None, None), 60)


# What the client talks over: a live server's session, or the app in this process.
Http = httpx.Client | InProcessHttp


class ApiClient:
    """Signed in with a cookie session (and its CSRF token), as the browser is. Paths are under
    `/api/v1` (`ok("GET", "/machines")`)."""

    def __init__(self, http: Http, username: str, password: str) -> None:
        self.http = http
        answer = self.http.request(
            "POST", f"{API}/auth/login", json={"username": username, "password": password}
        )
        if answer.status_code != 200:
            raise AssertionError(
                f"signing in as {username!r} -> {answer.status_code}: {answer.text}"
            )
        self.http.headers["X-CSRF-Token"] = answer.json()["csrf_token"]

    @classmethod
    def connect(cls, base_url: str, username: str, password: str) -> ApiClient:
        """Signed in to the live server at `base_url`."""
        http = httpx.Client(base_url=base_url, timeout=30.0)
        try:
            return cls(http, username, password)
        except BaseException:
            http.close()
            raise

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------
    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The raw answer to `method` `/api/v1{path}`."""
        return self.http.request(method, f"{API}{path}", **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON of a successful answer; an answer >= 400 raises AssertionError with it."""
        answer = self.call(method, path, **kwargs)
        if answer.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {answer.status_code}: {answer.text}")
        return answer.json() if answer.content else None

    def wait(
        self, operation: dict[str, Any], timeout: float = OPERATION_TIMEOUT_S
    ) -> dict[str, Any]:
        """Wait until an operation finished; returns it (failed ones too)."""
        if operation["status"] in FINISHED:
            return operation
        finished: dict[str, Any] = wait_until(
            lambda: self.ok("GET", f"/operations/{operation['id']}"),
            until=lambda current: current["status"] in FINISHED,
            what=f"operation {operation['id']} ({operation.get('kind', '?')}) to finish",
            timeout=timeout,
        )
        return finished

    # -- machines ---------------------------------------------------------------------
    def create_machine(
        self, name: str, *, start: bool = True, wait: bool = True, **spec: Any
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "provider": "fake",
            "image": "alpine-3.20",
            "cpus": 1,
            "memory_mb": 256,
        }
        body.update(spec, start=start)
        answer = self.ok("POST", "/machines", json=body)
        if wait:
            self.wait(answer["operation"])
        return dict(answer["machine"])

    def machines(self) -> list[dict[str, Any]]:
        return list(self.ok("GET", "/machines", params={"limit": 500})["items"])

    def machine(self, machine_id: str) -> dict[str, Any]:
        return dict(self.ok("GET", f"/machines/{machine_id}"))

    def wait_for_state(
        self,
        machine_id: str,
        state: str,
        *,
        timeout: float = STATE_TIMEOUT_S,
        interval: float = 0.2,
    ) -> dict[str, Any]:
        """The machine once it is in `state`. A machine that goes to `error` (when `error` is not
        what was awaited) fails at once with its error; WaitTimeoutError past `timeout`."""

        def current() -> dict[str, Any]:
            machine = self.machine(machine_id)
            if state != "error" and machine["state"] == "error":
                raise AssertionError(f"machine {machine_id} failed: {machine.get('error')}")
            return machine

        reached: dict[str, Any] = wait_until(
            current,
            until=lambda machine: machine["state"] == state,
            what=f"machine {machine_id} to be {state}",
            timeout=timeout,
            interval=interval,
        )
        return reached

    def wait_gone(self, machine_id: str, timeout: float = OPERATION_TIMEOUT_S) -> None:
        """Return once the machine no longer exists (its GET answers 404)."""
        wait_until(
            lambda: self.call("GET", f"/machines/{machine_id}").status_code,
            until=lambda status: status == 404,
            what=f"machine {machine_id} to be deleted",
            timeout=timeout,
            interval=0.5,
        )

    def act(self, machine_id: str, action: str) -> dict[str, Any]:
        return self.wait(self.ok("POST", f"/machines/{machine_id}/{action}")["operation"])

    def delete_machine(self, machine_id: str) -> None:
        answer = self.call("DELETE", f"/machines/{machine_id}")
        if answer.status_code == 202:
            self.wait(answer.json()["operation"])

    def delete_machines(self, prefix: str) -> None:
        """Delete every machine whose name starts with `prefix`, waiting for busy ones first."""
        for machine in self.machines():
            if machine["name"].startswith(prefix):
                retry(
                    functools.partial(self._delete_when_idle, machine["id"]),
                    what=f"machine {machine['name']} to be deleted",
                    timeout=OPERATION_TIMEOUT_S,
                    interval=0.2,
                )

    def _delete_when_idle(self, machine_id: str) -> None:
        answer = self.call("DELETE", f"/machines/{machine_id}")
        if answer.status_code == 202:
            self.wait(answer.json()["operation"])
        elif answer.status_code != 404:  # busy or in a transient state: try again shortly
            raise NotYet(f"DELETE answered {answer.status_code}: {answer.text[:200]}")

    # -- fake provider faults ---------------------------------------------------------
    def inject_fault(self, action: str, message: str, times: int = 1) -> None:
        self.ok(
            "POST",
            "/providers/fake/faults",
            json={"action": action, "message": message, "times": times},
        )

    def clear_faults(self) -> None:
        self.ok("DELETE", "/providers/fake/faults")
