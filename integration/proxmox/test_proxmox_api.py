"""The service's HTTP API driving real Proxmox VE guests (see conftest.py): `hangar serve` with the
`proxmox` provider, this run's id and the HANGAR_TEST_PROXMOX_* settings as its own."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import Iterator

import pytest

from hangar.providers.proxmox.config import ProxmoxConfig
from hangar.providers.proxmox.guests import GuestKind
from hangar.providers.proxmox.provider import ProxmoxProvider
from testkit import runs
from testkit.runs import RUN_ID
from testkit.server import LiveServer, User
from testkit.waiting import wait_until

from . import settings
from .conftest import CT_MEMORY_MB, image_for, resources

pytestmark = pytest.mark.timeout(900)

ADMIN = User("admin", "admin-password-it", "admin")


@pytest.fixture(scope="module")
def server(pve_config: ProxmoxConfig) -> Iterator[LiveServer]:
    """`hangar serve` with only the proxmox provider, as this run (its guests are this run's)."""
    home = runs.new_dir("pve-api")
    env = {**settings.server_environment(), "HANGAR_RUN_ID": RUN_ID}
    api = LiveServer(home / "data", providers="proxmox", admin=ADMIN, viewer=None, extra_env=env)
    try:
        yield api.start()
    finally:
        api.stop()
        shutil.rmtree(home, ignore_errors=True)


def guests_now(config: ProxmoxConfig) -> dict[int, dict[str, object]]:
    """VMID -> what `cluster/resources` says of it."""

    async def listing() -> dict[int, dict[str, object]]:
        provider = ProxmoxProvider(config, RUN_ID)
        try:
            return {int(item["vmid"]): item for item in await resources(provider)}
        finally:
            await provider.close()

    return asyncio.run(listing())


@pytest.mark.parametrize("kind", [GuestKind.LXC, GuestKind.QEMU], ids=["lxc", "qemu"])
def test_the_api_runs_stops_and_deletes_a_proxmox_guest(
    server: LiveServer, pve_config: ProxmoxConfig, kind: GuestKind
) -> None:
    image = image_for(kind)
    name = f"it-api-{kind.value}-{secrets.token_hex(3)}"
    timeout = pve_config.create_timeout
    with server.client() as client:
        providers = client.ok("GET", "/providers")
        assert any(p["name"] == "proxmox" and image in p["images"] for p in providers), providers
        body = {"name": name, "provider": "proxmox", "image": image, "cpus": 1}
        created = client.call("POST", "/machines", json={**body, "memory_mb": CT_MEMORY_MB})
        assert created.status_code == 202, created.text
        machine_id = created.json()["machine"]["id"]
        try:
            machine = client.wait_for_state(machine_id, "running", timeout=timeout, interval=1)
            details = machine["details"]
            assert (details["kind"], details["node"]) == (kind.value, pve_config.node)
            vmid = int(details["vmid"])
            assert vmid in pve_config.vmids
            guest = guests_now(pve_config)[vmid]
            assert guest["status"] == "running"
            assert {f"run-{RUN_ID}", f"key-{machine_id}"} <= set(str(guest["tags"]).split(";"))

            stop = client.ok("POST", f"/machines/{machine_id}/stop")["operation"]
            assert client.wait(stop, timeout=timeout)["status"] == "succeeded"
            assert client.machine(machine_id)["state"] == "stopped"
            assert guests_now(pve_config)[vmid]["status"] == "stopped"

            deleted = client.call("DELETE", f"/machines/{machine_id}")
            assert deleted.status_code == 202, deleted.text
            client.wait_gone(machine_id, timeout=timeout)
            wait_until(
                lambda: vmid not in guests_now(pve_config),
                what=f"guest {vmid} to be gone from Proxmox",
                timeout=60,
                interval=1,
            )
        finally:
            if client.call("GET", f"/machines/{machine_id}").status_code == 200:
                # Best effort after a failure: the session's sweep removes what stays.
                with contextlib.suppress(Exception):
                    client.delete_machine(machine_id)
