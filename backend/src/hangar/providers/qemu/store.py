"""What the provider remembers about a machine: small JSON files in the machine's directory.

`machine.json` (the spec and its disks) lives as long as the machine; `runtime.json` (pid,
endpoint, accelerator) only while QEMU runs. Writes are atomic (write, then rename).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hangar.providers.base import MachineSpec, NotFoundError


@dataclass(slots=True)
class DiskRecord:
    size_mb: int
    attached: bool = False
    slot: int | None = None  # hot-plug port while attached


@dataclass(slots=True)
class MachineRecord:
    key: str
    name: str
    image: str
    cpus: int
    memory_mb: int
    labels: dict[str, str] = field(default_factory=dict)
    disks: dict[str, DiskRecord] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: MachineSpec) -> MachineRecord:
        return cls(spec.key, spec.name, spec.image, spec.cpus, spec.memory_mb, dict(spec.labels))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MachineRecord:
        disks = {key: DiskRecord(**value) for key, value in data.pop("disks", {}).items()}
        return cls(**data, disks=disks)


@dataclass(frozen=True, slots=True)
class RuntimeRecord:
    pid: int
    port: int | None
    accelerator: str
    kernel: str
    boot_seconds: float


def write_json(path: Path, data: dict[str, Any]) -> None:
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    scratch.replace(path)


def load_machine(path: Path, key: str) -> MachineRecord:
    try:
        return MachineRecord.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise NotFoundError(f"qemu provider has no machine {key!r}") from None


def save_machine(path: Path, record: MachineRecord) -> None:
    write_json(path, record.to_json())


def load_runtime(path: Path) -> RuntimeRecord | None:
    try:
        return RuntimeRecord(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def save_runtime(path: Path, record: RuntimeRecord) -> None:
    write_json(path, asdict(record))
