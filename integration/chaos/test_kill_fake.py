"""`kill -9` of the API server in the middle of each long operation, on the fake provider with
latency, then a restart on the same data dir: the operation ends `failed` with the reason, every
machine is in a stable state, the observer brings the rows in line with what the provider has
(the fake's machines live in the server process, so after the kill it has none), no event id is
reused or lost, and every machine can still be deleted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import runs
from testkit.client import ApiClient
from testkit.server import LiveServer, User

from .support import (
    INTERRUPTED,
    assert_events_kept,
    assert_settled,
    delete_all,
    event_log,
    kill_9,
    reconcile,
    wait_running,
)

pytestmark = pytest.mark.timeout(180)

ADMIN = User("admin", "admin-password-chaos", "admin")
# Each provider call takes this long: the kill lands while the operation's call waits.
LATENCY_S = 2.0


@pytest.fixture
def server(chaos_dir: Path) -> Iterator[LiveServer]:
    """`hangar serve` with the fake provider, no observer loop (the tests reconcile on demand)."""
    live = LiveServer(
        chaos_dir / "data",
        admin=ADMIN,
        viewer=None,
        fake_latency_s=LATENCY_S,
        extra_env={"HANGAR_OBSERVER_INTERVAL_SECONDS": "0"},
    )
    try:
        yield live.start()
    finally:
        live.stop()


def create(client: ApiClient, name: str, *, start: bool) -> dict[str, Any]:
    """POST a machine; returns the answer (machine and operation) without waiting."""
    body = {"name": name, "provider": "fake", "image": "debian-12", "cpus": 1, "memory_mb": 128}
    answer: dict[str, Any] = client.ok("POST", "/machines", json={**body, "start": start})
    return answer


def prepared(client: ApiClient, *, start: bool) -> str:
    """A machine `subject` (running or stopped) and a running `bystander` that no operation
    touches: the provider loses it with the kill, so the observer must mark it."""
    subject = create(client, f"subject-{runs.RUN_ID}", start=start)
    bystander = create(client, f"bystander-{runs.RUN_ID}", start=True)
    for answer in (subject, bystander):
        assert client.wait(answer["operation"])["status"] == "succeeded"
    return str(subject["machine"]["id"])


def do_create(client: ApiClient) -> dict[str, Any]:
    prepared(client, start=False)  # only for the bystander
    operation: dict[str, Any] = create(client, f"created-{runs.RUN_ID}", start=True)["operation"]
    return operation


def do_action(action: str, *, running: bool) -> Callable[[ApiClient], dict[str, Any]]:
    def act(client: ApiClient) -> dict[str, Any]:
        machine_id = prepared(client, start=running)
        operation: dict[str, Any] = client.ok("POST", f"/machines/{machine_id}/{action}")[
            "operation"
        ]
        return operation

    return act


def do_snapshot(client: ApiClient) -> dict[str, Any]:
    machine_id = prepared(client, start=False)
    answer = client.ok("POST", f"/machines/{machine_id}/snapshots", json={"name": "before"})
    operation: dict[str, Any] = answer["operation"]
    return operation


def do_clone(client: ApiClient) -> dict[str, Any]:
    machine_id = prepared(client, start=False)
    body = {"name": f"clone-{runs.RUN_ID}"}
    operation: dict[str, Any] = client.ok("POST", f"/machines/{machine_id}/clone", json=body)[
        "operation"
    ]
    return operation


SCENARIOS: dict[str, Callable[[ApiClient], dict[str, Any]]] = {
    "create": do_create,
    "start": do_action("start", running=False),
    "stop": do_action("stop", running=True),
    "restart": do_action("restart", running=True),
    "snapshot": do_snapshot,
    "clone": do_clone,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_kill_9_mid_operation_then_restart(server: LiveServer, scenario: str) -> None:
    with server.client() as client:
        operation = SCENARIOS[scenario](client)
        wait_running(client, operation)
        before = event_log(client)
        machines_before = {m["id"] for m in client.machines()}
    old_pid = kill_9(server)
    server.start()
    assert server.process is not None
    assert server.process.pid != old_pid

    with server.client() as client:
        assert_settled(client, operation["id"])
        # The clone's row exists from the start (provisioning), so no machine appeared or went.
        assert {m["id"] for m in client.machines()} == machines_before
        new_events = assert_events_kept(before, event_log(client))
        told = f"{operation['kind']} failed: {INTERRUPTED}"
        assert any(e.kind == "operation" and e.message == told for e in new_events), new_events

        # The fake lost every machine with the server: each row that still claims one (running:
        # the bystander; stopped: a machine the operation left alone) is drift, and is marked.
        claiming = {m["id"] for m in client.machines() if m["state"] in {"running", "stopped"}}
        findings = reconcile(client)
        assert {f["machine_id"] for f in findings} == claiming
        assert {f["kind"] for f in findings} <= {"machine_not_running", "machine_missing"}
        for machine in client.machines():
            assert machine["state"] == "error", machine
            if machine["id"] in claiming:
                assert "no longer has this machine" in machine["error"]
            else:
                assert machine["error"] == INTERRUPTED
        if scenario == "snapshot":
            assert client.ok("GET", f"/machines/{operation['machine_id']}/snapshots") == []

        delete_all(client)
        assert reconcile(client) == []
