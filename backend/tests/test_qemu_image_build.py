"""`tiny.build` and the `hangar image` / `hangar doctor` commands, with apt replaced by a fake
that serves hand-made package trees (no network, nothing installed)."""

from __future__ import annotations

import lzma
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hangar import cli_qemu
from hangar.images import debian, tiny
from hangar.images.registry import ImageError, Registry
from hangar.providers.qemu.provider import QemuProvider

from .test_qemu_image import elf_with_note, module

KERNEL = debian.Package("linux-image-6.1.0-9-amd64", "6.1.9-1", "k1")
BUSYBOX = debian.Package("busybox-static", "1:1.35.0-4", "b1")


class FakeApt:
    """A fake of apt for the build: `fetch` unpacks a hand-made tree; versions are settable."""

    def __init__(self) -> None:
        self.kernel = KERNEL
        self.fetched: list[str] = []

    def candidate(self, name: str) -> debian.Package:
        return BUSYBOX

    def kernel_package(self, meta: str = "linux-image-amd64") -> debian.Package:
        return self.kernel

    def fetch(self, package: debian.Package, into: Path) -> Path:
        self.fetched.append(package.name)
        root = into / package.name
        if package.name.startswith("linux-image"):
            (root / "boot").mkdir(parents=True)
            payload = lzma.compress(elf_with_note(b"Xen", 18), format=lzma.FORMAT_XZ)
            (root / "boot" / "vmlinuz-6.1.0-9-amd64").write_bytes(b"MZ" + b"\0" * 64 + payload)
            mods = root / "lib/modules/6.1.0-9-amd64/kernel"
            mods.mkdir(parents=True)
            deps = {"virtio": "", "virtio_ring": "", "failover": "", "net_failover": "failover"}
            deps |= {
                "virtio_pci": "virtio,virtio_ring",
                "virtio_net": "net_failover,virtio,virtio_ring",
                "virtio_blk": "virtio,virtio_ring",
                "virtio_console": "virtio,virtio_ring",
            }
            for name, depends in deps.items():
                (mods / f"{name}.ko.xz").write_bytes(lzma.compress(module(depends)))
        else:
            (root / "bin").mkdir(parents=True)
            (root / "bin" / "busybox").write_bytes(b"\x7fELF busybox")
        return root


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch) -> FakeApt:
    fake = FakeApt()
    monkeypatch.setattr(debian, "candidate", fake.candidate)
    monkeypatch.setattr(debian, "kernel_package", fake.kernel_package)
    monkeypatch.setattr(debian, "fetch", fake.fetch)
    return fake


def test_build_caches_by_inputs(apt: FakeApt, tmp_path: Path) -> None:
    first = tiny.build(tmp_path)
    assert first.built
    assert first.image.missing_files() == []
    assert Registry(tmp_path).get("tiny") == first.image
    assert (first.image.initrd or Path()).read_bytes().startswith(b"070701")

    again = tiny.build(tmp_path)
    assert not again.built
    assert again.key == first.key
    assert apt.fetched == ["linux-image-6.1.0-9-amd64", "busybox-static"]

    apt.kernel = debian.Package(KERNEL.name, "6.1.9-2", "k2")  # a kernel update: rebuild
    updated = tiny.build(tmp_path)
    assert updated.built
    assert updated.key != first.key
    assert not (tmp_path / "images/cache/tiny" / first.key).exists()  # the old build is gone
    assert tiny.build(tmp_path, force=True).built


