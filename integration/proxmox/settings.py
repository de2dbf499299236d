"""Which Proxmox VE the integration tests use: the `HANGAR_TEST_PROXMOX_*` variables, read into the
provider's config. No pytest here: a child process of the sweep test imports it too.

Required: `HANGAR_TEST_PROXMOX_URL`, `…_TOKEN_ID`, `…_TOKEN_SECRET`, `…_NODE`. Each kind of guest
needs its image: `…_VM_TEMPLATE` (a template VM's VMID) for the VM tests, `…_CT_TEMPLATE` (an OS
template's volume id) for the container tests. Optional: `…_STORAGE` (default `local-lvm`),
`…_VMID_RANGE` (default the provider's, 9000-9999), `…_CA_FILE`, `…_VERIFY_TLS` (default true).
"""

from __future__ import annotations

import dataclasses
import os

from hangar.providers.proxmox.config import (
    DEFAULT_VMID_RANGE,
    ProxmoxConfig,
    ProxmoxConfigError,
    build_config,
)

PREFIX = "HANGAR_TEST_PROXMOX_"
URL = f"{PREFIX}URL"
TOKEN_ID = f"{PREFIX}TOKEN_ID"
TOKEN_SECRET = f"{PREFIX}TOKEN_SECRET"
NODE = f"{PREFIX}NODE"
VM_TEMPLATE = f"{PREFIX}VM_TEMPLATE"
CT_TEMPLATE = f"{PREFIX}CT_TEMPLATE"
STORAGE = f"{PREFIX}STORAGE"
VMID_RANGE = f"{PREFIX}VMID_RANGE"
CA_FILE = f"{PREFIX}CA_FILE"
VERIFY_TLS = f"{PREFIX}VERIFY_TLS"
REQUIRED = (URL, TOKEN_ID, TOKEN_SECRET, NODE)
DEFAULT_STORAGE = "local-lvm"
# A VM's guest agent starts with its OS: a fresh clone may take minutes to boot on a busy node.
AGENT_TIMEOUT_S = 180.0
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class SettingError(ValueError):
    """A HANGAR_TEST_PROXMOX_* variable is malformed; the message names it."""


def value(name: str) -> str:
    return os.environ.get(name, "").strip()


def missing() -> list[str]:
    """The required variables that are not set."""
    return [name for name in REQUIRED if not value(name)]


def verify_tls() -> bool:
    text = value(VERIFY_TLS).lower() or "true"
    if text not in TRUE | FALSE:
        raise SettingError(f"{VERIFY_TLS} must be true or false, got {text!r}")
    return text in TRUE


def config() -> ProxmoxConfig:
    """The provider's config from the HANGAR_TEST_PROXMOX_* variables (a wrong one raises
    SettingError naming it)."""
    try:
        built = build_config(
            url=value(URL),
            token_id=value(TOKEN_ID),
            token_secret=os.environ.get(TOKEN_SECRET, ""),
            node=value(NODE),
            storage=value(STORAGE) or DEFAULT_STORAGE,
            vmid_range=value(VMID_RANGE) or DEFAULT_VMID_RANGE,
            verify_tls=verify_tls(),
            ca_file=value(CA_FILE),
        )
    except ProxmoxConfigError as exc:  # it names HANGAR_PROXMOX_*: name what the tests read
        raise SettingError(str(exc).replace("HANGAR_PROXMOX_", PREFIX)) from None
    return dataclasses.replace(built, agent_timeout=AGENT_TIMEOUT_S)


def server_environment() -> dict[str, str]:
    """The HANGAR_PROXMOX_* settings of a `hangar serve` that uses the same Proxmox VE."""
    config()  # the same checks first
    names = ("URL", "TOKEN_ID", "TOKEN_SECRET", "NODE", "VMID_RANGE", "CA_FILE")
    env = {f"HANGAR_PROXMOX_{name}": value(f"{PREFIX}{name}") for name in names}
    env["HANGAR_PROXMOX_TOKEN_SECRET"] = os.environ.get(TOKEN_SECRET, "")
    env["HANGAR_PROXMOX_STORAGE"] = value(STORAGE) or DEFAULT_STORAGE
    env["HANGAR_PROXMOX_VMID_RANGE"] = value(VMID_RANGE) or DEFAULT_VMID_RANGE
    env["HANGAR_PROXMOX_VERIFY_TLS"] = "true" if verify_tls() else "false"
    return env
