"""The pure parts of the `tiny` image build: module dependencies and load order, the cpio
writer, vmlinux extraction, cache keys, Debian metadata and the image registry."""

from __future__ import annotations

import gzip
import lzma
import struct
from pathlib import Path

import pytest

from hangar.images import cpio, debian, kernel, modules, tiny
from hangar.images.registry import Image, ImageError, ImageKind, Registry, default_data_dir


# ------------------------------------------------------------------ tiny ELF builders
def elf_with_sections(sections: dict[str, bytes]) -> bytes:
    """A minimal ELF64 LE relocatable with the given sections (plus null and .shstrtab)."""
    names = ["", *list(sections), ".shstrtab"]
    shstrtab = b"".join(name.encode() + b"\0" for name in names)
    offsets = [0]
    for name in names[1:]:
        offsets.append(offsets[-1] + len(names[names.index(name) - 1].encode()) + 1)
    bodies = [b"", *list(sections.values()), shstrtab]
    data = bytearray(64)
    placed = []
    for body in bodies:
        placed.append(len(data))
        data += body
    shoff = len(data)
    for index, body in enumerate(bodies):
        data += struct.pack(
            "<IIQQQQIIQQ", offsets[index], 1, 0, 0, placed[index], len(body), 0, 0, 1, 0
        )
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header += struct.pack(
        "<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(bodies), len(bodies) - 1
    )
    data[:64] = header
    return bytes(data)


def elf_with_note(owner: bytes, note_type: int) -> bytes:
    """A minimal ELF64 LE executable with one PT_NOTE program header holding one note."""
    name = owner + b"\0"
    note = struct.pack("<III", len(name), 4, note_type) + name.ljust((len(name) + 3) & ~3, b"\0")
    note += b"\0" * 4
    phoff, note_offset = 64, 64 + 56
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, phoff, 0, 0, 64, 56, 1, 64, 0, 0)
    program = struct.pack("<IIQQQQQQ", 4, 4, note_offset, 0, 0, len(note), len(note), 4)
    return header + program + note


def module(depends: str) -> bytes:
    return elf_with_sections(
        {".text": b"\x90" * 8, ".modinfo": f"license=GPL\0depends={depends}\0".encode()}
    )


# ------------------------------------------------------------------ modules
def test_modinfo_depends_reads_the_elf_section() -> None:
    assert modules.modinfo_depends(module("virtio,virtio_ring")) == ["virtio", "virtio_ring"]
    assert modules.modinfo_depends(module("")) == []
    assert modules.modinfo_depends(module("net-failover")) == ["net_failover"]


def test_modinfo_rejects_non_modules() -> None:
    with pytest.raises(modules.ModuleError, match="not a 64-bit"):
        modules.modinfo_depends(b"MZ\x90\x00")
    with pytest.raises(modules.ModuleError, match=r"no \.modinfo"):
        modules.modinfo_depends(elf_with_sections({".text": b"x"}))


def test_modules_dep_parsing_and_names() -> None:
    text = (
        "kernel/drivers/virtio/virtio.ko.xz:\n"
        "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz "
        "kernel/drivers/virtio/virtio.ko.xz\n\n"
    )
    assert modules.parse_modules_dep(text) == {
        "virtio": [],
        "virtio_net": ["net_failover", "virtio"],
    }
    with pytest.raises(modules.ModuleError, match="no ':'"):
        modules.parse_modules_dep("garbage line")
    with pytest.raises(modules.ModuleError, match="not a kernel module"):
        modules.module_name("README")


def test_load_order_puts_dependencies_first_once() -> None:
    deps = {
        "virtio_net": ["net_failover", "virtio", "virtio_ring"],
        "net_failover": ["failover"],
        "failover": [],
        "virtio": [],
        "virtio_ring": [],
        "virtio_blk": ["virtio", "virtio_ring"],
    }
    order = modules.load_order(["virtio_net", "virtio_blk"], deps)
    assert order == [
        "failover",
        "net_failover",
        "virtio",
        "virtio_ring",
        "virtio_net",
        "virtio_blk",
    ]


def test_load_order_reports_cycles_and_unknown_modules() -> None:
    with pytest.raises(modules.ModuleError, match="cycle: a -> b -> a"):
        modules.load_order(["a"], {"a": ["b"], "b": ["a"]})
    with pytest.raises(modules.ModuleError, match=r"unknown module 'c'.*a -> b"):
        modules.load_order(["a"], {"a": ["b"], "b": ["c"]})