def test_build_refuses_a_kernel_package_without_a_kernel(
    apt: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def empty(package: debian.Package, into: Path) -> Path:
        (into / package.name).mkdir(parents=True, exist_ok=True)
        return into / package.name

    monkeypatch.setattr(debian, "fetch", empty)
    with pytest.raises(ImageError, match="no boot/vmlinuz"):
        tiny.build(tmp_path)


def test_cli_image_build_list_register(apt: FakeApt, tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    listed = runner.invoke(cli_qemu.image_app, ["list", *data])
    assert listed.exit_code == 0
    assert "not built" in listed.output

    built = runner.invoke(cli_qemu.image_app, ["build", *data])
    assert built.exit_code == 0, built.output
    assert "tiny built" in built.output
    assert "up to date" in runner.invoke(cli_qemu.image_app, ["build", *data]).output

    disk = tmp_path / "mine.qcow2"
    missing = runner.invoke(cli_qemu.image_app, ["register", "mine", "--disk", str(disk), *data])
    assert missing.exit_code == 1
    assert "missing files" in missing.output
    disk.write_bytes(b"QFI")
    registered = runner.invoke(cli_qemu.image_app, ["register", "mine", "--disk", str(disk), *data])
    assert registered.exit_code == 0
    assert "registered disk image 'mine'" in registered.output
    listed = runner.invoke(cli_qemu.image_app, ["list", *data])
    assert "mine" in listed.output
    assert "tiny" in listed.output
    assert "ok" in listed.output


def test_cli_build_failure_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_apt(name: str) -> debian.Package:
        raise debian.PackageError("`apt-cache` not found")

    monkeypatch.setattr(debian, "kernel_package", lambda meta="": no_apt(meta))
    # A unit test never runs the real `apt-get update` (which root may, and the build tries once).
    monkeypatch.setattr(debian, "refresh_lists", lambda log: False)
    result = CliRunner().invoke(cli_qemu.image_app, ["build", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "image build failed: `apt-cache` not found" in result.output


def test_doctor_reports_tools_images_and_accelerator(
    apt: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hangar import cli

    app = cli.build()
    runner = CliRunner()
    monkeypatch.setattr("hangar.cli_qemu.shutil.which", lambda tool: None)
    missing = runner.invoke(app, ["doctor", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1
    assert "MISSING" in missing.output
    assert "not built" in missing.output
    assert "doctor: 2 problem(s)" in missing.output

    monkeypatch.setattr("hangar.cli_qemu.shutil.which", lambda tool: f"/usr/bin/{tool}")

    async def version(self: object) -> str:
        return "7.2.0"

    monkeypatch.setattr(QemuProvider, "qemu_version", version)
    monkeypatch.setenv("HANGAR_QEMU_ACCEL", "tcg")
    tiny.build(tmp_path)
    result = runner.invoke(app, ["doctor", "--data-dir", str(tmp_path), "--probe"])
    assert result.exit_code == 0, result.output
    assert "Proxmox VE: not configured" in result.output
    assert "not set (the e2b provider is not enabled)" in result.output
    assert "qemu version         7.2.0" in result.output
    assert "accelerator          tcg (set by HANGAR_QEMU_ACCEL)" in result.output
    assert "image tiny           ok" in result.output


def test_build_refreshes_stale_apt_lists_once(
    apt: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refreshed: list[bool] = []
    real_kernel_package = apt.kernel_package

    def kernel_package(meta: str = "linux-image-amd64") -> debian.Package:
        if not refreshed:
            raise debian.PackageError("E: Unable to locate package linux-image-amd64")
        return real_kernel_package(meta)

    monkeypatch.setattr(debian, "kernel_package", kernel_package)

    def refresh_lists(log: Callable[[str], None]) -> bool:
        refreshed.append(True)
        return True

    monkeypatch.setattr(debian, "refresh_lists", refresh_lists)
    result = tiny.build(tmp_path)
    assert refreshed == [True]
    assert result.built
    assert not result.image.missing_files()


def test_build_failure_stands_when_lists_cannot_be_refreshed(
    apt: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def kernel_package(meta: str = "linux-image-amd64") -> debian.Package:
        raise debian.PackageError("E: Unable to locate package linux-image-amd64")

    monkeypatch.setattr(debian, "kernel_package", kernel_package)
    monkeypatch.setattr(debian, "refresh_lists", lambda log: False)
    with pytest.raises(debian.PackageError, match="Unable to locate"):
        tiny.build(tmp_path)


def test_refresh_lists_respects_hangar_provision_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANGAR_PROVISION", "0")
    assert debian.refresh_lists() is False
