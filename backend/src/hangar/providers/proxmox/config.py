"""What the proxmox provider is told: one frozen dataclass, checked when it is built.

`ProxmoxConfig(...)` raises `ProxmoxConfigError` for any wrong value, with one line that names
the `HANGAR_PROXMOX_*` variable the value comes from and what is allowed. `build_config` turns
the settings' raw strings (as a person wrote them) into a config; `Settings.proxmox_config()`
calls it. Pure Python: nothing here needs proxmoxer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORT = 8006
DEFAULT_VMID_RANGE = "9000-9999"
VMID_MIN, VMID_MAX = 100, 999_999_999  # PVE's pve-vmid

# The environment variable behind each setting, for messages.
URL_VARIABLE = "HANGAR_PROXMOX_URL"
TOKEN_ID_VARIABLE = "HANGAR_PROXMOX_TOKEN_ID"  # noqa: S105 -- a variable's name
TOKEN_SECRET_VARIABLE = "HANGAR_PROXMOX_TOKEN_SECRET"  # noqa: S105 -- a variable's name
NODE_VARIABLE = "HANGAR_PROXMOX_NODE"
STORAGE_VARIABLE = "HANGAR_PROXMOX_STORAGE"
VMID_RANGE_VARIABLE = "HANGAR_PROXMOX_VMID_RANGE"
VERIFY_TLS_VARIABLE = "HANGAR_PROXMOX_VERIFY_TLS"
CA_FILE_VARIABLE = "HANGAR_PROXMOX_CA_FILE"
TIMEOUT_VARIABLE = "HANGAR_PROXMOX_TIMEOUT_SECONDS"

# PVE's own formats: userid `user@realm`, token name, node name, storage id, tag.
TOKEN_ID = re.compile(
    r"(?P<user>[^\s:/@!]+@[A-Za-z][A-Za-z0-9.\-_]+)!(?P<name>[A-Za-z][A-Za-z0-9.\-_]+)"
)
NODE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?")
STORAGE = re.compile(r"[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]")
VMID_RANGE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")


class ProxmoxConfigError(ValueError):
    """A setting of the proxmox provider is missing or malformed; the message is one line that
    names its variable and what is allowed."""


@dataclass(frozen=True, slots=True)
class ProxmoxConfig:
    """Where the Proxmox VE API is, how to log in, where guests go, and how long things may take.

    Guarantees once built: `url` is `https://HOST:PORT` (no path), `token_id` is
    `USER@REALM!TOKENID`, `vmids` is a non-empty range of valid VMIDs, `ca_file` (when set)
    exists, every duration is positive.
    """

    url: str
    token_id: str
    token_secret: str = field(repr=False)
    node: str
    storage: str
    vmids: range = range(9000, 10000)
    verify_tls: bool = True
    ca_file: Path | None = None
    # One HTTP request (proxmoxer's own default, 5 s, is too short for a clone's POST).
    request_timeout: float = 60.0
    # Deadlines of whole operations, in seconds.
    create_timeout: float = 900.0  # a clone or a container's creation, with its set-up
    power_timeout: float = 300.0  # a start or a hard stop
    shutdown_timeout: float = 60.0  # the guest's own shutdown, before the hard stop
    task_timeout: float = 600.0  # snapshots, deletes, disk changes
    agent_timeout: float = 60.0  # waiting for the QEMU guest agent to answer
    poll_interval: float = 1.0  # between looks at a task or an exec
    # Transient errors: this many attempts in all, waiting `backoff`, twice that, ... up to
    # `backoff_max` between them.
    attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 15.0
    # Containers: the root disk's size on `storage`, and their network (PVE's net0 syntax).
    ct_rootfs_gb: int = 8
    ct_network: str = "name=eth0,bridge=vmbr0,ip=dhcp"

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_url(self.url))
        check_token_id(self.token_id)
        if not self.token_secret:
            raise ProxmoxConfigError(
                f"{TOKEN_SECRET_VARIABLE} is empty; give the secret shown when the API token "
                f"{self.token_id} was made"
            )
        if not NODE.fullmatch(self.node):
            raise ProxmoxConfigError(
                f"{NODE_VARIABLE} must name the Proxmox node the guests live on "
                f"(letters, digits, -), got {self.node!r}"
            )
        if not STORAGE.fullmatch(self.storage):
            raise ProxmoxConfigError(
                f"{STORAGE_VARIABLE} must name a Proxmox storage for disks (e.g. local-lvm), "
                f"got {self.storage!r}"
            )
        if not self.vmids or self.vmids.step != 1:
            raise ProxmoxConfigError(f"{VMID_RANGE_VARIABLE} must be a non-empty LOW-HIGH range")
        if self.vmids.start < VMID_MIN or self.vmids.stop - 1 > VMID_MAX:
            raise ProxmoxConfigError(
                f"{VMID_RANGE_VARIABLE} must lie within {VMID_MIN}-{VMID_MAX}, "
                f"got {self.vmid_range_text}"
            )
        if self.ca_file is not None:
            if not self.verify_tls:
                raise ProxmoxConfigError(
                    f"{CA_FILE_VARIABLE} is set but {VERIFY_TLS_VARIABLE} is false; "
                    "unset one of them (the CA file is only used to verify)"
                )
            if not self.ca_file.is_file():
                raise ProxmoxConfigError(f"{CA_FILE_VARIABLE} names no file: {self.ca_file}")
        for name in (
            "request_timeout",
            "create_timeout",
            "power_timeout",
            "shutdown_timeout",
            "task_timeout",
            "agent_timeout",
            "poll_interval",
        ):
            if not getattr(self, name) > 0:
                variable = TIMEOUT_VARIABLE if name == "request_timeout" else name
                raise ProxmoxConfigError(f"{variable} must be positive, got {getattr(self, name)}")
        if self.attempts < 1 or self.backoff < 0 or self.backoff_max < 0:
            raise ProxmoxConfigError("attempts must be at least 1 and backoffs at least 0")
        if self.ct_rootfs_gb < 1:
            raise ProxmoxConfigError(f"ct_rootfs_gb must be at least 1, got {self.ct_rootfs_gb}")

    @property
    def user(self) -> str:
        """`USER@REALM` of the token."""
        return self.token_id.split("!", 1)[0]

    @property
    def token_name(self) -> str:
        return self.token_id.split("!", 1)[1]

    @property
    def host(self) -> str:
        """`HOST:PORT` as proxmoxer takes it (an IPv6 address in brackets)."""
        return self.url.removeprefix("https://")

    @property
    def verify(self) -> bool | str:
        """What `requests` takes as `verify`: the CA file, or whether to check the system's."""
        if self.verify_tls and self.ca_file is not None:
            return str(self.ca_file)
        return self.verify_tls

    @property
    def vmid_range_text(self) -> str:
        return f"{self.vmids.start}-{self.vmids.stop - 1}"


