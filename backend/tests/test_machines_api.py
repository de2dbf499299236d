"""Machines through the HTTP API: lifecycle, listing, clone, console, disks, snapshots."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from hangar.providers.base import Runtime
from hangar.providers.fake import FakeProvider
from hangar.service.states import TRANSITIONS, Action, MachineState

from .conftest import Api, hangar_of

pytestmark = pytest.mark.asyncio


async def test_create_starts_the_machine_by_default(api: Api) -> None:
    machine = await api.create("web-1")
    assert machine["state"] == "running"
    assert machine["error"] is None
    assert machine["details"] == {}  # the fake provider has no placement to tell
    assert set(machine) == {
        "id", "name", "provider", "image", "cpus", "memory_mb", "state", "endpoint", "details",
        "error", "created_at", "updated_at",
    }  # fmt: skip


async def test_create_answers_202_with_pending_operation(api: Api) -> None:
    body = {"name": "web-1", "provider": "fake", "image": "alpine-3.20", "cpus": 2, "memory_mb": 64}
    response = await api.client.post("/api/v1/machines", json=body)
    assert response.status_code == 202
    payload = response.json()
    assert payload["machine"]["state"] == "provisioning"
    assert payload["operation"]["kind"] == "create"
    assert payload["operation"]["status"] == "pending"
    assert payload["operation"]["machine_id"] == payload["machine"]["id"]
    finished = await api.finished(payload["operation"]["id"])
    assert finished["status"] == "succeeded"
    assert finished["finished_at"] is not None


async def test_create_without_start_stays_stopped(api: Api) -> None:
    machine = await api.create("web-1", start=False)
    assert machine["state"] == "stopped"


async def test_stop_start_restart(api: Api) -> None:
    machine = await api.create("web-1")
    for action, state in (("stop", "stopped"), ("start", "running"), ("restart", "running")):
        operation = await api.act(machine["id"], action)
        assert operation["status"] == "succeeded", operation
        assert operation["kind"] == action
        assert (await api.machine(machine["id"]))["state"] == state


async def test_delete_removes_the_machine(api: Api) -> None:
    machine = await api.create("web-1")
    response = await api.client.delete(f"/api/v1/machines/{machine['id']}")
    assert response.status_code == 202
    operation = await api.finished(response.json()["operation"]["id"])
    assert operation["status"] == "succeeded"
    gone = await api.client.get(f"/api/v1/machines/{machine['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"
    log = (await api.client.get("/api/v1/events/log", params={"limit": 2})).json()
    assert "deleted" in {event["kind"] for event in log}


async def test_invalid_transition_names_the_current_state(api: Api) -> None:
    machine = await api.create("web-1", start=False)
    response = await api.client.post(f"/api/v1/machines/{machine['id']}/stop")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "invalid_transition"
    assert "stopped" in error["message"]
    assert "web-1" in error["message"]
    assert error["details"]["state"] == "stopped"


@pytest.mark.parametrize("action", ["start", "stop", "restart", "delete"])
async def test_every_action_outside_its_states_is_refused(api: Api, action: str) -> None:
    """From each stable state, exactly the table's actions are accepted."""
    allowed = TRANSITIONS[Action(action)].allowed
    running = await api.create("running-one")
    stopped = await api.create("stopped-one", start=False)
    for machine in (running, stopped):
        state = MachineState(machine["state"])
        if action == "delete":
            response = await api.client.delete(f"/api/v1/machines/{machine['id']}")
        else:
            response = await api.client.post(f"/api/v1/machines/{machine['id']}/{action}")
        expected = 202 if state in allowed else 409
        assert response.status_code == expected, (state, response.text)
        await api.settle()


class GatedFake(FakeProvider):
    """A fake whose start waits for the test to open the gate: an operation that stays running."""

    def __init__(self) -> None:
        super().__init__(latency=0)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def start(self, key: str) -> Runtime:
        self.waiting.set()
        await self.gate.wait()
        return await super().start(key)


