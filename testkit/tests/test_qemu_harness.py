"""The QEMU harness's tool check without QEMU: the provisioning is replaced by stubs, so nothing
is installed and nothing boots. A missing QEMU skips with the install command on a person's
machine and fails under CI=true."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import gates.provision
from gates.provision import ProvisionReport
from testkit import qemu


@pytest.fixture
def no_qemu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """PATH without QEMU; provisioning reports it could not install. Returns the tiers asked."""
    monkeypatch.setenv("PATH", str(tmp_path))
    asked: list[str] = []

    def ensure(tier: str, **_: object) -> ProvisionReport:
        asked.append(tier)
        return ProvisionReport(
            tier,
            missing=list(qemu.QEMU_TOOLS),
            packages=["qemu-system-x86", "qemu-utils"],
            not_installed_because="installing was not asked for",
        )

    monkeypatch.setattr(gates.provision, "ensure", ensure)
    return asked


def _outcome(purpose: str) -> BaseException:
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as outcome:
        qemu.require_qemu_tools(purpose)
    return outcome.value


def test_a_missing_qemu_skips_locally_with_the_install_command(
    no_qemu: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    outcome = _outcome("QEMU tests")
    assert isinstance(outcome, pytest.skip.Exception)
    assert "install with: sudo apt-get install -y qemu-system-x86 qemu-utils" in str(outcome)
    assert no_qemu == ["integration"]  # QEMU's packages are listed under the integration tier


def test_a_missing_qemu_fails_under_ci(no_qemu: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    outcome = _outcome("the QEMU flow needs QEMU")
    assert isinstance(outcome, pytest.fail.Exception), f"skipped under CI=true: {outcome}"
    assert str(outcome).startswith("the QEMU flow needs QEMU: qemu-system-x86_64, qemu-img")
    assert "CI=true: a missing tool fails the tier" in str(outcome)


def test_qemu_on_path_needs_no_provisioning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for tool in qemu.QEMU_TOOLS:
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(gates.provision, "ensure", lambda tier, **_: pytest.fail("asked"))
    qemu.require_qemu_tools()


def test_seed_data_dir_registers_the_image_and_copies_the_verdict(tmp_path: Path) -> None:
    from hangar.images import tiny
    from hangar.images.registry import Image, ImageKind, Registry

    images = tmp_path / "cache"
    kernel = tmp_path / "vmlinux"
    kernel.write_text("not a kernel")
    Registry(images).register(Image(name=tiny.NAME, kind=ImageKind.KERNEL, kernel=kernel))
    (images / "qemu").mkdir(parents=True)
    (images / "qemu" / "accelerator.json").write_text('{"accelerator": {"name": "tcg"}}')

    data_dir = qemu.seed_data_dir(tmp_path / "service", images)

    assert Registry(data_dir).get(tiny.NAME).kernel == kernel
    assert (data_dir / "qemu" / "accelerator.json").read_text() == (
        '{"accelerator": {"name": "tcg"}}'
    )


class Recorder(qemu.Watchdog):
    """A watchdog whose firing is recorded instead of ending the process."""

    def __init__(self, seconds: float, run_dir: Path) -> None:
        super().__init__(seconds, run_dir)
        self.fired = threading.Event()

    def _fire(self) -> None:
        self.fired.set()


def test_a_watchdog_rearmed_in_time_never_fires_and_fires_once_left_alone(tmp_path: Path) -> None:
    dog = Recorder(0.3, tmp_path)
    dog.start()
    try:
        for _ in range(4):  # 0.4 s of progress: longer than the limit, re-armed every 0.1 s
            time.sleep(0.1)
            dog.rearm()
        assert not dog.fired.is_set()
        dog.rearm(0.05)  # one test's own limit; then no progress
        assert dog.fired.wait(5)
        assert dog.limit == 0.05
    finally:
        dog.cancel()


def test_a_cancelled_watchdog_stays_quiet(tmp_path: Path) -> None:
    dog = Recorder(0.05, tmp_path)
    dog.start()
    dog.rearm(0.05)
    dog.cancel()
    assert not dog.fired.wait(0.3)
