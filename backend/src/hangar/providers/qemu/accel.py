"""Choose the accelerator: KVM only when a guest has been *seen* booting with it, else TCG.

`/dev/kvm` existing proves little: on some hosts (nested virtualisation, odd CPU models) KVM
guests hang or abort. So the probe boots the image's kernel with KVM in probe mode
(`hangar.probe=1`: print a line and power off) under a deadline. The verdict is cached in the
data dir, keyed by QEMU version, host kernel and image, so the probe runs once per change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hangar.images.registry import Image, ImageKind
from hangar.providers.qemu import process

PROBE_TIMEOUT = 20.0
PROBE_LINE = "HANGAR-PROBE-OK"


@dataclass(frozen=True, slots=True)
class Accelerator:
    name: str  # "kvm" or "tcg"
    reason: str
    probe_seconds: float = 0.0


def cache_key(qemu_version: str, image: Image) -> str:
    material = [qemu_version, platform.release(), str(image.kernel), str(image.initrd), image.name]
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:16]


def kvm_usable() -> str | None:
    """Why KVM cannot even be tried, or None when /dev/kvm is there and openable."""
    if not Path("/dev/kvm").exists():
        return "/dev/kvm does not exist"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable by this user"
    return None


async def probe_kvm(qemu: str, image: Image, within: float = PROBE_TIMEOUT) -> Accelerator:
    """Boot `image` with KVM in probe mode; KVM only if the probe line appears in time."""
    if image.kind is not ImageKind.KERNEL or image.kernel is None or image.initrd is None:
        return Accelerator("tcg", f"image {image.name} cannot run the probe (not a kernel image)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hangar-kvm-probe-") as scratch:
        log = Path(scratch) / "serial.log"
        argv = [
            qemu, "-name", "hangar-kvm-probe", "-nodefaults", "-no-user-config", "-nographic",
            "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "128", "-no-reboot",
            "-chardev", f"file,id=serial0,path={log}", "-serial", "chardev:serial0",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd),
            "-append", f"{image.cmdline} hangar.probe=1",
        ]  # fmt: skip
        try:
            done = await process.run(argv, within)
        except TimeoutError:
            return Accelerator("tcg", f"a KVM guest did not boot within {within:.0f}s", within)
        seconds = time.monotonic() - started
        console = log.read_text(errors="replace") if log.exists() else ""
        if PROBE_LINE in console:
            return Accelerator("kvm", f"a KVM guest booted in {seconds:.1f}s", seconds)
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return Accelerator(
            "tcg", f"a KVM guest failed (exit {done.returncode}: {detail[0]})", seconds
        )


async def choose(data_dir: Path, qemu: str, qemu_version: str, image: Image) -> Accelerator:
    """The cached verdict for this QEMU/kernel/image, probing first when there is none."""
    forced = os.environ.get("HANGAR_QEMU_ACCEL")
    if forced in {"kvm", "tcg"}:
        return Accelerator(forced, "set by HANGAR_QEMU_ACCEL")
    cache = data_dir / "qemu" / "accelerator.json"
    key = cache_key(qemu_version, image)
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        stored = json.loads(cache.read_text())
        if stored["key"] == key:
            return Accelerator(**stored["accelerator"])
    why_not = kvm_usable()
    verdict = Accelerator("tcg", why_not) if why_not else await probe_kvm(qemu, image)
    cache.parent.mkdir(parents=True, exist_ok=True)
    scratch = cache.with_suffix(".tmp")
    scratch.write_text(json.dumps({"key": key, "accelerator": asdict(verdict)}, indent=2) + "\n")
    scratch.replace(cache)
    return verdict


def cached(data_dir: Path) -> Accelerator | None:
    """The last verdict, whatever it was keyed on (for `hangar doctor`)."""
    try:
        stored = json.loads((data_dir / "qemu" / "accelerator.json").read_text())
        return Accelerator(**stored["accelerator"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