async def test_second_operation_while_one_runs_is_busy(api: Api, app: FastAPI) -> None:
    gated = GatedFake()
    hangar_of(app).machines.providers["fake"] = gated
    body = {"name": "web-1", "provider": "fake", "image": "debian-12", "cpus": 1, "memory_mb": 64}
    created = (await api.client.post("/api/v1/machines", json=body)).json()
    machine_id = created["machine"]["id"]
    async with asyncio.timeout(5):
        await gated.waiting.wait()
    response = await api.client.delete(f"/api/v1/machines/{machine_id}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "busy"
    assert "create" in response.json()["error"]["message"]
    current = await api.machine(machine_id)
    assert current["state"] == "starting"
    gated.gate.set()
    await api.settle()
    assert (await api.machine(machine_id))["state"] == "running"


async def test_duplicate_name_is_a_conflict(api: Api) -> None:
    await api.create("web-1")
    body = {"name": "web-1", "provider": "fake", "image": "debian-12", "cpus": 1, "memory_mb": 64}
    response = await api.client.post("/api/v1/machines", json=body)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "web-1" in response.json()["error"]["message"]


async def test_list_pages_and_filters(api: Api) -> None:
    names = ["alpha", "beta", "gamma", "delta"]
    for name in names:
        await api.create(name, start=name != "beta")
    page = (await api.client.get("/api/v1/machines", params={"limit": 2, "offset": 1})).json()
    assert page["total"] == 4
    assert (page["limit"], page["offset"]) == (2, 1)
    assert [m["name"] for m in page["items"]] == names[1:3]
    stopped = (await api.client.get("/api/v1/machines", params={"state": "stopped"})).json()
    assert [m["name"] for m in stopped["items"]] == ["beta"]
    by_name = (await api.client.get("/api/v1/machines", params={"name": "lt"})).json()
    assert [m["name"] for m in by_name["items"]] == ["delta"]
    by_provider = (await api.client.get("/api/v1/machines", params={"provider": "qemu"})).json()
    assert by_provider == {"items": [], "total": 0, "limit": 50, "offset": 0}
    wildcard = (await api.client.get("/api/v1/machines", params={"name": "%"})).json()
    assert wildcard["total"] == 0


async def test_clone_of_a_stopped_machine(api: Api) -> None:
    source = await api.create("web-1", start=False)
    response = await api.client.post(
        f"/api/v1/machines/{source['id']}/clone", json={"name": "web-2"}
    )
    assert response.status_code == 202
    clone_id = response.json()["machine"]["id"]
    assert (await api.finished(response.json()["operation"]["id"]))["status"] == "succeeded"
    clone = await api.machine(clone_id)
    assert (clone["name"], clone["state"], clone["image"]) == ("web-2", "stopped", source["image"])
    assert (await api.machine(source["id"]))["state"] == "stopped"
    taken = await api.client.post(f"/api/v1/machines/{source['id']}/clone", json={"name": "web-2"})
    assert taken.status_code == 409


async def test_clone_of_a_running_machine_is_refused(api: Api) -> None:
    source = await api.create("web-1")
    response = await api.client.post(
        f"/api/v1/machines/{source['id']}/clone", json={"name": "web-2"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"
    listing = (await api.client.get("/api/v1/machines")).json()
    assert listing["total"] == 1


async def test_console_returns_the_tail(api: Api) -> None:
    machine = await api.create("web-1")
    await api.act(machine["id"], "restart")
    full = (await api.client.get(f"/api/v1/machines/{machine['id']}/console")).json()["text"]
    assert "booted" in full
    one = await api.client.get(f"/api/v1/machines/{machine['id']}/console", params={"lines": 1})
    assert one.json()["text"] == full.splitlines()[-1] + "\n"


async def test_console_of_unknown_machine_is_404(api: Api) -> None:
    response = await api.client.get("/api/v1/machines/nope/console")
    assert response.status_code == 404


async def test_disk_lifecycle(api: Api) -> None:
    machine = await api.create("web-1", start=False)
    base = f"/api/v1/machines/{machine['id']}/disks"
    created = await api.client.post(base, json={"name": "data", "size_mb": 1024})
    assert created.status_code == 202
    disk = created.json()["disk"]
    assert (disk["name"], disk["size_mb"], disk["attached"]) == ("data", 1024, False)
    assert (await api.finished(created.json()["operation"]["id"]))["status"] == "succeeded"
    duplicate = await api.client.post(base, json={"name": "data", "size_mb": 1})
    assert duplicate.status_code == 409

    attach = await api.client.post(f"{base}/{disk['id']}/attach")
    assert attach.status_code == 202
    await api.settle()
    assert [d["attached"] for d in (await api.client.get(base)).json()] == [True]
    again = await api.client.post(f"{base}/{disk['id']}/attach")
    assert again.status_code == 409

    attached_delete = await api.client.delete(f"{base}/{disk['id']}")
    assert attached_delete.status_code == 409
    assert attached_delete.json()["error"]["code"] == "disk_attached"

    await api.act(machine["id"], "start")
    detach = await api.client.post(f"{base}/{disk['id']}/detach")
    assert detach.status_code == 202, detach.text
    await api.settle()
    not_attached = await api.client.post(f"{base}/{disk['id']}/detach")
    assert not_attached.status_code == 409
    running_delete = await api.client.delete(f"{base}/{disk['id']}")
    assert running_delete.json()["error"]["code"] == "invalid_transition"

    await api.act(machine["id"], "stop")
    deleted = await api.client.delete(f"{base}/{disk['id']}")
    assert deleted.status_code == 202
    await api.settle()
    assert (await api.client.get(base)).json() == []
    unknown = await api.client.post(f"{base}/nope/attach")
    assert unknown.status_code == 404


async def test_snapshot_lifecycle(api: Api) -> None:
    machine = await api.create("web-1", start=False)
    base = f"/api/v1/machines/{machine['id']}/snapshots"
    created = await api.client.post(base, json={"name": "before-upgrade"})
    assert created.status_code == 202
    snapshot = created.json()["snapshot"]
    assert set(snapshot) == {"id", "machine_id", "name", "created_at"}
    await api.settle()
    duplicate = await api.client.post(base, json={"name": "before-upgrade"})
    assert duplicate.status_code == 409
    rollback = await api.client.post(f"{base}/{snapshot['id']}/rollback")
    assert rollback.status_code == 202
    assert (await api.finished(rollback.json()["operation"]["id"]))["status"] == "succeeded"
    listed = (await api.client.get(base)).json()
    assert [s["name"] for s in listed] == ["before-upgrade"]
    deleted = await api.client.delete(f"{base}/{snapshot['id']}")
    assert deleted.status_code == 202
    await api.settle()
    assert (await api.client.get(base)).json() == []
    missing = await api.client.post(f"{base}/{snapshot['id']}/rollback")
    assert missing.status_code == 404


async def test_snapshot_of_running_machine_is_refused(api: Api) -> None:
    machine = await api.create("web-1")
    response = await api.client.post(
        f"/api/v1/machines/{machine['id']}/snapshots", json={"name": "s1"}
    )
    assert response.status_code == 409
    assert "running" in response.json()["error"]["message"]


async def test_disks_of_unknown_machine_are_404(api: Api) -> None:
    for path in ("/api/v1/machines/nope/disks", "/api/v1/machines/nope/snapshots"):
        response = await api.client.get(path)
        assert response.status_code == 404


async def test_operations_are_listed_newest_first(api: Api) -> None:
    machine = await api.create("web-1")
    await api.act(machine["id"], "stop")
    listed = (await api.client.get(f"/api/v1/machines/{machine['id']}/operations")).json()
    assert [op["kind"] for op in listed] == ["stop", "create"]
    everything = (await api.client.get("/api/v1/operations")).json()
    assert {op["id"] for op in everything} == {op["id"] for op in listed}
    filtered = await api.client.get("/api/v1/operations", params={"machine_id": "nope"})
    assert filtered.json() == []
    assert (await api.client.get("/api/v1/operations/nope")).status_code == 404
    assert (await api.client.get("/api/v1/machines/nope/operations")).status_code == 404


async def test_providers_are_listed(api: Api) -> None:
    providers = (await api.client.get("/api/v1/providers")).json()
    assert [p["name"] for p in providers] == ["fake"]
    assert "debian-12" in providers[0]["images"]
    assert "snapshots" in providers[0]["capabilities"]


async def test_viewer_reads_but_cannot_change(viewer: httpx.AsyncClient, api: Api) -> None:
    machine = await api.create("web-1")
    assert (await viewer.get("/api/v1/machines")).json()["total"] == 1
    assert (await viewer.get(f"/api/v1/machines/{machine['id']}")).status_code == 200
    for method, path in (
        ("POST", f"/api/v1/machines/{machine['id']}/stop"),
        ("DELETE", f"/api/v1/machines/{machine['id']}"),
        ("POST", "/api/v1/providers/fake/faults"),
    ):
        response = await viewer.request(method, path, json={"action": "start"})
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "forbidden"
