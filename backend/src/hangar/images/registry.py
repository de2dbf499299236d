"""The image registry: one small JSON file per image under `<data dir>/images/`.

An image is either a kernel + initrd (booted with `-kernel`, like the built-in `tiny`) or a qcow2
disk that boots by BIOS. Machines reference images by name; the files stay where they were
registered (built images live in the cache under the data dir).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

IMAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
DEFAULT_FAILURE_PATTERN = r"Kernel panic|HANGAR-FAILED"


class ImageError(Exception):
    """An image is unknown, malformed or its files are missing; the message says what to do."""


class ImageKind(StrEnum):
    KERNEL = "kernel"  # -kernel/-initrd, plus a blank per-machine system disk
    DISK = "disk"  # a qcow2 that boots by BIOS; each machine gets an overlay on it


def default_data_dir() -> Path:
    """`HANGAR_DATA_DIR`, else `./.hangar`: the same default as the service's settings."""
    return Path(os.environ.get("HANGAR_DATA_DIR") or ".hangar").expanduser().resolve()


@dataclass(frozen=True, slots=True)
class Image:
    """What the qemu provider needs to boot machines of one image."""

    name: str
    kind: ImageKind
    kernel: Path | None = None  # vmlinux (PVH) or bzImage
    fallback_kernel: Path | None = None  # the bzImage, used when the vmlinux cannot boot
    initrd: Path | None = None
    cmdline: str = ""
    disk: Path | None = None
    disk_mb: int = 64  # size of the blank system disk that kernel images get
    # A regex on the serial console that means "ready"; None: ready once QEMU runs.
    ready_pattern: str | None = None
    failure_pattern: str = DEFAULT_FAILURE_PATTERN
    control_console: bool = False  # the guest runs hangar's control shell (exec, poweroff)
    labels: dict[str, str] = field(default_factory=dict)

    def missing_files(self) -> list[Path]:
        paths = (self.kernel, self.initrd, self.disk)
        return [path for path in paths if path is not None and not path.is_file()]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Image:
        def path(field_name: str) -> Path | None:
            value = data.get(field_name)
            return None if value is None else Path(value)

        return cls(
            name=str(data["name"]),
            kind=ImageKind(data["kind"]),
            kernel=path("kernel"),
            fallback_kernel=path("fallback_kernel"),
            initrd=path("initrd"),
            cmdline=str(data.get("cmdline", "")),
            disk=path("disk"),
            disk_mb=int(data.get("disk_mb", 64)),
            ready_pattern=data.get("ready_pattern"),
            failure_pattern=str(data.get("failure_pattern", DEFAULT_FAILURE_PATTERN)),
            control_console=bool(data.get("control_console", False)),
            labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
        )

    def validate(self) -> None:
        """Raise ImageError naming the first thing that is wrong."""
        if not IMAGE_NAME.match(self.name):
            raise ImageError(
                f"image name {self.name!r} is invalid: use 1-63 of a-z 0-9 . _ -, "
                "starting with a letter or digit"
            )
        if self.kind is ImageKind.KERNEL and (self.kernel is None or self.disk is not None):
            raise ImageError(f"image {self.name!r}: a kernel image needs --kernel and no --disk")
        if self.kind is ImageKind.DISK and (self.disk is None or self.kernel is not None):
            raise ImageError(f"image {self.name!r}: a disk image needs --disk and no --kernel")
        for path in (self.kernel, self.fallback_kernel, self.initrd, self.disk):
            if path is not None and not path.is_absolute():
                raise ImageError(f"image {self.name!r}: {path} must be an absolute path")
        if any(ch in self.cmdline for ch in "\n\r\0"):
            raise ImageError(f"image {self.name!r}: the kernel command line must be one line")
        if not 1 <= self.disk_mb <= 65536:
            raise ImageError(f"image {self.name!r}: disk_mb must be 1-65536, got {self.disk_mb}")
        for pattern in (self.ready_pattern, self.failure_pattern):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ImageError(
                        f"image {self.name!r}: bad pattern {pattern!r}: {exc}"
                    ) from exc


class Registry:
    """Images registered under one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "images"

    def _file(self, name: str) -> Path:
        if not IMAGE_NAME.match(name):
            raise ImageError(f"no image {name!r}: image names are 1-63 of a-z 0-9 . _ -")
        return self.root / f"{name}.json"

    def get(self, name: str) -> Image:
        path = self._file(name)
        try:
            return Image.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            hint = " (run `hangar image build`)" if name == "tiny" else ""
            raise ImageError(f"no image {name!r} registered in {self.root}{hint}") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise ImageError(f"image file {path} is corrupt ({exc}); register it again") from exc

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(path.stem for path in self.root.glob("*.json"))

    def all(self) -> list[Image]:
        return [self.get(name) for name in self.names()]

    def save(self, image: Image) -> None:
        image.validate()
        self.root.mkdir(parents=True, exist_ok=True)
        target = self._file(image.name)
        scratch = target.with_suffix(".json.tmp")
        scratch.write_text(json.dumps(image.to_json(), indent=2, sort_keys=True) + "\n")
        scratch.replace(target)  # atomic: a reader never sees half a file

    def register(self, image: Image) -> None:
        """Add a user's image after checking that its files exist."""
        image.validate()
        missing = image.missing_files()
        if missing:
            raise ImageError(f"image {image.name!r}: missing files {[str(p) for p in missing]}")
        self.save(image)

    def remove(self, name: str) -> None:
        self._file(name).unlink(missing_ok=True)
