"""Faults injected into the fake provider: the operation fails and the machine shows `error`."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from .conftest import Api, hangar_of

pytestmark = pytest.mark.asyncio


async def test_failed_start_puts_the_machine_in_error(api: Api) -> None:
    await api.fault("start", "no bootable disk")
    body = {"name": "web-1", "provider": "fake", "image": "debian-12", "cpus": 1, "memory_mb": 64}
    created = (await api.client.post("/api/v1/machines", json=body)).json()
    operation = await api.finished(created["operation"]["id"])
    assert operation["status"] == "failed"
    assert operation["error"] == "no bootable disk"
    machine = await api.machine(created["machine"]["id"])
    assert machine["state"] == "error"
    assert machine["error"] == "no bootable disk"
    # From error, start is allowed again and the fault was used up.
    retry = await api.act(machine["id"], "start")
    assert retry["status"] == "succeeded"
    recovered = await api.machine(machine["id"])
    assert (recovered["state"], recovered["error"]) == ("running", None)


async def test_fault_times_counts_calls(api: Api) -> None:
    machine = await api.create("web-1", start=False)
    await api.fault("start", "flaky", times=2)
    assert (await api.act(machine["id"], "start"))["status"] == "failed"
    assert (await api.act(machine["id"], "start"))["status"] == "failed"
    assert (await api.act(machine["id"], "start"))["status"] == "succeeded"


async def test_clearing_faults(api: Api, app: FastAPI) -> None:
    machine = await api.create("web-1")
    await api.fault("stop", "stuck")
    response = await api.client.delete("/api/v1/providers/fake/faults")
    assert response.status_code == 204
    assert (await api.act(machine["id"], "stop"))["status"] == "succeeded"


@pytest.mark.parametrize(
    ("action", "fault"),
    [("stop", "stop"), ("restart", "stop"), ("restart", "start"), ("delete", "delete")],
)
async def test_failed_action_on_a_running_machine(api: Api, action: str, fault: str) -> None:
    machine = await api.create("web-1")
    await api.fault(fault, f"{fault} exploded")
    if action == "delete":
        response = await api.client.delete(f"/api/v1/machines/{machine['id']}")
        operation = await api.finished(response.json()["operation"]["id"])
    else:
        operation = await api.act(machine["id"], action)
    assert (operation["status"], operation["error"]) == ("failed", f"{fault} exploded")
    assert (await api.machine(machine["id"]))["state"] == "error"
    # The failure is an event too, and error allows delete.
    log = (await api.client.get("/api/v1/events/log", params={"limit": 5})).json()
    assert any("exploded" in event["message"] for event in log)
    cleanup = await api.client.delete(f"/api/v1/machines/{machine['id']}")
    assert (await api.finished(cleanup.json()["operation"]["id"]))["status"] == "succeeded"


async def test_failed_disk_creation_leaves_no_disk(api: Api) -> None:
    machine = await api.create("web-1", start=False)
    await api.fault("create_disk", "no space")
    base = f"/api/v1/machines/{machine['id']}/disks"
    response = await api.client.post(base, json={"name": "data", "size_mb": 10})
    assert (await api.finished(response.json()["operation"]["id"]))["status"] == "failed"
    assert (await api.client.get(base)).json() == []
    assert (await api.machine(machine["id"]))["state"] == "error"


async def test_failed_snapshot_creation_leaves_no_snapshot(api: Api) -> None:
    machine = await api.create("web-1", start=False)
    await api.fault("create_snapshot", "disk busy")
    base = f"/api/v1/machines/{machine['id']}/snapshots"
    response = await api.client.post(base, json={"name": "s1"})
    assert (await api.finished(response.json()["operation"]["id"]))["status"] == "failed"
    assert (await api.client.get(base)).json() == []


async def test_failed_clone_leaves_the_clone_in_error(api: Api) -> None:
    source = await api.create("web-1", start=False)
    await api.fault("clone", "copy failed")
    response = await api.client.post(
        f"/api/v1/machines/{source['id']}/clone", json={"name": "web-2"}
    )
    assert (await api.finished(response.json()["operation"]["id"]))["status"] == "failed"
    clone = await api.machine(response.json()["machine"]["id"])
    assert (clone["state"], clone["error"]) == ("error", "copy failed")
    assert (await api.machine(source["id"]))["state"] == "stopped"


async def test_unexpected_provider_exception_fails_the_operation(
    api: Api, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = await api.create("web-1", start=False)
    provider = hangar_of(app).machines.providers["fake"]

    async def broken(key: str) -> None:
        raise KeyError(key)

    monkeypatch.setattr(provider, "start", broken)
    operation = await api.act(machine["id"], "start")
    assert operation["status"] == "failed"
    assert operation["error"].startswith("unexpected error: KeyError")


async def test_console_failure_is_a_conflict(api: Api) -> None:
    machine = await api.create("web-1")
    await api.fault("console", "serial port gone")
    response = await api.client.get(f"/api/v1/machines/{machine['id']}/console")
    assert response.status_code == 409
    assert "serial port gone" in response.json()["error"]["message"]
