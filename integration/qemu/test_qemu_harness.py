"""The QEMU harness's own guarantees, without booting anything: the sweeper removes what killed
runs left (also the e2e tier's QEMU flow, which tags its data dirs `hangar-test-<run id>-q…`
and keys its VMs by the service's ids) and never a live run's; a missing QEMU fails under CI=true
and skips with the install command otherwise. The "VMs" here are sleeping Python processes that
carry a QEMU tag on their command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import gates.provision
from gates.provision import ProvisionReport
from integration import qemu_harness
from integration.qemu_harness import TEMP_ROOTS, require_qemu_tools, sweep


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _fake_vm(run_dir: Path, key: str) -> subprocess.Popen[bytes]:
    pidfile = run_dir / "qemu" / "machines" / key / "qemu.pid"
    pidfile.parent.mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    return subprocess.Popen([*sleeper, "-name", f"hangar:{key}", "-pidfile", str(pidfile)])


def _e2e_flow_dir(root: Path, run_id: str) -> Path:
    """A data dir named as e2e/test_qemu_flow.py names its own."""
    return Path(tempfile.mkdtemp(prefix=f"hangar-test-{run_id}-q", dir=root))


def test_a_killed_e2e_qemu_flows_leftovers_are_swept_a_live_ones_are_not(tmp_path: Path) -> None:
    dead_dir = _e2e_flow_dir(tmp_path, f"{_dead_pid()}-dead00")
    live_dir = _e2e_flow_dir(tmp_path, f"{os.getpid()}-a11ce0")
    dead_vm, live_vm = _fake_vm(dead_dir, "m-dead"), _fake_vm(live_dir, "m-live")
    not_a_run = tmp_path / "hangar-test-notes"
    not_a_run.mkdir()
    try:
        swept = sweep(roots=(tmp_path,))
        assert dead_vm.wait(10) == -signal.SIGKILL
        assert not dead_dir.exists()
        assert live_vm.poll() is None, "the VM of a live run was killed"
        assert live_dir.exists()
        assert sorted(swept) == sorted([f"QEMU pid {dead_vm.pid} (m-dead)", str(dead_dir)])
        assert not_a_run.exists(), "a dir that only starts with the prefix was swept"
    finally:
        for vm in (dead_vm, live_vm):
            vm.kill()
            vm.wait()


def test_the_sweeper_looks_where_the_e2e_flow_puts_its_dirs() -> None:
    assert Path("/tmp") in TEMP_ROOTS
    assert Path(tempfile.gettempdir()) in TEMP_ROOTS


@pytest.fixture
def no_qemu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no qemu-system-x86_64, no qemu-img


def _outcome(purpose: str) -> BaseException:
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as outcome:
        require_qemu_tools(purpose)
    return outcome.value


@pytest.mark.usefixtures("no_qemu")
def test_without_gates_a_missing_qemu_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gates.provision", None)  # `import` raises ImportError
    monkeypatch.setenv("CI", "true")
    outcome = _outcome("QEMU tests")
    assert isinstance(outcome, pytest.fail.Exception), f"skipped under CI=true: {outcome}"
    assert "CI=true: a missing tool fails the tier" in str(outcome)


@pytest.mark.usefixtures("no_qemu")
def test_without_gates_a_missing_qemu_skips_locally_with_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gates.provision", None)
    monkeypatch.delenv("CI", raising=False)
    outcome = _outcome("QEMU tests")
    assert isinstance(outcome, pytest.skip.Exception)
    assert "install with: apt-get install -y" in str(outcome)


@pytest.mark.usefixtures("no_qemu")
def test_a_qemu_provisioning_could_not_install_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = ProvisionReport(
        "integration",
        missing=list(qemu_harness.QEMU_TOOLS),
        packages=["qemu-system-x86", "qemu-utils"],
        not_installed_because="installing was not asked for",
    )
    monkeypatch.setattr(gates.provision, "ensure", lambda tier, **_: report)
    monkeypatch.setenv("CI", "true")
    outcome = _outcome("QEMU tests")
    assert isinstance(outcome, pytest.fail.Exception), f"skipped under CI=true: {outcome}"
