"""Sweeping on a real Proxmox VE (see conftest.py): a create whose process is killed between the
clone and the tagging leaves a clone with no tags, which the sweep of its run still finds by its
description — and the sweep of another run does not."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from hangar.providers.proxmox.config import ProxmoxConfig
from hangar.providers.proxmox.provider import ProxmoxProvider
from testkit.runs import RUN_ID

from .conftest import new_key, resources

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
# The provider's create, in a process killed (SIGKILL, by itself) the moment the clone is done
# and before its tags are set: what a run killed at the worst moment leaves.
KILLED_BEFORE_TAGGING = """
import asyncio, os, signal, sys
from hangar.providers.base import MachineSpec
from hangar.providers.proxmox.provider import ProxmoxProvider
from integration.proxmox.settings import config

async def killed(*_args):
    os.kill(os.getpid(), signal.SIGKILL)

async def main(run, key, image):
    provider = ProxmoxProvider(config(), run)
    provider._size_and_tag = killed
    await provider.create(MachineSpec(key, "it-killed", image, cpus=1, memory_mb=512))

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_clone_whose_process_was_killed_before_tagging_is_swept(
    pve_config: ProxmoxConfig, vm_image: str
) -> None:
    run = f"{RUN_ID}-killed"  # a run of its own; the session's sweep covers it too
    key = new_key()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILLED_BEFORE_TAGGING,
        run,
        key,
        vm_image,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, errors = await asyncio.wait_for(child.communicate(), pve_config.create_timeout)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == -signal.SIGKILL, errors.decode(errors="replace")

    provider = ProxmoxProvider(pve_config, run)
    others = ProxmoxProvider(pve_config, RUN_ID)
    try:
        [left] = await provider.leftovers(run)
        assert left.described_run == run
        assert not left.run_tagged  # found by its description alone
        assert left.vmid in pve_config.vmids
        assert await provider.inventory() == []  # untagged: not a machine of the run
        assert left.vmid not in {guest.vmid for guest in await others.leftovers(RUN_ID)}

        report = await provider.sweep(run)
        assert [guest.vmid for guest in report.removed] == [left.vmid]
        assert report.failed == []
        assert left.vmid not in {int(item["vmid"]) for item in await resources(provider)}
    finally:
        await provider.sweep(run)
        await provider.close()
        await others.close()
