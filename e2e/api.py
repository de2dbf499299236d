"""A small client of the hangar API for arranging and checking state around browser steps."""

from __future__ import annotations

import time
from typing import Any

import httpx

OPERATION_TIMEOUT_S = 60.0


class ApiClient:
    """Signed in with a cookie session (and its CSRF token), as the browser is."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.http = httpx.Client(base_url=f"{base_url}/api/v1", timeout=30.0)
        answer = self.http.post("/auth/login", json={"username": username, "password": password})
        answer.raise_for_status()
        self.http.headers["X-CSRF-Token"] = answer.json()["csrf_token"]

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------
    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.call(method, path, **kwargs)
        if answer.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {answer.status_code}: {answer.text}")
        return answer.json() if answer.content else None

    def wait(
        self, operation: dict[str, Any], timeout: float = OPERATION_TIMEOUT_S
    ) -> dict[str, Any]:
        """Wait until an operation finished; returns it (failed ones too)."""
        deadline = time.monotonic() + timeout
        while operation["status"] not in {"succeeded", "failed"}:
            if time.monotonic() > deadline:
                raise AssertionError(f"operation {operation} did not finish in {timeout} s")
            time.sleep(0.1)
            operation = self.ok("GET", f"/operations/{operation['id']}")
        return operation

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

    def act(self, machine_id: str, action: str) -> dict[str, Any]:
        return self.wait(self.ok("POST", f"/machines/{machine_id}/{action}")["operation"])

    def delete_machine(self, machine_id: str) -> None:
        answer = self.call("DELETE", f"/machines/{machine_id}")
        if answer.status_code == 202:
            self.wait(answer.json()["operation"])

    def delete_machines(self, prefix: str) -> None:
        """Delete every machine whose name starts with `prefix`, waiting for busy ones first."""
        for machine in self.machines():
            if not machine["name"].startswith(prefix):
                continue
            deadline = time.monotonic() + OPERATION_TIMEOUT_S
            while time.monotonic() < deadline:
                answer = self.call("DELETE", f"/machines/{machine['id']}")
                if answer.status_code == 202:
                    self.wait(answer.json()["operation"])
                    break
                if answer.status_code == 404:
                    break
                time.sleep(0.2)  # busy or in a transient state: try again shortly

    # -- fake provider faults ---------------------------------------------------------
    def inject_fault(self, action: str, message: str, times: int = 1) -> None:
        self.ok(
            "POST",
            "/providers/fake/faults",
            json={"action": action, "message": message, "times": times},
        )

    def clear_faults(self) -> None:
        self.ok("DELETE", "/providers/fake/faults")
