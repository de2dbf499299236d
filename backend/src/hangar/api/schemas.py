"""Request and response bodies of the API (docs/api.md is the contract)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic.config import JsonDict, JsonValue

from hangar.db.models import OperationStatus
from hangar.providers.fake import FAULT_ACTIONS
from hangar.providers.registry import FACTORIES
from hangar.service.states import MachineState
from hangar.service.users import Role

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DNS_LABEL_RULE = (
    "must be a DNS label: 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
)


def _dns_label(value: str) -> str:
    if not DNS_LABEL.fullmatch(value):
        raise ValueError(f"{value!r} {DNS_LABEL_RULE}")
    return value


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# The pattern is for the OpenAPI document; the validator gives the message that explains it.
DnsLabel = Annotated[
    str,
    Field(max_length=63, json_schema_extra={"pattern": DNS_LABEL.pattern}),
    AfterValidator(_dns_label),
]
# SQLite's integers are 64-bit: a larger id or offset is a 422, not an overflow in the database.
MAX_INTEGER = 2**63 - 1
UtcDateTime = Annotated[datetime, AfterValidator(_utc)]


def _whole_number(value: object) -> object:
    """JSON has one kind of number, and JSON Schema's `integer` includes 1.0: a float without a
    fraction is that integer. Anything else (true, "1", 1.5) goes on to the strict check."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A body's integer: 2 and 2.0, never true or "2" (lax pydantic would take those).
Integer = Annotated[int, Strict(), BeforeValidator(_whole_number)]


class Input(BaseModel):
    """Request bodies: unknown fields are an error, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def one_of(values: Iterable[object]) -> JsonDict:
    """A closed set as an enum in the OpenAPI document; the field keeps its own validation, so
    that a value outside the set gets the API's message (e.g. which providers are enabled)."""
    enum: list[JsonValue] = [str(value) for value in sorted(map(str, values))]
    return {"enum": enum}


# ---------------------------------------------------------------- auth
class LoginIn(Input):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChangeIn(Input):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class UserOut(Output):
    id: str
    username: str
    role: str = Field(json_schema_extra=one_of(Role))


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str | None


class TokenIn(Input):
    name: str = Field(min_length=1, max_length=100)


class TokenOut(Output):
    id: str
    name: str
    created_at: UtcDateTime
    last_used_at: UtcDateTime | None
    revoked_at: UtcDateTime | None


class TokenCreatedOut(TokenOut):
    token: str


# ---------------------------------------------------------------- machines
class MachineIn(Input):
    name: DnsLabel
    provider: str = Field(
        min_length=1,
        max_length=32,
        json_schema_extra=one_of(FACTORIES),
        description="One of the providers this server enabled (HANGAR_PROVIDERS; GET "
        "/api/v1/providers lists them); the document's enum names exactly those.",
    )
    image: str = Field(min_length=1, max_length=200)
    cpus: Integer = Field(ge=1, le=8)
    memory_mb: Integer = Field(ge=64, le=16384)
    start: bool = Field(default=True, strict=True)


class CloneIn(Input):
    name: DnsLabel


class MachineOut(Output):
    id: str
    name: str
    provider: str
    image: str
    cpus: int
    memory_mb: int
    state: str = Field(json_schema_extra=one_of(MachineState))
    endpoint: str | None
    details: dict[str, str] = Field(
        description="Where the provider put the machine, for people: e.g. a Proxmox guest's "
        "kind, node and VMID, an E2B sandbox's id. Empty for providers without such names."
    )
    error: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class MachinePageOut(BaseModel):
    items: list[MachineOut]
    total: int
    limit: int
    offset: int


class OperationOut(Output):
    id: str
    machine_id: str
    kind: str
    status: OperationStatus
    error: str | None
    created_at: UtcDateTime
    finished_at: UtcDateTime | None


class OperationAcceptedOut(BaseModel):
    operation: OperationOut


class MachineAcceptedOut(BaseModel):
    machine: MachineOut
    operation: OperationOut


class ConsoleOut(BaseModel):
    text: str


# ---------------------------------------------------------------- disks and snapshots
class DiskIn(Input):
    name: DnsLabel
    size_mb: Integer = Field(ge=1, le=65536)


class DiskOut(Output):
    id: str
    machine_id: str
    name: str
    size_mb: int
    attached: bool
    created_at: UtcDateTime


class DiskAcceptedOut(BaseModel):
    disk: DiskOut
    operation: OperationOut


class SnapshotIn(Input):
    name: DnsLabel


class SnapshotOut(Output):
    id: str
    machine_id: str
    name: str
    created_at: UtcDateTime


class SnapshotAcceptedOut(BaseModel):
    snapshot: SnapshotOut
    operation: OperationOut


# ---------------------------------------------------------------- events and providers
class EventOut(Output):
    id: int
    machine_id: str | None
    kind: str
    state: str | None
    message: str
    created_at: UtcDateTime


class ProviderOut(Output):
    name: str
    capabilities: list[str]
    images: list[str]


class FaultIn(Input):
    action: str = Field(min_length=1, max_length=64, json_schema_extra=one_of(FAULT_ACTIONS))
    message: str = Field(default="injected fault", min_length=1, max_length=1000)
    times: Integer = Field(default=1, ge=1, le=1000)
