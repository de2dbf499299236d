"""The proxmox provider's settings: each missing or malformed one is one line naming its variable,
both when the settings are read and when the fake Proxmox (fakepve) cannot be reached with them."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from hangar.providers.proxmox.client import (
    Deadline,
    ProxmoxAuthError,
    ProxmoxTlsError,
    ProxmoxUnreachableError,
)
from hangar.providers.proxmox.config import ProxmoxConfig, ProxmoxConfigError
from hangar.providers.proxmox.provider import ProxmoxProvider
from hangar.settings import Settings

from .fakepve_support import TOKEN_ID, TOKEN_SECRET, FakePve, fake_provider, seed

COMPLETE = {
    "HANGAR_PROXMOX_URL": "https://pve.example.org",
    "HANGAR_PROXMOX_TOKEN_ID": "hangar@pve!ci",
    "HANGAR_PROXMOX_TOKEN_SECRET": "s3cret",
    "HANGAR_PROXMOX_NODE": "pve1",
    "HANGAR_PROXMOX_STORAGE": "local-lvm",
}


def settings_with(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    for name, value in {**COMPLETE, **variables}.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_settings_become_the_providers_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = settings_with(monkeypatch).proxmox_config()
    assert config.url == "https://pve.example.org:8006"
    assert (config.user, config.token_name, config.token_secret) == ("hangar@pve", "ci", "s3cret")
    assert config.vmids == range(9000, 10000)
    assert config.verify is True
    assert config.request_timeout == 60
    assert "s3cret" not in repr(config)


def test_range_ca_file_and_timeout_are_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "pve-root-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    config = settings_with(
        monkeypatch,
        HANGAR_PROXMOX_URL="https://[fd00::1]:443/",
        HANGAR_PROXMOX_VMID_RANGE=" 100 - 199 ",
        HANGAR_PROXMOX_CA_FILE=str(ca),
        HANGAR_PROXMOX_TIMEOUT_SECONDS="120",
    ).proxmox_config()
    assert (config.url, config.host) == ("https://[fd00::1]:443", "[fd00::1]:443")
    assert config.vmids == range(100, 200)
    assert config.vmid_range_text == "100-199"
    assert config.verify == str(ca)
    assert config.request_timeout == 120


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HANGAR_PROXMOX_URL", "", "HANGAR_PROXMOX_URL is not set"),
        ("HANGAR_PROXMOX_TOKEN_ID", "", "HANGAR_PROXMOX_TOKEN_ID is not set"),
        ("HANGAR_PROXMOX_TOKEN_SECRET", "", "HANGAR_PROXMOX_TOKEN_SECRET is not set"),
        ("HANGAR_PROXMOX_NODE", " ", "HANGAR_PROXMOX_NODE is not set"),
        ("HANGAR_PROXMOX_STORAGE", "", "HANGAR_PROXMOX_STORAGE is not set"),
        (
            "HANGAR_PROXMOX_TOKEN_ID",
            "hangar@pve",
            "HANGAR_PROXMOX_TOKEN_ID must look like USER@REALM!TOKENID",
        ),
        ("HANGAR_PROXMOX_TOKEN_ID", "hangar!ci", "must look like USER@REALM!TOKENID"),
        ("HANGAR_PROXMOX_URL", "http://pve:8006", "HANGAR_PROXMOX_URL must look like https://"),
        ("HANGAR_PROXMOX_URL", "https://pve:8006/api2/json", "(https, a host, no path)"),
        ("HANGAR_PROXMOX_URL", "pve.example.org", "HANGAR_PROXMOX_URL must look like https://"),
        ("HANGAR_PROXMOX_URL", "https://pve:99999", "HANGAR_PROXMOX_URL must look like"),
        ("HANGAR_PROXMOX_URL", "https://root:pw@pve", "the token goes in"),
        ("HANGAR_PROXMOX_NODE", "pve 1", "HANGAR_PROXMOX_NODE must name the Proxmox node"),
        ("HANGAR_PROXMOX_STORAGE", "local lvm", "HANGAR_PROXMOX_STORAGE must name a Proxmox"),
        ("HANGAR_PROXMOX_VMID_RANGE", "9000", "HANGAR_PROXMOX_VMID_RANGE must look like LOW-HIGH"),
        ("HANGAR_PROXMOX_VMID_RANGE", "9999-9000", "must have LOW <= HIGH"),
        ("HANGAR_PROXMOX_VMID_RANGE", "50-60", "must lie within 100-999999999"),
        ("HANGAR_PROXMOX_CA_FILE", "/nonexistent/ca.pem", "HANGAR_PROXMOX_CA_FILE names no file"),
    ],
)
def test_a_missing_or_malformed_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    settings = settings_with(monkeypatch, **{variable: value})
    with pytest.raises(ProxmoxConfigError) as raised:
        settings.proxmox_config()
    assert message in str(raised.value)
    assert variable in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_ca_file_without_verification_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.touch()
    settings = settings_with(
        monkeypatch, HANGAR_PROXMOX_VERIFY_TLS="false", HANGAR_PROXMOX_CA_FILE=str(ca)
    )
    with pytest.raises(ProxmoxConfigError, match="HANGAR_PROXMOX_CA_FILE is set but"):
        settings.proxmox_config()
    assert settings_with(monkeypatch, HANGAR_PROXMOX_CA_FILE="").proxmox_config().verify is False


def test_durations_and_the_run_id_are_checked() -> None:
    values: dict[str, Any] = {
        k.removeprefix("HANGAR_PROXMOX_").lower(): v for k, v in COMPLETE.items()
    }
    with pytest.raises(ProxmoxConfigError, match="HANGAR_PROXMOX_TIMEOUT_SECONDS must be positive"):
        ProxmoxConfig(**values, request_timeout=0)
    with pytest.raises(ProxmoxConfigError, match="create_timeout must be positive"):
        ProxmoxConfig(**values, create_timeout=-1)
    with pytest.raises(ProxmoxConfigError, match="HANGAR_PROXMOX_VMID_RANGE must be a non-empty"):
        ProxmoxConfig(**values, vmids=range(9000, 9000))
    config = ProxmoxConfig(**values)
    with pytest.raises(ValueError, match="HANGAR_RUN_ID must be lower-case"):
        ProxmoxProvider(config, "Run 1")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def deadline() -> Deadline:
    return Deadline.after(10, "a test request")


@pytest.mark.asyncio
async def test_a_wrong_url_names_the_variable(fakepve: FakePve, fakepve_cafile: str) -> None:
    seed(fakepve)
    url = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    async with fake_provider(fakepve, fakepve_cafile, url=url) as provider:
        with pytest.raises(ProxmoxUnreachableError) as raised:
            await provider.client.get_object("version", deadline=deadline())
    assert str(raised.value) == (
        f"cannot reach Proxmox at HANGAR_PROXMOX_URL={url}: Connection refused"
    )


@pytest.mark.asyncio
async def test_a_certificate_that_cannot_be_verified_names_the_ca_variable(
    fakepve: FakePve, fakepve_cafile: str
) -> None:
    seed(fakepve)
    # The fake's certificate is self-signed: the system's CAs do not vouch for it.
    async with fake_provider(fakepve, fakepve_cafile, ca_file=None) as provider:
        with pytest.raises(ProxmoxTlsError) as raised:
            await provider.client.get_object("version", deadline=deadline())
    message = str(raised.value)
    assert message.startswith(
        f"cannot verify the TLS certificate of HANGAR_PROXMOX_URL={fakepve.url}"
    )
    assert "set HANGAR_PROXMOX_CA_FILE to the cluster's CA certificate" in message
    assert "\n" not in message
    assert len(fakepve.requests) == 0  # never retried, nothing reached the API


@pytest.mark.asyncio
async def test_a_wrong_token_names_both_token_variables(
    fakepve: FakePve, fakepve_cafile: str
) -> None:
    seed(fakepve)
    async with fake_provider(fakepve, fakepve_cafile, token_secret="wrong") as provider:
        with pytest.raises(ProxmoxAuthError) as raised:
            await provider.client.get_object("version", deadline=deadline())
    assert str(raised.value) == (
        f"Proxmox refused the API token HANGAR_PROXMOX_TOKEN_ID={TOKEN_ID} (authentication "
        "failure); check it and HANGAR_PROXMOX_TOKEN_SECRET"
    )
    assert len(fakepve.requests) == 1  # a refused token is not retried


@pytest.mark.asyncio
async def test_the_right_settings_reach_the_fake(fakepve: FakePve, fakepve_cafile: str) -> None:
    seed(fakepve)
    async with fake_provider(fakepve, fakepve_cafile) as provider:
        version = await provider.client.get_object("version", deadline=deadline())
    assert version["version"] == fakepve.version
    assert TOKEN_SECRET not in repr(provider.config)