def test_resolve_reads_modinfo_when_there_is_no_modules_dep(tmp_path: Path) -> None:
    root = tmp_path / "lib/modules/6.1.0-test"
    (root / "kernel/virtio").mkdir(parents=True)
    (root / "kernel/virtio/virtio.ko.xz").write_bytes(lzma.compress(module("")))
    (root / "kernel/virtio/virtio_blk.ko.gz").write_bytes(gzip.compress(module("virtio")))
    (root / "kernel/virtio/unused.ko").write_bytes(module(""))
    resolved = modules.resolve(root, iter(["virtio_blk"]))
    assert [name for name, _ in resolved] == ["virtio.ko", "virtio_blk.ko"]
    assert all(data.startswith(b"\x7fELF") for _, data in resolved)  # decompressed


def test_resolve_prefers_modules_dep(tmp_path: Path) -> None:
    root = tmp_path / "mods"
    root.mkdir()
    (root / "a.ko").write_bytes(module(""))
    (root / "b.ko").write_bytes(module(""))  # modinfo says no deps; modules.dep says a
    (root / "modules.dep").write_text("a.ko:\nb.ko: a.ko\n")
    assert [name for name, _ in modules.resolve(root, ["b"])] == ["a.ko", "b.ko"]
    with pytest.raises(modules.ModuleError, match="not found"):
        modules.resolve(tmp_path, ["missing"])


