"""`qemu-img`: create qcow2 files and manage their internal snapshots (only while the VM is off:
qemu-img must not write an image that a running QEMU has open)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hangar.providers.base import ProviderError
from hangar.providers.qemu import process

TIMEOUT = 60.0


class QemuImgError(ProviderError):
    """qemu-img failed; the message carries its own words."""


async def run(qemu_img: str, *args: str, within: float = TIMEOUT) -> str:
    try:
        done = await process.run([qemu_img, *args], within)
    except TimeoutError:
        raise QemuImgError(f"qemu-img {args[0]} took longer than {within:.0f}s") from None
    out = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or out.strip()
        raise QemuImgError(f"qemu-img {args[0]} failed: {message}")
    return out


async def create(
    qemu_img: str, path: Path, size_mb: int | None, backing: Path | None = None
) -> None:
    args = ["create", "-q", "-f", "qcow2"]
    if backing is not None:
        args += ["-F", "qcow2", "-b", str(backing)]
    args.append(str(path))
    if size_mb is not None:
        args.append(f"{size_mb}M")
    await run(qemu_img, *args)


async def info(qemu_img: str, path: Path) -> dict[str, Any]:
    # -U: read even while a running QEMU holds the image lock (info only reads).
    result: dict[str, Any] = json.loads(
        await run(qemu_img, "info", "-U", "--output=json", str(path))
    )
    return result


async def snapshots(qemu_img: str, path: Path) -> list[str]:
    data = await info(qemu_img, path)
    return [str(snap["name"]) for snap in data.get("snapshots", [])]


async def snapshot(qemu_img: str, action: str, name: str, path: Path) -> None:
    """`action` is -c (create), -a (apply) or -d (delete)."""
    if action not in {"-c", "-a", "-d"}:
        raise ValueError(f"unknown snapshot action {action}")
    await run(qemu_img, "snapshot", action, name, str(path))


async def copy(qemu_img: str, source: Path, target: Path, backing: Path | None) -> None:
    """A new qcow2 with `source`'s current content and no snapshots, sharing `backing`."""
    args = ["convert", "-q", "-O", "qcow2"]
    if backing is not None:
        # Only clusters that differ from the shared base image are written.
        args += ["-B", str(backing), "-F", "qcow2"]
    await run(qemu_img, *args, str(source), str(target))
