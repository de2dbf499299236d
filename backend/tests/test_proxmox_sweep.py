"""Sweeping leftover guests by their run tag (or, for a clone never tagged, by its description),
as a function of the provider and as `hangar proxmox sweep`, against fakepve (a fake Proxmox VE
API)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hangar.cli_proxmox import proxmox_app
from hangar.providers.base import ProviderError
from hangar.providers.proxmox.guests import marked_created

from .fakepve_support import (
    CT_IMAGE,
    NODE,
    RUN_ID,
    STORAGE,
    TOKEN_ID,
    TOKEN_SECRET,
    VM_IMAGE,
    VMIDS,
    FakePve,
    fake_provider,
    seed,
    spec,
    tags_of,
)

OTHER_RUN = "4242-abcdef"

runner = CliRunner()


async def leave_guests(fakepve: FakePve, cafile: str) -> dict[str, int]:
    """Guests of two runs (one running), and guests no sweep may touch. Name -> VMID."""
    vmids: dict[str, int] = {}
    for run, key, image in ((RUN_ID, "mine", CT_IMAGE), (OTHER_RUN, "theirs", CT_IMAGE)):
        async with fake_provider(fakepve, cafile, run_id=run) as provider:
            await provider.create(spec(key, image, name=key))
            vmids[key] = int((await provider.placement(key))["vmid"])
    fakepve.ct(vmids["theirs"]).status = "running"
    tagged = f"hangar;run-{OTHER_RUN}"
    fakepve.add_vm(9090, "untagged")
    fakepve.add_vm(9091, "no-run-tag", config={"tags": "hangar;key-x"})
    fakepve.add_vm(9092, "a-template", template=True, config={"tags": tagged})
    fakepve.add_vm(600, "outside-the-range", config={"tags": tagged})
    return vmids


def remaining(fakepve: FakePve) -> set[int]:
    return {guest.vmid for guest in [*fakepve.vms, *fakepve.cts]}


UNTOUCHABLE = {100, 9090, 9091, 9092, 600}


@pytest.mark.asyncio
async def test_a_sweep_deletes_only_the_named_runs_tagged_guests(
    fakepve: FakePve, fakepve_cafile: str
) -> None:
    vmids = await leave_guests(seed(fakepve), fakepve_cafile)
    async with fake_provider(fakepve, fakepve_cafile) as provider:
        assert [g.vmid for g in await provider.leftovers(OTHER_RUN)] == [vmids["theirs"]]
        assert [g.vmid for g in await provider.leftovers(lambda run: True)] == sorted(
            vmids.values()
        )
        report = await provider.sweep(OTHER_RUN)
        assert [(g.vmid, g.run) for g in report.removed] == [(vmids["theirs"], OTHER_RUN)]
        assert report.failed == []
        assert remaining(fakepve) == UNTOUCHABLE | {vmids["mine"]}
        assert (await provider.sweep(OTHER_RUN)).removed == []  # nothing left of that run
        # This run's own guest is a machine of this service, found by inventory().
        assert [r.key for r in await provider.inventory()] == ["mine"]


@pytest.mark.asyncio
async def test_a_guest_that_cannot_be_deleted_is_reported_and_the_rest_still_go(
    fakepve: FakePve, fakepve_cafile: str
) -> None:
    vmids = await leave_guests(seed(fakepve), fakepve_cafile)
    fakepve.ct(vmids["mine"]).config["protection"] = 1
    async with fake_provider(fakepve, fakepve_cafile) as provider:
        report = await provider.sweep(lambda run: True)
    assert [g.vmid for g in report.removed] == [vmids["theirs"]]
    [(guest, reason)] = report.failed
    assert guest.vmid == vmids["mine"]
    assert "protection mode enabled" in reason


@pytest.fixture
def environment(
    fakepve: FakePve, fakepve_cafile: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> FakePve:
    for name, value in {
        "HANGAR_DATA_DIR": str(tmp_path / "data"),
        "HANGAR_RUN_ID": RUN_ID,
        "HANGAR_PROXMOX_URL": fakepve.url,
        "HANGAR_PROXMOX_TOKEN_ID": TOKEN_ID,
        "HANGAR_PROXMOX_TOKEN_SECRET": TOKEN_SECRET,
        "HANGAR_PROXMOX_NODE": NODE,
        "HANGAR_PROXMOX_STORAGE": STORAGE,
        "HANGAR_PROXMOX_VMID_RANGE": "9000-9099",
        "HANGAR_PROXMOX_CA_FILE": fakepve_cafile,
    }.items():
        monkeypatch.setenv(name, value)
    return seed(fakepve)


def sweep(*args: str) -> Any:
    return runner.invoke(proxmox_app, ["sweep", *args])


def test_the_command_sweeps_other_runs_or_the_one_named(
    environment: FakePve, fakepve_cafile: str
) -> None:
    vmids = asyncio.run(leave_guests(environment, fakepve_cafile))
    theirs, mine = vmids["theirs"], vmids["mine"]

    listed = sweep("--dry-run")  # by default: every run but this service's own
    assert listed.exit_code == 0, listed.output
    assert listed.output == f"would delete CT {theirs} (theirs) of run {OTHER_RUN}\n"
    assert remaining(environment) == UNTOUCHABLE | {theirs, mine}

    done = sweep()
    assert done.exit_code == 0, done.output
    assert done.output == f"deleted CT {theirs} (theirs) of run {OTHER_RUN}\n"
    assert sweep().output == "no leftover guests\n"

    own = sweep("--run", RUN_ID)  # named: this run too
    assert own.exit_code == 0, own.output
    assert own.output == f"deleted CT {mine} (mine) of run {RUN_ID}\n"
    assert remaining(environment) == UNTOUCHABLE


def test_the_command_names_a_missing_setting(
    environment: FakePve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HANGAR_PROXMOX_TOKEN_ID")
    result = sweep()
    assert result.exit_code == 1
    assert result.output.startswith("HANGAR_PROXMOX_TOKEN_ID is not set;")
    assert result.output.count("\n") == 1
    monkeypatch.setenv("HANGAR_RUN_ID", "Not A Tag")
    assert sweep().output.startswith("HANGAR_RUN_ID: String should match pattern")


# ------------------------------------------------------------------ a clone never tagged
TAGGING = "/nodes/{node}/qemu/{vmid}/config"
DESTROY = "/nodes/{node}/qemu/{vmid}"


async def leave_an_untagged_clone(fakepve: FakePve, cafile: str, run: str = RUN_ID) -> int:
    """What a create leaves when its process dies between the clone and the tagging: the
    tagging is refused and so is the clean-up, so the clone stays with only its description.
    Returns its VMID."""
    fakepve.fail("PUT", TAGGING, 500, "interrupted (fault injected)", times=1)
    fakepve.fail("DELETE", DESTROY, 500, "interrupted too (fault injected)", times=1)
    before = remaining(fakepve)
    async with fake_provider(fakepve, cafile, run_id=run) as provider:
        with pytest.raises(ProviderError, match=r"removing the half-made guest \d+ failed too"):
            await provider.create(spec("lost", VM_IMAGE, name="lost"))
    [vmid] = remaining(fakepve) - before
    assert vmid in VMIDS
    return vmid


@pytest.mark.asyncio
async def test_a_clone_whose_tagging_never_happened_is_swept_by_its_description(
    fakepve: FakePve, fakepve_cafile: str
) -> None:
    seed(fakepve)
    # Untagged guests that no sweep may take: no marks, another run's marks, a mark without a
    # machine, outside the range, a template. They exist before the clone, whose VMID is drawn
    # at random from the range, so it cannot take one of theirs.
    marks = f"hangar-run: {RUN_ID}\nhangar-key: x\n"
    fakepve.add_vm(9090, "untagged")
    fakepve.add_vm(
        9093, "theirs", config={"description": f"hangar-run: {OTHER_RUN}\nhangar-key: y"}
    )
    fakepve.add_vm(9094, "no-key", config={"description": f"hangar-run: {RUN_ID}\n"})
    fakepve.add_vm(601, "outside", config={"description": marks})
    fakepve.add_vm(9095, "a-template", template=True, config={"description": marks})
    # A person's tags are not a run tag: the description still decides.
    fakepve.add_vm(9096, "person-tagged", config={"tags": "web", "description": marks})
    vmid = await leave_an_untagged_clone(fakepve, fakepve_cafile)
    clone = fakepve.vm(vmid)
    assert not tags_of(fakepve, vmid) & {"hangar", f"run-{RUN_ID}", "key-lost"}
    assert f"hangar-run: {RUN_ID}\n" in clone.config["description"]
    made = marked_created(clone.config["description"])  # what the test tier ages runs by
    assert made is not None
    assert abs(datetime.now(UTC) - made) < timedelta(minutes=5)
    assert marked_created("hangar-created: yesterday\n") is None
    ours = sorted([vmid, 9096])  # leftovers and sweeps go in VMID order
    async with fake_provider(fakepve, fakepve_cafile) as provider:
        assert await provider.inventory() == []  # not a machine of the run: it has no tags
        listed = await provider.leftovers(RUN_ID)
        assert [(g.vmid, g.run, g.described_run) for g in listed] == [
            (number, RUN_ID, RUN_ID) for number in ours
        ]
        assert [g.vmid for g in await provider.leftovers(OTHER_RUN)] == [9093]
        report = await provider.sweep(RUN_ID)
        assert [g.vmid for g in report.removed] == ours
        assert report.failed == []
    assert remaining(fakepve) == {100, 9090, 9093, 9094, 601, 9095}


def test_the_command_names_the_run_of_an_untagged_clone(
    environment: FakePve, fakepve_cafile: str
) -> None:
    vmid = asyncio.run(leave_an_untagged_clone(environment, fakepve_cafile, run=OTHER_RUN))
    listed = sweep("--dry-run")
    assert listed.exit_code == 0, listed.output
    assert listed.output == f"would delete VM {vmid} (lost) of run {OTHER_RUN}\n"
    assert sweep().output == f"deleted VM {vmid} (lost) of run {OTHER_RUN}\n"
    assert remaining(environment) == {100}
