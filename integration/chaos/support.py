"""What the chaos scenarios share: killing a live server as a crash would, and checking what a
restarted service must have kept (events) and settled (operations, machines, drift)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

from testkit.client import ApiClient
from testkit.server import LiveServer
from testkit.waiting import wait_until

STABLE = {"stopped", "running", "error"}
INTERRUPTED = "interrupted: the server stopped while this operation ran"
ORPHANS = {"orphan_machine", "orphan_disk_file"}


def kill_9(server: LiveServer) -> int:
    """SIGKILL the server process alone (a crash, the OOM killer): no shutdown code runs, and
    what it launched as daemons (QEMU) stays. Returns the pid it had."""
    process = server.process
    assert process is not None, "the server is not running"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.returncode
    server.process = None
    return process.pid


def wait_running(client: ApiClient, operation: dict[str, Any], timeout: float = 60) -> None:
    """Return once the operation is `running` (its provider work has begun). An operation that
    already finished fails the scenario: the kill would not land in the middle of it."""
    current: dict[str, Any] = wait_until(
        lambda: client.ok("GET", f"/operations/{operation['id']}"),
        until=lambda op: op["status"] != "pending",
        what=f"operation {operation['kind']} to run",
        timeout=timeout,
        interval=0.05,
    )
    assert current["status"] == "running", f"finished before the kill: {current}"


@dataclass(frozen=True)
class Event:
    id: int
    machine_id: str | None
    kind: str
    state: str | None
    message: str


def event_log(client: ApiClient) -> list[Event]:
    """Every stored event, oldest first (the log is paged newest first)."""
    events: list[Event] = []
    before: int | None = None
    while True:
        params: dict[str, int] = {"limit": 500}
        if before is not None:
            params["before"] = before
        page = client.ok("GET", "/events/log", params=params)
        events += [
            Event(e["id"], e["machine_id"], e["kind"], e["state"], e["message"]) for e in page
        ]
        if len(page) < 500:
            return sorted(events, key=lambda event: event.id)
        before = page[-1]["id"]


def assert_events_kept(before: list[Event], after: list[Event]) -> list[Event]:
    """Every event stored before the kill is still there, unchanged under its id; ids are unique,
    and the new ones come after the old ones with no gap (SQLite: AUTOINCREMENT, a rollback takes
    no id). Returns the events stored since the kill."""
    ids = [event.id for event in after]
    assert len(ids) == len(set(ids)), "an event id is used twice"
    assert after[: len(before)] == before, "events stored before the kill changed or went"
    assert ids == list(range(ids[0], ids[0] + len(ids))), f"event ids have gaps: {ids}"
    return after[len(before) :]


def assert_settled(client: ApiClient, operation_id: str) -> dict[str, Any]:
    """The interrupted operation ended `failed` with the reason, and every machine is in a
    stable state. Returns the operation."""
    operation: dict[str, Any] = client.ok("GET", f"/operations/{operation_id}")
    assert (operation["status"], operation["error"]) == ("failed", INTERRUPTED), operation
    assert operation["finished_at"] is not None
    unsettled = [(m["name"], m["state"]) for m in client.machines() if m["state"] not in STABLE]
    assert unsettled == [], "machines left in a transient state"
    return operation


def reconcile(client: ApiClient) -> list[dict[str, Any]]:
    """The observer's findings now (GET /observer/report reconciles on demand)."""
    findings: list[dict[str, Any]] = client.ok("GET", "/observer/report")["findings"]
    return findings


def delete_all(client: ApiClient) -> None:
    """Delete every machine (at once: they are independent); each delete must succeed, which a
    machine in a legal state allows."""
    answers = [client.ok("DELETE", f"/machines/{m['id']}") for m in client.machines()]
    for answer in answers:
        finished = client.wait(answer["operation"])
        assert finished["status"] == "succeeded", finished
    assert client.machines() == []