def check_url(text: str) -> str:
    """`https://HOST[:PORT][/]` -> `https://HOST:PORT`; ProxmoxConfigError for anything else."""
    example = f"https://pve.example.org:{DEFAULT_PORT}"
    if not text:
        raise ProxmoxConfigError(f"{URL_VARIABLE} is empty; give the API's address, e.g. {example}")
    try:
        parts = urlsplit(text.strip())
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ProxmoxConfigError(f"{URL_VARIABLE} must look like {example}: {exc}") from None
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise ProxmoxConfigError(
            f"{URL_VARIABLE} must look like {example} (https, a host, no path), got {text!r}"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ProxmoxConfigError(
            f"{URL_VARIABLE} must be only https://HOST:PORT (the token goes in "
            f"{TOKEN_ID_VARIABLE} and {TOKEN_SECRET_VARIABLE}), got {text!r}"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"https://{host}:{port}"


def check_token_id(text: str) -> str:
    if not text:
        raise ProxmoxConfigError(
            f"{TOKEN_ID_VARIABLE} is empty; the provider logs in with an API token, "
            "e.g. hangar@pve!hangar (see docs/proxmox.md)"
        )
    if not TOKEN_ID.fullmatch(text):
        raise ProxmoxConfigError(
            f"{TOKEN_ID_VARIABLE} must look like USER@REALM!TOKENID, e.g. hangar@pve!hangar, "
            f"got {text!r}"
        )
    return text


def parse_vmid_range(text: str) -> range:
    """`9000-9999` -> range(9000, 10000); ProxmoxConfigError naming the variable otherwise."""
    match = VMID_RANGE.fullmatch(text)
    if match is None:
        raise ProxmoxConfigError(
            f"{VMID_RANGE_VARIABLE} must look like LOW-HIGH, e.g. {DEFAULT_VMID_RANGE}, "
            f"got {text!r}"
        )
    low, high = int(match[1]), int(match[2])
    if low > high:
        raise ProxmoxConfigError(
            f"{VMID_RANGE_VARIABLE} must have LOW <= HIGH, got {text.strip()!r}"
        )
    return range(low, high + 1)


def build_config(
    *,
    url: str,
    token_id: str,
    token_secret: str,
    node: str,
    storage: str,
    vmid_range: str = DEFAULT_VMID_RANGE,
    verify_tls: bool = True,
    ca_file: str = "",
    request_timeout: float = 60.0,
) -> ProxmoxConfig:
    """A config from the settings' values as a person wrote them (empty means unset); the
    first missing or malformed one raises ProxmoxConfigError naming its variable."""
    for variable, value in (
        (URL_VARIABLE, url),
        (TOKEN_ID_VARIABLE, token_id),
        (TOKEN_SECRET_VARIABLE, token_secret),
        (NODE_VARIABLE, node),
        (STORAGE_VARIABLE, storage),
    ):
        if not value.strip():
            raise ProxmoxConfigError(
                f"{variable} is not set; the proxmox provider needs {URL_VARIABLE}, "
                f"{TOKEN_ID_VARIABLE}, {TOKEN_SECRET_VARIABLE}, {NODE_VARIABLE} and "
                f"{STORAGE_VARIABLE}"
            )
    return ProxmoxConfig(
        url=url.strip(),
        token_id=check_token_id(token_id.strip()),
        token_secret=token_secret,
        node=node.strip(),
        storage=storage.strip(),
        vmids=parse_vmid_range(vmid_range or DEFAULT_VMID_RANGE),
        verify_tls=verify_tls,
        ca_file=Path(ca_file).expanduser() if ca_file.strip() else None,
        request_timeout=request_timeout,
    )
