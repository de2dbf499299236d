"""fakepve, a fake Proxmox VE API server, set up for the proxmox provider's unit tests.

fakepve is a fake (it is NOT Proxmox VE): one aiohttp process that answers every method of the
PVE API schema, validates parameters as PVE does (HTTP 400 naming the field) and keeps state
for guests, tasks, storage and the guest agent. Its pytest plugin's `fakepve` fixture serves a
fresh one per test on 127.0.0.1 with a port of its own (so xdist workers never meet), with
`time_scale` 0: every task has ended before the request that started it returns. It is
AGPL-3.0 and only in the test dependency group: never part of a built package.

`seed()` gives a fake what the provider's tests use: an API token, a template VM with a disk,
and a container OS template; `fake_provider()` a provider logged in with that token, verifying
the fake's certificate, with waits and backoffs short enough for the unit tier.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hangar.providers.base import MachineSpec
from hangar.providers.proxmox.config import ProxmoxConfig
from hangar.providers.proxmox.provider import ProxmoxProvider

FakePve = Any  # fakepve ships no types

TOKEN_ID = "hangar@pve!unit"
TOKEN_SECRET = "unit-token-secret"
NODE = "pve1"
STORAGE = "local-lvm"
RUN_ID = "unit-1"
VMIDS = range(9000, 9100)
TEMPLATE_VMID = 100
VM_IMAGE = f"pve-vm:{TEMPLATE_VMID}"
OSTEMPLATE_FILE = "debian-12-standard_12.7-1_amd64.tar.zst"
OSTEMPLATE = f"local:vztmpl/{OSTEMPLATE_FILE}"
CT_IMAGE = f"pve-ct:{OSTEMPLATE}"
GIB = 1024**3

# Fast for the unit tier: the fake answers at once (time_scale 0), so no wait needs long.
FAST = {
    "poll_interval": 0.001,
    "backoff": 0.0,
    "backoff_max": 0.0,
    "agent_timeout": 0.05,
    "shutdown_timeout": 1.0,
    "request_timeout": 10.0,
}


def seed(pve: FakePve) -> FakePve:
    """The token, template VM 100 (a disk on local-lvm, the guest agent on) and the OS template."""
    pve.apitokens[TOKEN_ID] = TOKEN_SECRET
    pve.add_vm(
        TEMPLATE_VMID,
        "debian-template",
        template=True,
        config={
            "scsi0": f"{STORAGE}:base-{TEMPLATE_VMID}-disk-0,size=2G",
            "agent": "1",
            "cores": 1,
            "memory": 512,
            "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
        },
    )
    pve.storages[STORAGE].setdefault("volumes", {})[f"base-{TEMPLATE_VMID}-disk-0"] = {
        "content": "images",
        "format": "raw",
        "size": 2 * GIB,
        "vmid": TEMPLATE_VMID,
        "ctime": 0,
    }
    pve.store_file("local", OSTEMPLATE_FILE, 100 * 1024**2, content="vztmpl")
    return pve


def fake_config(pve: FakePve, cafile: str, **overrides: Any) -> ProxmoxConfig:
    values: dict[str, Any] = {
        "url": pve.url,
        "token_id": TOKEN_ID,
        "token_secret": TOKEN_SECRET,
        "node": NODE,
        "storage": STORAGE,
        "vmids": VMIDS,
        "ca_file": Path(cafile),
        **FAST,
    }
    values.update(overrides)
    return ProxmoxConfig(**values)


@contextlib.asynccontextmanager
async def fake_provider(
    pve: FakePve, cafile: str, run_id: str = RUN_ID, **overrides: Any
) -> AsyncIterator[ProxmoxProvider]:
    """A provider for the (seeded) fake; its HTTP sessions are closed afterwards."""
    provider = ProxmoxProvider(fake_config(pve, cafile, **overrides), run_id)
    try:
        yield provider
    finally:
        await provider.close()


def spec(key: str, image: str = VM_IMAGE, name: str = "web-1") -> MachineSpec:
    return MachineSpec(key=key, name=name, image=image, cpus=2, memory_mb=1024)


def guest(pve: FakePve, vmid: int) -> Any:
    """The fake's VM or container `vmid` (None when it has none)."""
    return pve.guest(vmid)


def tags_of(pve: FakePve, vmid: int) -> set[str]:
    found = pve.guest(vmid)
    return set(str(found.config.get("tags", "")).split(";")) - {""}


def only_guest(pve: FakePve) -> Any:
    """The one guest of the fake that is not the template."""
    made = [g for g in [*pve.vms, *pve.cts] if g.vmid != TEMPLATE_VMID]
    assert len(made) == 1, [g.vmid for g in made]
    return made[0]


def requests_to(pve: FakePve, method: str, suffix: str) -> int:
    """How many requests the fake saw with this method whose path ends with `suffix`."""
    return sum(1 for seen, path, _body in pve.requests if seen == method and path.endswith(suffix))
