"""The built-in `tiny` image: Debian's kernel and busybox-static, a few shell scripts, nothing else.

Built from Debian packages only, cached under the data dir by a content hash of every input
(package versions and checksums as apt reports them, the guest scripts, the builder version), so
a build is skipped unless one of them changed, and a cache hit costs one `apt-cache` call.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hangar.images import cpio, debian, kernel, modules
from hangar.images.registry import Image, ImageError, ImageKind, Registry

NAME = "tiny"
# Bump when the build changes in a way the inputs below do not show.
BUILDER_VERSION = 1
MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "virtio_console")
GUEST_FILES = ("inittab", "boot", "control", "udhcpc")
READY_PATTERN = r"HANGAR-READY"
CMDLINE = "console=ttyS0 quiet panic=-1"


@dataclass(frozen=True, slots=True)
class Inputs:
    kernel: debian.Package
    busybox: debian.Package
    guest_files: Mapping[str, bytes]


@dataclass(frozen=True, slots=True)
class BuildResult:
    image: Image
    key: str
    built: bool  # False: the cache already had this key
    seconds: float


def guest_files() -> dict[str, bytes]:
    folder = resources.files("hangar.images") / "guest"
    return {name: (folder / name).read_bytes() for name in GUEST_FILES}


def cache_key(inputs: Inputs) -> str:
    """Hash of everything the image is made of; equal keys mean byte-identical images."""
    material = {
        "builder": BUILDER_VERSION,
        "modules": list(MODULES),
        "cmdline": CMDLINE,
        "kernel": [inputs.kernel.name, inputs.kernel.version, inputs.kernel.sha256],
        "busybox": [inputs.busybox.name, inputs.busybox.version, inputs.busybox.sha256],
        "guest": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(inputs.guest_files.items())},
    }
    encoded = json.dumps(material, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def current_inputs() -> Inputs:
    return Inputs(debian.kernel_package(), debian.candidate("busybox-static"), guest_files())


def image_for(directory: Path) -> Image:
    return Image(
        name=NAME,
        kind=ImageKind.KERNEL,
        kernel=directory / "vmlinux",
        fallback_kernel=directory / "bzImage",
        initrd=directory / "initrd.cpio",
        cmdline=CMDLINE,
        ready_pattern=READY_PATTERN,
        control_console=True,
        labels={"cache_key": directory.name},
    )


def initrd_entries(
    busybox: bytes, kos: list[tuple[str, bytes]], files: Mapping[str, bytes]
) -> list[cpio.Entry]:
    dirs = ["bin", "dev", "etc", "etc/hangar", "lib", "lib/modules", "proc", "run", "sys", "tmp"]
    entries = [cpio.directory(d) for d in dirs]
    entries += [
        # The kernel opens /dev/console for init before anything mounts devtmpfs.
        cpio.char_device("dev/console", 5, 1),
        cpio.file("bin/busybox", busybox, executable=True),
        cpio.symlink("bin/sh", "busybox"),
        cpio.symlink("init", "bin/busybox"),  # busybox runs as `init` by its name
        cpio.file("etc/inittab", files["inittab"]),
        cpio.file("etc/hangar/boot", files["boot"], executable=True),
        cpio.file("etc/hangar/control", files["control"], executable=True),
        cpio.file("etc/hangar/udhcpc", files["udhcpc"], executable=True),
        cpio.file("etc/hangar/modules", "".join(f"{name}\n" for name, _ in kos).encode()),
    ]
    entries += [cpio.file(f"lib/modules/{name}", data) for name, data in kos]
    return entries


@contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a second build waits, then finds the cache warm
        yield


def build(
    data_dir: Path, *, force: bool = False, log: Callable[[str], None] = lambda _: None
) -> BuildResult:
    """Build `tiny` unless the cache has it; register it in the data dir's registry either way.

    When apt cannot name or fetch a package, its lists are refreshed once (if that needs no
    password) and the build is tried again.
    """
    try:
        return _build(data_dir, force=force, log=log)
    except debian.PackageError:
        if not debian.refresh_lists(log):
            raise
        return _build(data_dir, force=force, log=log)


def _build(data_dir: Path, *, force: bool, log: Callable[[str], None]) -> BuildResult:
    started = time.monotonic()
    registry = Registry(data_dir)
    cache = data_dir / "images" / "cache" / NAME
    inputs = current_inputs()
    key = cache_key(inputs)
    target = cache / key
    with _build_lock(cache):
        image = image_for(target)
        if target.is_dir() and not image.missing_files() and not force:
            registry.save(image)
            return BuildResult(image, key, False, time.monotonic() - started)
        log(
            f"building image {NAME} ({key}): {inputs.kernel.name} {inputs.kernel.version}, "
            f"busybox-static {inputs.busybox.version}"
        )
        with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as scratch:
            work = Path(scratch)
            _assemble(inputs, work, work / "out")
            shutil.rmtree(target, ignore_errors=True)
            (work / "out").rename(target)
        for old in cache.iterdir():
            if old.is_dir() and old.name != key and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
        registry.save(image)
        return BuildResult(image, key, True, time.monotonic() - started)


def _assemble(inputs: Inputs, work: Path, out: Path) -> None:
    kernel_root = debian.fetch(inputs.kernel, work / "debs")
    busybox_root = debian.fetch(inputs.busybox, work / "debs")
    vmlinuz = sorted((kernel_root / "boot").glob("vmlinuz-*"))
    module_dirs = sorted((kernel_root / "lib" / "modules").glob("*"))
    if not vmlinuz or not module_dirs:
        raise ImageError(f"{inputs.kernel.name} has no boot/vmlinuz-* or lib/modules/<release>")
    out.mkdir()
    bzimage = vmlinuz[-1].read_bytes()
    (out / "bzImage").write_bytes(bzimage)
    vmlinux = kernel.extract_vmlinux(bzimage)
    if not kernel.has_pvh_entry(vmlinux):
        raise ImageError(
            "the extracted vmlinux has no PVH entry note; QEMU cannot boot it directly"
        )
    (out / "vmlinux").write_bytes(vmlinux)
    kos = modules.resolve(module_dirs[-1], MODULES)
    busybox = (busybox_root / "bin" / "busybox").read_bytes()
    with (out / "initrd.cpio").open("wb") as handle:
        # Uncompressed on purpose: under TCG unpacking gzip costs more than reading the bytes.
        cpio.write(handle, initrd_entries(busybox, kos, guest_files()))
    manifest = {
        "kernel": [inputs.kernel.name, inputs.kernel.version],
        "busybox": [inputs.busybox.name, inputs.busybox.version],
        "modules": [name for name, _ in kos],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