# ------------------------------------------------------------------ cpio
def read_cpio(data: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = []
    position = 0
    while True:
        header = data[position : position + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        name_size, file_size = fields[11], fields[6]
        name_start = position + 110
        name = data[name_start : name_start + name_size - 1].decode()
        body_start = name_start + name_size + (-(110 + name_size) % 4)
        body = data[body_start : body_start + file_size]
        position = body_start + file_size + (-file_size % 4)
        if name == "TRAILER!!!":
            return entries
        entries.append((name, fields[1], body, (fields[9], fields[10])))


def test_cpio_round_trip(tmp_path: Path) -> None:
    members = [
        cpio.directory("bin"),
        cpio.file("bin/busybox", b"\x7fELF-ish", executable=True),
        cpio.symlink("init", "bin/busybox"),
        cpio.char_device("dev/console", 5, 1),
        cpio.file("etc/odd", b"abc"),
    ]
    out = tmp_path / "initrd.cpio"
    with out.open("wb") as handle:
        cpio.write(handle, members)
    entries = read_cpio(out.read_bytes())
    assert [e[0] for e in entries] == ["bin", "bin/busybox", "init", "dev/console", "etc/odd"]
    assert entries[1][1] == 0o100755
    assert entries[1][2] == b"\x7fELF-ish"
    assert entries[2][2] == b"bin/busybox"
    assert entries[3][3] == (5, 1)
    assert len(out.read_bytes()) % 4 == 0


def test_cpio_refuses_absolute_paths(tmp_path: Path) -> None:
    with (tmp_path / "x").open("wb") as handle, pytest.raises(ValueError, match="relative"):
        cpio.write(handle, [cpio.file("/etc/passwd", b"")])


# ------------------------------------------------------------------ kernel
def test_extract_vmlinux_finds_the_xz_payload() -> None:
    elf = elf_with_note(b"Xen", 18)
    bzimage = (
        b"MZ"
        + b"\0" * 500
        + b"\xfd7zXZ\x00bogus"
        + lzma.compress(elf, format=lzma.FORMAT_XZ)
        + b"tail"
    )
    assert kernel.extract_vmlinux(bzimage) == elf
    assert kernel.has_pvh_entry(elf)


def test_extract_vmlinux_explains_failure() -> None:
    with pytest.raises(kernel.KernelError, match="no xz or zstd payload"):
        kernel.extract_vmlinux(b"MZ" + b"\0" * 100)
    not_elf = b"MZ" + lzma.compress(b"plain data", format=lzma.FORMAT_XZ)
    with pytest.raises(kernel.KernelError, match="not an ELF"):
        kernel.extract_vmlinux(not_elf)


def test_pvh_note_detection() -> None:
    assert not kernel.has_pvh_entry(elf_with_note(b"Xen", 5))
    assert not kernel.has_pvh_entry(elf_with_note(b"GNU", 18))
    assert not kernel.has_pvh_entry(b"not an elf")


# ------------------------------------------------------------------ cache key
def inputs(**changes: object) -> tiny.Inputs:
    values: dict[str, object] = {
        "kernel": debian.Package("linux-image-6.1.0-1-amd64", "6.1.1-1", "aa"),
        "busybox": debian.Package("busybox-static", "1:1.35.0-4", "bb"),
        "guest_files": {"boot": b"#!/bin/sh\n"},
    }
    values.update(changes)
    return tiny.Inputs(**values)  # type: ignore[arg-type]


def test_cache_key_changes_with_every_input_and_only_then() -> None:
    base = tiny.cache_key(inputs())
    assert tiny.cache_key(inputs()) == base
    assert (
        tiny.cache_key(inputs(kernel=debian.Package("linux-image-6.1.0-1-amd64", "6.1.1-2", "aa")))
        != base
    )
    assert (
        tiny.cache_key(inputs(busybox=debian.Package("busybox-static", "1:1.35.0-4", "cc"))) != base
    )
    assert tiny.cache_key(inputs(guest_files={"boot": b"#!/bin/sh\necho\n"})) != base
    assert len(base) == 16


def test_guest_files_ship_with_the_package_and_the_initrd_layout() -> None:
    files = tiny.guest_files()
    assert set(files) == set(tiny.GUEST_FILES)
    assert b"HANGAR-READY" in files["control"]
    entries = tiny.initrd_entries(b"busybox", [("virtio.ko", b"elf")], files)
    paths = {entry.path for entry in entries}
    assert {"init", "bin/busybox", "dev/console", "etc/inittab", "lib/modules/virtio.ko"} <= paths
    modules_list = next(e for e in entries if e.path == "etc/hangar/modules")
    assert modules_list.data == b"virtio.ko\n"


# ------------------------------------------------------------------ debian metadata
CONTROL = """Package: linux-image-amd64
Version: 6.1.192-2
Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)
Description: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel.
SHA256: 0123

Package: other
"""


def test_parse_control_reads_the_first_paragraph() -> None:
    fields = debian.parse_control(CONTROL)
    assert fields["Version"] == "6.1.192-2"
    assert fields["Description"].endswith("latest Linux kernel.")
    assert "Package" in fields
    assert fields["Package"] == "linux-image-amd64"


def test_kernel_package_follows_the_meta_package(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = {
        "linux-image-amd64": CONTROL,
        "linux-image-6.1.0-56-amd64": (
            "Package: linux-image-6.1.0-56-amd64\nVersion: 6.1.192-2\nSHA256: feed\n"
        ),
    }
    monkeypatch.setattr(debian, "_run", lambda argv, cwd=None: shown[argv[-1]])
    assert debian.kernel_package() == debian.Package(
        "linux-image-6.1.0-56-amd64", "6.1.192-2", "feed"
    )


def test_missing_apt_metadata_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debian, "_run", lambda argv, cwd=None: "Package: x\n")
    with pytest.raises(debian.PackageError, match="no downloadable version"):
        debian.candidate("x")
    monkeypatch.setattr(
        debian, "_run", lambda argv, cwd=None: "Package: x\nVersion: 1\nSHA256: a\nDepends: libc6\n"
    )
    with pytest.raises(debian.PackageError, match="does not depend on a linux-image"):
        debian.kernel_package("x")


def test_run_explains_missing_tools_and_failures() -> None:
    with pytest.raises(debian.PackageError, match="needs apt and dpkg"):
        debian._run(["no-such-tool-hangar"])
    with pytest.raises(debian.PackageError, match="failed"):
        debian._run(["false"])


# ------------------------------------------------------------------ registry
def test_registry_round_trip_and_listing(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    assert registry.names() == []
    image = tiny.image_for(tmp_path / "cache" / "k1")
    registry.save(image)
    assert registry.get("tiny") == image
    assert registry.names() == ["tiny"]
    assert registry.all() == [image]
    assert image.missing_files() == [image.kernel, image.initrd]
    registry.remove("tiny")
    with pytest.raises(ImageError, match="hangar image build"):
        registry.get("tiny")


def test_registering_checks_files_and_fields(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    disk = tmp_path / "disk.qcow2"
    with pytest.raises(ImageError, match="missing files"):
        registry.register(Image(name="deb", kind=ImageKind.DISK, disk=disk))
    disk.write_bytes(b"QFI")
    registry.register(Image(name="deb", kind=ImageKind.DISK, disk=disk, ready_pattern="login:"))
    assert registry.get("deb").disk == disk
    bad = [
        (Image(name="Bad Name", kind=ImageKind.DISK, disk=disk), "image name"),
        (Image(name="k", kind=ImageKind.KERNEL), "needs --kernel"),
        (Image(name="d", kind=ImageKind.DISK), "needs --disk"),
        (Image(name="r", kind=ImageKind.DISK, disk=Path("rel.qcow2")), "absolute"),
        (Image(name="c", kind=ImageKind.KERNEL, kernel=disk, cmdline="a\nb"), "one line"),
        (Image(name="s", kind=ImageKind.DISK, disk=disk, disk_mb=0), "disk_mb"),
        (Image(name="p", kind=ImageKind.DISK, disk=disk, ready_pattern="("), "bad pattern"),
    ]
    for image, message in bad:
        with pytest.raises(ImageError, match=message):
            registry.register(image)


def test_corrupt_registry_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.json").write_text("{not json")
    with pytest.raises(ImageError, match="corrupt"):
        Registry(tmp_path).get("x")
    with pytest.raises(ImageError, match="image names"):
        Registry(tmp_path).get("../x")


def test_default_data_dir_follows_the_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HANGAR_DATA_DIR", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("HANGAR_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert default_data_dir() == tmp_path / ".hangar"
