"""`hangar image list|register|build` and the QEMU part of `hangar doctor`: guest images, the host.

Registered into the main CLI by `hangar.cli` (this module does not import it).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Annotated

import typer

from hangar import cli_support
from hangar.images import tiny
from hangar.images.debian import PackageError
from hangar.images.registry import Image, ImageError, ImageKind, Registry, default_data_dir
from hangar.providers.base import ProviderError
from hangar.providers.qemu import accel
from hangar.providers.qemu.provider import QemuProvider

image_app = typer.Typer(help="Guest images of the qemu provider.", no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option(help="Data dir (default: HANGAR_DATA_DIR or ./.hangar).", show_default=False),
]


def _status(image: Image) -> str:
    missing = image.missing_files()
    return "ok" if not missing else "missing " + ", ".join(str(p) for p in missing)


@image_app.command("list")
def image_list(data_dir: DataDir = None) -> None:
    """Show every registered image and whether its files are there."""
    registry = Registry(data_dir or default_data_dir())
    try:
        images = registry.all()
    except ImageError as exc:
        raise cli_support.fail(str(exc)) from exc
    if not any(image.name == tiny.NAME for image in images):
        typer.echo(f"{tiny.NAME:<16} kernel  not built (run `hangar image build`)")
    for image in images:
        source = image.kernel if image.kind is ImageKind.KERNEL else image.disk
        typer.echo(f"{image.name:<16} {image.kind.value:<7} {_status(image)}  {source}")


@image_app.command("build")
def image_build(
    data_dir: DataDir = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when the cache is current.")] = False,
) -> None:
    """Build the `tiny` image from Debian packages (cached; rebuilt only when an input changes)."""
    try:
        result = tiny.build(data_dir or default_data_dir(), force=force, log=typer.echo)
    except (PackageError, ImageError, OSError) as exc:
        raise cli_support.fail(f"image build failed: {exc}") from exc
    verb = "built" if result.built else "up to date"
    typer.echo(f"{tiny.NAME} {verb} ({result.key}, {result.seconds:.1f}s): {result.image.kernel}")


@image_app.command("register")
def image_register(
    name: Annotated[str, typer.Argument(help="Image name (a-z 0-9 . _ -).")],
    kernel: Annotated[Path | None, typer.Option(help="Kernel (bzImage or PVH vmlinux).")] = None,
    initrd: Annotated[Path | None, typer.Option(help="Initrd for --kernel.")] = None,
    cmdline: Annotated[
        str, typer.Option(help="Kernel command line for --kernel.")
    ] = "console=ttyS0",
    disk: Annotated[Path | None, typer.Option(help="A qcow2 disk that boots by BIOS.")] = None,
    ready_pattern: Annotated[
        str | None, typer.Option(help="Regex on the serial console meaning 'ready'.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Register your own image: --kernel [--initrd] or --disk."""
    image = Image(
        name=name,
        kind=ImageKind.DISK if disk is not None else ImageKind.KERNEL,
        kernel=kernel.resolve() if kernel else None,
        initrd=initrd.resolve() if initrd else None,
        cmdline=cmdline if kernel else "",
        disk=disk.resolve() if disk else None,
        ready_pattern=ready_pattern,
    )
    try:
        Registry(data_dir or default_data_dir()).register(image)
    except ImageError as exc:
        raise cli_support.fail(str(exc)) from exc
    typer.echo(f"registered {image.kind.value} image {name!r}")


def check_qemu(root: Path, probe: bool = False) -> int:
    """The QEMU part of `hangar doctor`: tools, version, accelerator, images of data dir `root`.
    Prints one line per check and returns the number of problems found."""
    provider = QemuProvider(root)
    problems = 0
    for tool in ("qemu-system-x86_64", "qemu-img"):
        found = shutil.which(tool)
        problems += found is None
        typer.echo(f"{tool:<20} {found or 'MISSING (apt-get install qemu-system-x86 qemu-utils)'}")
    registry = Registry(root)
    try:
        images = registry.all()
    except ImageError as exc:
        typer.echo(f"{'images':<20} PROBLEM: {exc}")
        return problems + 1
    for image in images:
        typer.echo(f"image {image.name:<14} {_status(image)}")
    if tiny.NAME not in registry.names():
        typer.echo(f"image {tiny.NAME:<14} not built (run `hangar image build`)")
    if problems:
        return problems  # no version nor accelerator without QEMU
    typer.echo(f"{'qemu version':<20} {asyncio.run(provider.qemu_version())}")
    verdict = None if probe else accel.cached(root)
    if verdict is None and tiny.NAME in registry.names():
        if probe:
            (root / "qemu" / "accelerator.json").unlink(missing_ok=True)
        try:
            verdict = asyncio.run(provider.accelerator(registry.get(tiny.NAME)))
        except ProviderError as exc:
            typer.echo(f"{'accelerator':<20} PROBLEM: {exc}")
            return problems + 1
    shown = f"{verdict.name} ({verdict.reason})" if verdict else "unknown (build the image first)"
    typer.echo(f"{'accelerator':<20} {shown}")
    return problems
