"""Kernel modules for the guest: which files to copy and in which order to load them.

`modules.dep` is written by `depmod` when a kernel package is *installed*; a package that is only
downloaded and extracted (as the image build does) has none. So dependencies come from
`modules.dep` when it exists and otherwise from each module's own `.modinfo` ELF section
(`depends=a,b`), which is exactly what depmod reads.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

COMPRESSED_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz")


class ModuleError(Exception):
    """A module is missing, unreadable or its dependencies cannot be resolved."""


def module_name(path: str | Path) -> str:
    """`kernel/drivers/net/virtio_net.ko.xz` -> `virtio_net` (the name `depends=` uses)."""
    name = Path(path).name
    for suffix in (*COMPRESSED_SUFFIXES, ".ko"):
        if name.endswith(suffix):
            return name[: -len(suffix)].replace("-", "_")
    raise ModuleError(f"not a kernel module file name: {path}")


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """Parse depmod's `modules.dep`: `path: dep-path dep-path` -> {name: [dependency names]}."""
    deps: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        target, sep, rest = line.partition(":")
        if not sep:
            raise ModuleError(f"modules.dep line {number} has no ':': {line!r}")
        deps[module_name(target.strip())] = [module_name(dep) for dep in rest.split()]
    return deps


def modinfo_depends(elf: bytes) -> list[str]:
    """The `depends=` list of a (decompressed) 64-bit little-endian module's `.modinfo` section."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ModuleError("not a 64-bit little-endian ELF object")
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", elf, base)
        return name, offset, size

    _, strtab_offset, _ = section(shstrndx)
    for index in range(shnum):
        name_offset, offset, size = section(index)
        start = strtab_offset + name_offset
        name = elf[start : elf.index(b"\0", start)]
        if name != b".modinfo":
            continue
        for field in elf[offset : offset + size].split(b"\0"):
            if field.startswith(b"depends="):
                value = field[len(b"depends=") :].decode()
                return [dep.replace("-", "_") for dep in value.split(",") if dep]
        return []
    raise ModuleError("module has no .modinfo section")


def decompress(path: Path) -> bytes:
    """The module's ELF bytes, whatever compression the kernel package used."""
    data = path.read_bytes()
    name = path.name
    if name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if name.endswith(".ko.zst"):
        return _zstd_decompress(data, path)
    return data


def _zstd_decompress(data: bytes, path: Path) -> bytes:
    zstd = shutil.which("zstd")
    if zstd is None:
        raise ModuleError(f"{path} is zstd-compressed; install the `zstd` package to unpack it")
    return subprocess.run([zstd, "-dc"], input=data, capture_output=True, check=True).stdout


def index_modules(modules_root: Path) -> dict[str, Path]:
    """{module name: file} for every module under `lib/modules/<release>`."""
    found: dict[str, Path] = {}
    for path in modules_root.rglob("*.ko*"):
        if path.name.endswith((".ko", *COMPRESSED_SUFFIXES)):
            found[module_name(path)] = path
    return found


def load_order(wanted: Iterable[str], deps: Mapping[str, list[str]]) -> list[str]:
    """Every module needed for `wanted`, dependencies first (stable, depth-first, no duplicates)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in visiting:
            raise ModuleError(f"dependency cycle: {' -> '.join((*chain, name))}")
        if name not in deps:
            raise ModuleError(
                f"unknown module {name!r} (required by {' -> '.join(chain) or 'the image'})"
            )
        visiting.add(name)
        for dep in deps[name]:
            visit(dep, (*chain, name))
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order


def resolve(modules_root: Path, wanted: Iterable[str]) -> list[tuple[str, bytes]]:
    """(file name, ELF bytes) of `wanted` and their dependencies, in load order."""
    wanted = list(wanted)
    files = index_modules(modules_root)
    dep_file = modules_root / "modules.dep"
    elves: dict[str, bytes] = {}
    if dep_file.exists():
        deps = parse_modules_dep(dep_file.read_text())
    else:
        deps = {}
        pending = list(wanted)
        while pending:
            name = pending.pop()
            if name in deps:
                continue
            if name not in files:
                raise ModuleError(f"module {name!r} not found under {modules_root}")
            elves[name] = decompress(files[name])
            deps[name] = modinfo_depends(elves[name])
            pending.extend(deps[name])
    result: list[tuple[str, bytes]] = []
    for name in load_order(wanted, deps):
        if name not in files:
            raise ModuleError(f"module {name!r} not found under {modules_root}")
        data = elves.get(name) or decompress(files[name])
        result.append((f"{name}.ko", data))
    return result
