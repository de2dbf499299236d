"""Settings of the hangar service, read from `HANGAR_*` environment variables (pydantic-settings).

Callers rely on: every path is absolute after construction, `database_url` always names an async
driver (`sqlite+aiosqlite` or `postgresql+psycopg`), and `providers` is a list of provider names.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

import hangar

if TYPE_CHECKING:
    from hangar.providers.e2b.config import E2BConfig
    from hangar.providers.proxmox.config import ProxmoxConfig

SECRET_KEY_FILE = "secret_key"  # noqa: S105 -- a file name
RUN_ID_FILE = "run_id"
# Lower-case letters, digits, `_ . -`, at most 40: fits a Proxmox tag and E2B metadata.
RUN_ID_PATTERN = r"^([a-z0-9][a-z0-9_.-]{0,39})?$"
DATABASE_FILE = "hangar.db"


def default_frontend_dir() -> Path:
    """The repository's `frontend/` folder: backend/src/hangar/__init__.py -> four levels up."""
    return Path(hangar.__file__).resolve().parents[3] / "frontend"


def async_database_url(url: str) -> str:
    """Name the async driver for a database URL a person wrote the plain way."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    for plain in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url.removeprefix(plain)
    return url


class Settings(BaseSettings):
    """Everything the service can be told from outside. Unknown `HANGAR_*` variables are ignored."""

    model_config = SettingsConfigDict(env_prefix="HANGAR_", extra="ignore")

    data_dir: Path = Path(".hangar")
    database_url: str = ""  # empty: a SQLite file in the data dir
    # SQLite only: how long a request waits for another process's lock on the database file
    # before it answers 503 (the service goes on; the next request tries again).
    database_busy_timeout_seconds: float = Field(default=5.0, ge=0, le=600)
    secret_key: str = ""  # empty: generated once and kept in the data dir
    # What this service's machines in shared places carry (Proxmox tag `run-<id>`, E2B metadata
    # `run`), so sweeps and the observer tell its machines from others'. Empty: generated once
    # and kept in the data dir. Tests set their run's id.
    run_id: str = Field(default="", pattern=RUN_ID_PATTERN)
    providers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["fake"])
    admin_password: str | None = None
    frontend_dir: Path | None = Field(default_factory=default_frontend_dir)

    session_hours: float = Field(default=12.0, gt=0)
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    fake_latency_seconds: float = Field(default=0.5, ge=0)

    # Failed logins allowed within the window, per username and per client address.
    login_attempts_per_user: int = Field(default=5, ge=1)
    login_attempts_per_address: int = Field(default=20, ge=1)
    login_window_seconds: float = Field(default=60.0, gt=0)

    # How long shutdown waits for running operations before cancelling them.
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)

    # How often the observer compares the database with the providers; 0 turns the loop off
    # (GET /api/v1/observer/report still reconciles on demand).
    observer_interval_seconds: float = Field(default=10.0, ge=0)

    # -- e2b provider: E2B cloud sandboxes through the official `e2b` SDK ----------------------
    # The API key may also come from the SDK's own E2B_API_KEY. The timeout is each sandbox's
    # lifetime, extended by the observer while its machine runs: a dead-man switch, so the
    # sandboxes of a server that died expire on their own (E2B allows at most 24 h). Domain:
    # empty means the SDK's default (E2B_DOMAIN, else e2b.app).
    e2b_api_key: SecretStr | None = None
    e2b_template: str = Field(default="base", min_length=1)
    e2b_timeout_s: int = Field(default=300, ge=30, le=86_400)
    e2b_domain: str | None = None

    # -- proxmox provider: QEMU VMs and LXC containers of a Proxmox VE node (docs/proxmox.md) --
    # Read only when `proxmox` is enabled: `proxmox_config()` checks them and names the variable
    # of the first one that is missing or wrong. Login is an API token (`USER@REALM!TOKENID` and
    # its secret); TLS is verified, against HANGAR_PROXMOX_CA_FILE when given. The timeout is one
    # HTTP request's (proxmoxer's own 5 s is too short for a clone).
    proxmox_url: str = ""
    proxmox_token_id: str = ""
    proxmox_token_secret: SecretStr = SecretStr("")
    proxmox_node: str = ""
    proxmox_storage: str = ""
    proxmox_vmid_range: str = "9000-9999"
    proxmox_verify_tls: bool = True
    proxmox_ca_file: str = ""
    proxmox_timeout_seconds: float = Field(default=60.0, gt=0)

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("frontend_dir", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        # HANGAR_FRONTEND_DIR= (empty) turns the web UI off instead of serving the current dir.
        return None if value == "" else value

    @field_validator("providers")
    @classmethod
    def _providers_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one provider must be enabled, e.g. HANGAR_PROVIDERS=fake")
        return value

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / DATABASE_FILE}"
        self.database_url = async_database_url(self.database_url)
        return self

    @model_validator(mode="after")
    def _e2b_outlives_a_missed_keep_alive(self) -> Settings:
        interval = self.observer_interval_seconds
        if "e2b" in self.providers and interval > 0 and self.e2b_timeout_s < 3 * interval:
            raise ValueError(
                f"HANGAR_E2B_TIMEOUT_S ({self.e2b_timeout_s}) must be at least 3 times "
                f"HANGAR_OBSERVER_INTERVAL_SECONDS ({interval:g}), so that a running sandbox "
                "outlives a missed keep-alive"
            )
        return self

    def e2b_config(self) -> E2BConfig:
        """What the e2b provider is told. `E2BSettingsError` (one line naming the variable) when
        neither HANGAR_E2B_API_KEY nor the SDK's E2B_API_KEY is set."""
        from hangar.providers.e2b.config import KEY_VARIABLE, SDK_KEY_VARIABLE, E2BConfig

        key = self.e2b_api_key.get_secret_value() if self.e2b_api_key is not None else ""
        variable = KEY_VARIABLE
        if not key:
            key, variable = os.environ.get(SDK_KEY_VARIABLE, ""), SDK_KEY_VARIABLE
        return E2BConfig(
            api_key=key,
            template=self.e2b_template,
            timeout_s=self.e2b_timeout_s,
            domain=self.e2b_domain or None,
            key_variable=variable,
        )

    def proxmox_config(self) -> ProxmoxConfig:
        """What the proxmox provider is told. `ProxmoxConfigError` (a ValueError: one line naming
        the variable and what is allowed) when a setting is missing or malformed."""
        from hangar.providers.proxmox.config import build_config

        return build_config(
            url=self.proxmox_url,
            token_id=self.proxmox_token_id,
            token_secret=self.proxmox_token_secret.get_secret_value(),
            node=self.proxmox_node,
            storage=self.proxmox_storage,
            vmid_range=self.proxmox_vmid_range,
            verify_tls=self.proxmox_verify_tls,
            ca_file=self.proxmox_ca_file,
            request_timeout=self.proxmox_timeout_seconds,
        )

    def ensure_data_dir(self) -> Path:
        """Create the data dir (private to the user) and return it."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.data_dir

    def resolved_secret_key(self) -> str:
        """The configured secret key, or the one stored in the data dir (created on first use)."""
        if self.secret_key:
            return self.secret_key
        path = self.ensure_data_dir() / SECRET_KEY_FILE
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        return path.read_text(encoding="utf-8").strip()

    def resolved_run_id(self) -> str:
        """The configured run id, or the one stored in the data dir (created on first use)."""
        if self.run_id:
            return self.run_id
        path = self.ensure_data_dir() / RUN_ID_FILE
        if not path.exists():
            path.write_text(secrets.token_hex(6), encoding="utf-8")
        return path.read_text(encoding="utf-8").strip()


def explain(error: ValidationError) -> str:
    """One line per wrong setting, naming its variable and what is allowed, e.g.
    `HANGAR_RUN_ID: String should match pattern '…'` — for people, instead of a traceback."""
    lines = []
    for problem in error.errors():
        field_name = str(problem["loc"][0]) if problem["loc"] else ""
        variable = f"HANGAR_{field_name.upper()}" if field_name else "settings"
        lines.append(f"{variable}: {problem['msg']}")
    return "\n".join(lines)
