"""The observer against real QEMU: a VM killed with `kill -9` is reported, marked `error` and
recovered by a start; an orphan QEMU tagged by hangar, a deleted disk file and a disk file with
no row are reported; the loop finds a killed VM on its own.

The service runs in-process (the app's lifespan on the tier's event loop thread) with the `qemu`
provider on a data dir of its own under this run's temp dir, so the sweeper and the run's
teardown also cover every VM it starts. One VM is booted for the module and reused.
"""

from __future__ import annotations

import os
import signal
import urllib.request
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI

from hangar.api.app import create_app
from hangar.api.context import Hangar
from hangar.db import migrate
from hangar.providers.base import MachineSpec
from hangar.providers.qemu import QemuProvider, process, qemu_img
from hangar.settings import Settings
from testkit.client import ApiClient, in_process
from testkit.loop import LoopThread
from testkit.qemu import QemuFixture, seed_data_dir
from testkit.runs import wait_ended

pytestmark = pytest.mark.timeout(300)

T = TypeVar("T")
ADMIN_PASSWORD = "admin-password-it"


class Service(ApiClient):
    """The hangar app on the tier's loop thread, spoken to over HTTP as an admin."""

    def __init__(self, http: Any, loop: LoopThread, app: FastAPI) -> None:
        super().__init__(http, "admin", ADMIN_PASSWORD)
        self.loop = loop
        self.app = app

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        return self.loop.run(coro, timeout)

    @property
    def hangar(self) -> Hangar:
        hangar: Hangar = self.app.state.hangar
        return hangar

    @property
    def provider(self) -> QemuProvider:
        provider = self.hangar.providers["qemu"]
        assert isinstance(provider, QemuProvider)
        return provider

    def report(self) -> list[dict[str, Any]]:
        findings: list[dict[str, Any]] = self.ok("GET", "/observer/report")["findings"]
        return findings

    def create(self, name: str, *, start: bool) -> dict[str, Any]:
        body = {
            "name": name,
            "provider": "qemu",
            "image": "tiny",
            "cpus": 1,
            "memory_mb": 256,
            "start": start,
        }
        answer = self.call("POST", "/machines", json=body)
        assert answer.status_code == 202, answer.text
        machine_id: str = answer.json()["machine"]["id"]
        return self.wait_for_state(machine_id, "running" if start else "stopped")

    def observer_events(self, machine_id: str | None = None) -> list[str]:
        params = {"limit": 500, **({"machine_id": machine_id} if machine_id else {})}
        log = self.ok("GET", "/events/log", params=params)
        return [e["message"] for e in log if e["kind"] == "observer"]

    def pid(self, machine_id: str) -> int:
        runtime = self.run(self.provider.runtime(machine_id))
        assert runtime is not None
        assert runtime.running
        assert runtime.pid is not None
        return runtime.pid


def kill_9(pid: int, within: float = 10.0) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_ended(pid, within)


