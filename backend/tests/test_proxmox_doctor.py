"""`doctor_proxmox`: one line per check of a configured Proxmox VE and the number of problems,
against fakepve (a fake Proxmox VE API)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hangar.cli_proxmox import STORAGE_PRIVILEGES, VM_PRIVILEGES, doctor_proxmox
from hangar.settings import Settings

from .fakepve_support import NODE, STORAGE, TOKEN_ID, TOKEN_SECRET, FakePve, seed


def settings_for(fakepve: FakePve, cafile: str, tmp_path: Path, **overrides: str) -> Settings:
    values = {
        "data_dir": tmp_path / "data",
        "proxmox_url": fakepve.url,
        "proxmox_token_id": TOKEN_ID,
        "proxmox_token_secret": TOKEN_SECRET,
        "proxmox_node": NODE,
        "proxmox_storage": STORAGE,
        "proxmox_ca_file": cafile,
        **overrides,
    }
    return Settings.model_validate(values)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]


def test_a_healthy_proxmox_has_no_problems(
    fakepve: FakePve, fakepve_cafile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert doctor_proxmox(settings_for(seed(fakepve), fakepve_cafile, tmp_path)) == 0
    assert lines(capsys) == [
        f"proxmox api {fakepve.url} (Proxmox VE {fakepve.version})",
        "proxmox node pve1 online",
        "proxmox storage local-lvm active (lvmthin, for VMs and containers)",
        "proxmox token on /vms ok",
        "proxmox token on /storage/local-lvm ok",
    ]


def test_missing_privileges_are_named(
    fakepve: FakePve, fakepve_cafile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(fakepve)
    fakepve.grant(TOKEN_ID, "/vms", *[p for p in VM_PRIVILEGES if p != "VM.Snapshot"])
    fakepve.grant(TOKEN_ID, "/storage", *STORAGE_PRIVILEGES[:2])
    assert doctor_proxmox(settings_for(fakepve, fakepve_cafile, tmp_path)) == 2
    found = lines(capsys)
    assert found[2].startswith("proxmox storage local-lvm active")
    assert found[3:] == [
        f"proxmox token on /vms PROBLEM: {TOKEN_ID} lacks VM.Snapshot, VM.GuestAgent.Unrestricted",
        f"proxmox token on /storage/local-lvm PROBLEM: {TOKEN_ID} lacks Datastore.Allocate",
    ]
    fakepve.version = "8.4.1"  # before PVE 9, the guest agent's exec needs VM.Monitor
    assert doctor_proxmox(settings_for(fakepve, fakepve_cafile, tmp_path)) == 2
    assert f"{TOKEN_ID} lacks VM.Snapshot, VM.Monitor" in lines(capsys)[3]


def test_a_wrong_node_and_storage_are_problems(
    fakepve: FakePve, fakepve_cafile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(fakepve)
    fakepve.storages["backups"] = {"type": "dir", "active": 1, "content": "backup", "files": set()}
    wrong_node = settings_for(fakepve, fakepve_cafile, tmp_path, proxmox_node="pve9")
    assert doctor_proxmox(wrong_node) == 2
    found = lines(capsys)
    assert found[1] == "proxmox node pve9 PROBLEM: not in the cluster (nodes: pve1)"
    assert found[2].startswith("proxmox storage local-lvm PROBLEM: Proxmox refused GET")
    wrong_storage = settings_for(fakepve, fakepve_cafile, tmp_path, proxmox_storage="backups")
    assert doctor_proxmox(wrong_storage) == 1
    assert lines(capsys)[2] == (
        "proxmox storage backups PROBLEM: holds neither VM disks (images) nor containers "
        "(rootdir): backup"
    )


def test_bad_settings_and_an_unreachable_api_are_one_problem_each(
    fakepve: FakePve, fakepve_cafile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(fakepve)
    no_token = settings_for(fakepve, fakepve_cafile, tmp_path, proxmox_token_id="")
    assert doctor_proxmox(no_token) == 1
    [line] = lines(capsys)
    assert line.startswith("proxmox settings PROBLEM: HANGAR_PROXMOX_TOKEN_ID is not set;")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"https://127.0.0.1:{probe.getsockname()[1]}"
    assert doctor_proxmox(settings_for(fakepve, fakepve_cafile, tmp_path, proxmox_url=closed)) == 1
    assert lines(capsys) == [
        f"proxmox api PROBLEM: cannot reach Proxmox at HANGAR_PROXMOX_URL={closed}: "
        "Connection refused"
    ]
    assert len(fakepve.requests) == 0