def of_kind(findings: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [f for f in findings if f["kind"] == kind]


@pytest.fixture(scope="module")
def service(qemu: QemuFixture, tiny_image: Path) -> Iterator[Service]:
    data_dir = seed_data_dir(qemu.provider.data_dir.parent / "observer", tiny_image)
    settings = Settings(
        data_dir=data_dir,
        providers=["qemu"],
        admin_password=ADMIN_PASSWORD,
        secret_key="integration-secret",
        frontend_dir=None,
        observer_interval_seconds=0,  # reconciles only when asked; the loop test starts one
    )
    migrate.upgrade(settings.database_url)
    app = create_app(settings)
    with in_process(app, qemu.loop) as http:
        api = Service(http, qemu.loop, app)
        try:
            yield api
        finally:
            for runtime in api.run(api.provider.inventory(), 60):
                api.run(api.provider.delete(runtime.key), 60)


@pytest.fixture(scope="module")
def booted(service: Service, run_id: str) -> dict[str, Any]:
    """One VM for the module, booted once."""
    return service.create(f"obs-{run_id}", start=True)


@pytest.fixture
def vm(service: Service, booted: dict[str, Any]) -> dict[str, Any]:
    """The module's VM, running (started again if an earlier test left it otherwise)."""
    machine = service.machine(booted["id"])
    if machine["state"] != "running":
        service.act(machine["id"], "start")
        machine = service.wait_for_state(machine["id"], "running")
    return machine


def assert_guest_ready(service: Service, machine: dict[str, Any]) -> None:
    result = service.run(service.provider.exec(machine["id"], "hostname", 30))
    assert (result.exit_status, result.output.strip()) == (0, machine["name"])
    with urllib.request.urlopen(machine["endpoint"], timeout=10) as answer:  # noqa: S310 -- our own http://127.0.0.1 endpoint
        assert machine["name"] in answer.read().decode()


def test_kill_9_is_reported_marked_error_and_start_recovers(
    service: Service, vm: dict[str, Any]
) -> None:
    kill_9(service.pid(vm["id"]))

    [finding] = of_kind(service.report(), "machine_not_running")

    assert (finding["machine_id"], finding["key"], finding["provider"]) == (
        vm["id"],
        vm["id"],
        "qemu",
    )
    assert "the VM process is gone (observed at" in finding["message"]
    marked = service.machine(vm["id"])
    assert marked["state"] == "error"
    assert "the VM process is gone" in marked["error"]
    assert marked["endpoint"] is None
    assert any(m.startswith("machine_not_running:") for m in service.observer_events(vm["id"]))
    assert of_kind(service.report(), "machine_not_running") == []  # marked once, not again

    service.act(vm["id"], "start")
    recovered = service.wait_for_state(vm["id"], "running")
    assert recovered["error"] is None
    assert_guest_ready(service, recovered)


def test_the_loop_notices_a_killed_vm_on_its_own(service: Service, vm: dict[str, Any]) -> None:
    observer = service.hangar.observer

    async def start_loop() -> None:
        observer.start(0.2)

    service.run(start_loop())
    try:
        kill_9(service.pid(vm["id"]))
        marked = service.wait_for_state(vm["id"], "error", timeout=30)
        assert "the VM process is gone" in marked["error"]
    finally:
        service.run(observer.stop())
    service.act(vm["id"], "start")
    assert_guest_ready(service, service.wait_for_state(vm["id"], "running"))


def test_an_orphan_qemu_tagged_by_hangar_is_reported_and_left_running(
    service: Service, run_id: str
) -> None:
    key = f"hangar-test-{run_id}-orphan"
    spec = MachineSpec(key, f"orphan-{run_id}", "tiny", 1, 256, {"run": run_id})
    provider = service.provider
    service.run(provider.create(spec))
    try:
        pid = service.run(provider.start(key)).pid
        assert pid is not None

        [finding] = [f for f in of_kind(service.report(), "orphan_machine") if f["key"] == key]

        assert finding["machine_id"] is None
        assert f"runs machine {key!r} as pid {pid}" in finding["message"]
        assert process.running(provider.paths(key).pidfile, key) is not None  # left alone
        assert any(key in m for m in service.observer_events())
    finally:
        service.run(provider.delete(key), 60)
    assert [f for f in service.report() if f["key"] == key] == []


def test_disk_files_missing_or_without_a_row_are_reported(service: Service, run_id: str) -> None:
    machine = service.create(f"obs-disks-{run_id}", start=False)
    answer = service.call(
        "POST", f"/machines/{machine['id']}/disks", json={"name": "data", "size_mb": 8}
    )
    assert answer.status_code == 202, answer.text
    disk_id = answer.json()["disk"]["id"]
    service.run(service.hangar.machines.wait_idle(60))
    paths = service.provider.paths(machine["id"])
    assert paths.disk(disk_id).is_file()
    assert of_kind(service.report(), "disk_file_missing") == []

    paths.disk(disk_id).unlink()
    stray = paths.disk("stray")
    service.run(qemu_img.create(service.provider.qemu_img, stray, 8))

    findings = service.report()

    [missing] = of_kind(findings, "disk_file_missing")
    assert (missing["machine_id"], missing["key"]) == (machine["id"], disk_id)
    assert "the file of disk 'data' is missing" in missing["message"]
    [orphan] = of_kind(findings, "orphan_disk_file")
    assert (orphan["machine_id"], orphan["key"]) == (machine["id"], "stray")
    events = service.observer_events(machine["id"])
    assert sum(m.startswith("disk_file_missing:") for m in events) == 1
    assert sum(m.startswith("orphan_disk_file:") for m in events) == 1
    service.report()
    assert len(service.observer_events(machine["id"])) == 2  # no new event for the same drift
    assert service.machine(machine["id"])["state"] == "stopped"

    answer = service.call("DELETE", f"/machines/{machine['id']}")
    assert answer.status_code == 202, answer.text
    service.run(service.hangar.machines.wait_idle(60))
    assert service.call("GET", f"/machines/{machine['id']}").status_code == 404
    assert not paths.directory.exists()
