from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from gates import cli, provision
from gates.errors import ConfigError
from gates.provision import Installer, ProvisionSpec, ensure, find_tool, is_ci


def tool(directory: Path, name: str, version: str = "1.0") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{name} version {version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


class FakeApt:
    """Records the commands it is given; 'installing' creates the tools in `bin_dir`."""

    def __init__(self, bin_dir: Path, provides: Mapping[str, list[str]], fail: str = "") -> None:
        self.bin_dir = bin_dir
        self.provides = provides
        self.fail = fail
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(
        self, argv: Sequence[str], env: Mapping[str, str]
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append((list(argv), dict(env)))
        if self.fail and self.fail in argv:
            return subprocess.CompletedProcess(argv, 100, "", "E: Unable to locate package x\n")
        if argv[:3] == ["sudo", "-n", "true"]:
            return subprocess.CompletedProcess(argv, 0 if "sudo-ok" in self.provides else 1, "", "")
        if "install" in argv:
            for package in argv[argv.index("--no-install-recommends") + 1 :]:
                for name in self.provides.get(package, []):
                    tool(self.bin_dir, name)
        return subprocess.CompletedProcess(argv, 0, "", "")


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of one directory holding a fake apt-get, so nothing real is found or run."""
    directory = tmp_path / "bin"
    tool(directory, "apt-get")
    tool(directory, "sudo")
    monkeypatch.setenv("PATH", str(directory))
    monkeypatch.delenv("GATES_PROVISION", raising=False)
    monkeypatch.delenv("CI", raising=False)
    return directory


SPEC = ProvisionSpec.from_table(
    {
        "extra_dirs": [],
        "tiers": {
            "integration": {
                "qemu-img": "qemu-utils",
                "pg_ctl": "postgresql",
                "initdb": "postgresql",
                "busybox": {"package": "busybox-static", "version_args": ["--help"]},
            },
            "e2e": {"chromium": "chromium"},
        },
    }
)


def test_spec_reads_the_projects_real_table() -> None:
    spec = ProvisionSpec.load(Path(__file__).resolve().parents[2])
    # What every project made from the template declares (a bare one has no QEMU).
    integration = {r.command: r.package for r in spec.requirements("integration")}
    assert integration["pg_ctl"] == "postgresql"
    assert any("postgresql" in d for d in spec.extra_dirs)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"extra_dirs": "x"}, "extra_dirs"),
        ({"tiers": []}, "must map a tier"),
        ({"tiers": {"e2e": ["chromium"]}}, "command → package"),
        ({"tiers": {"e2e": {"chromium": 3}}}, "package name"),
        ({"tiers": {"e2e": {"chromium": {"package": "c", "version_args": "x"}}}}, "package name"),
    ],
)
def test_bad_spec_says_what_is_wrong(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProvisionSpec.from_table(table)


def test_unknown_tier_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known tiers: e2e, integration"):
        SPEC.requirements("gpu")


def test_find_tool_prefers_path_then_newest_extra_dir(tmp_path: Path, bin_dir: Path) -> None:
    tool(tmp_path / "pg" / "9" / "bin", "pg_ctl")
    newest = tool(tmp_path / "pg" / "15" / "bin", "pg_ctl")
    pattern = str(tmp_path / "pg" / "*" / "bin")
    assert find_tool("pg_ctl", [pattern]) == newest
    on_path = tool(bin_dir, "pg_ctl")
    assert find_tool("pg_ctl", [pattern]) == on_path
    assert find_tool("nothing-like-this", [pattern]) is None


def test_find_tool_reads_extra_dirs_from_the_project(
    tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = tool(tmp_path / "hidden", "initdb")
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.gates.provision]\nextra_dirs = ['{tmp_path / 'hid*'}']\n"
    )
    monkeypatch.chdir(tmp_path)
    assert find_tool("initdb") == found
    (tmp_path / ".git").mkdir()  # a repository root: the search for a project stops here
    (tmp_path / "pyproject.toml").unlink()
    assert find_tool("initdb") is None


def test_ensure_reports_found_tools_with_versions(bin_dir: Path) -> None:
    tool(bin_dir, "chromium", "120.0")
    report = ensure("e2e", spec=SPEC, installer=Installer(FakeApt(bin_dir, {}), euid=0))
    assert report.ok
    assert report.tools["chromium"].path == bin_dir / "chromium"
    assert report.tools["chromium"].version == "chromium version 120.0"
    assert report.install_command == ""
    report.skip_or_fail("e2e")  # nothing missing: neither skips nor fails


def test_ensure_installs_missing_packages_as_root_once(bin_dir: Path) -> None:
    apt = FakeApt(bin_dir, {"qemu-utils": ["qemu-img"], "postgresql": ["pg_ctl", "initdb"]})
    installer = Installer(apt, euid=0, environ={"PATH": str(bin_dir)})
    tool(bin_dir, "busybox")
    report = ensure("integration", spec=SPEC, installer=installer)
    assert report.ok, report.reason("integration")
    assert report.installed == ["qemu-utils", "postgresql"]
    argvs = [argv for argv, _ in apt.calls]
    assert argvs == [
        ["apt-get", "-o", "DPkg::Lock::Timeout=300", "update"],
        [
            "apt-get",
            "-o",
            "DPkg::Lock::Timeout=300",
            "install",
            "-y",
            "--no-install-recommends",
            "qemu-utils",
            "postgresql",
        ],
    ]
    assert all(env["DEBIAN_FRONTEND"] == "noninteractive" for _, env in apt.calls)
    (bin_dir / "qemu-img").unlink()
    ensure("integration", spec=SPEC, installer=installer)
    assert [argv[-1] for argv, _ in apt.calls].count("update") == 1  # update runs once


def test_ensure_uses_passwordless_sudo_when_not_root(bin_dir: Path) -> None:
    apt = FakeApt(bin_dir, {"sudo-ok": [], "chromium": ["chromium"]})
    report = ensure(
        "e2e", spec=SPEC, installer=Installer(apt, euid=1000, environ={"PATH": str(bin_dir)})
    )
    assert report.ok
    assert [argv[:3] for argv, _ in apt.calls] == [
        ["sudo", "-n", "true"],
        ["sudo", "-n", "apt-get"],
        ["sudo", "-n", "apt-get"],
    ]


@pytest.mark.parametrize(
    ("environ", "euid", "provides", "because"),
    [
        ({"GATES_PROVISION": "0"}, 0, {}, "GATES_PROVISION=0"),
        ({}, 1000, {}, "sudo needs a password"),
        ({"PATH": "/nonexistent"}, 0, {}, "no apt-get"),
    ],
)
def test_ensure_does_not_install_when_it_cannot_without_a_password(
    bin_dir: Path, environ: dict[str, str], euid: int, provides: dict[str, list[str]], because: str
) -> None:
    apt = FakeApt(bin_dir, provides)
    installer = Installer(apt, euid=euid, environ={"PATH": str(bin_dir), **environ})
    report = ensure("e2e", spec=SPEC, installer=installer)
    assert report.missing == ["chromium"]
    assert because in report.not_installed_because
    assert report.install_command == "sudo apt-get install -y chromium"
    assert not [argv for argv, _ in apt.calls if "apt-get" in argv]


def test_no_sudo_at_all_is_reported(bin_dir: Path) -> None:
    (bin_dir / "sudo").unlink()
    installer = Installer(FakeApt(bin_dir, {}), euid=1000, environ={"PATH": str(bin_dir)})
    assert ensure("e2e", spec=SPEC, installer=installer).not_installed_because == (
        "not root and no sudo"
    )


def test_install_false_only_looks(bin_dir: Path) -> None:
    apt = FakeApt(bin_dir, {"chromium": ["chromium"]})
    report = ensure("e2e", install=False, spec=SPEC, installer=Installer(apt, euid=0))
    assert report.missing == ["chromium"]
    assert apt.calls == []


@pytest.mark.parametrize("failing", ["update", "install"])
def test_apt_failure_is_reported_with_apts_words(bin_dir: Path, failing: str) -> None:
    apt = FakeApt(bin_dir, {"chromium": ["chromium"]}, fail=failing)
    report = ensure("e2e", spec=SPEC, installer=Installer(apt, euid=0, environ=dict(os.environ)))
    assert report.missing == ["chromium"]
    assert report.not_installed_because == (
        f"apt-get {failing} failed: E: Unable to locate package x"
    )


def test_installed_but_still_missing_says_so(bin_dir: Path) -> None:
    apt = FakeApt(bin_dir, {})  # apt 'succeeds' yet provides nothing
    report = ensure("e2e", spec=SPEC, installer=Installer(apt, euid=0, environ=dict(os.environ)))
    assert "still not found" in report.not_installed_because


def test_missing_tool_skips_with_reason_and_command(bin_dir: Path) -> None:
    report = ensure("integration", install=False, spec=SPEC)
    assert report.packages == ["qemu-utils", "postgresql", "busybox-static"]
    with pytest.raises(pytest.skip.Exception) as skipped:
        report.skip_or_fail("integration tier")
    message = str(skipped.value)
    assert message.startswith("integration tier: qemu-img, pg_ctl, initdb, busybox not found")
    assert "sudo apt-get install -y qemu-utils postgresql busybox-static" in message


def test_missing_tool_fails_under_ci(bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    report = ensure("e2e", install=False, spec=SPEC)
    with pytest.raises(pytest.fail.Exception, match="CI=true: a missing tool fails the tier"):
        report.skip_or_fail("e2e tier")


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("", False)])
def test_ci_detection(value: str, expected: bool) -> None:
    assert is_ci({"CI": value}) is expected


def test_report_metrics_are_json_ready(bin_dir: Path) -> None:
    tool(bin_dir, "chromium", "9")
    metrics = ensure("e2e", spec=SPEC).as_metrics()
    assert metrics["tools"] == {
        "chromium": {"path": str(bin_dir / "chromium"), "version": "chromium version 9"}
    }


def test_version_of_a_silent_or_broken_tool_is_empty(tmp_path: Path) -> None:
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\nexit 0\n")
    silent.chmod(0o755)
    assert provision.tool_version(silent) == ""
    assert provision.tool_version(tmp_path / "absent") == ""


def write_project(root: Path, bin_dir: Path) -> None:
    (root / "pyproject.toml").write_text(
        "[tool.gates.tiers.e2e]\ndirs = ['e2e']\ntools = { chromium = 'chromium' }\n"
        "[tool.gates.tiers.integration]\ntools = { qemu-img = 'qemu-utils' }\n"
    )
    tool(bin_dir, "chromium")


def test_cli_provisions_every_tier_and_exits_1_under_ci(
    tmp_path: Path,
    bin_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_project(tmp_path, bin_dir)
    monkeypatch.chdir(tmp_path)
    assert cli.provision_tiers(check=True) == 0
    out = capsys.readouterr().out
    assert f"e2e: chromium {bin_dir / 'chromium'} (chromium version 1.0)" in out
    assert "integration: missing: qemu-img not found" in out
    assert "will be skipped" in out
    monkeypatch.setenv("CI", "true")
    assert cli.provision_tiers(["integration"], check=True) == 1
    assert "fails under CI=true" in capsys.readouterr().out


def test_cli_installs_with_the_real_installer_path(
    tmp_path: Path,
    bin_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_project(tmp_path, bin_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATES_PROVISION", "0")
    monkeypatch.setattr(provision, "_default_installer", None)
    assert cli.provision_tiers(["integration"]) == 0
    assert "GATES_PROVISION=0 turns installing off" in capsys.readouterr().out


def test_cli_reports_an_unknown_tier(
    tmp_path: Path,
    bin_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_project(tmp_path, bin_dir)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        cli.provision_tiers(["gpu"])
    assert exited.value.code == 2
    assert "no tier 'gpu'" in capsys.readouterr().err


def test_cli_shows_installed_packages(
    tmp_path: Path,
    bin_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_project(tmp_path, bin_dir)
    monkeypatch.chdir(tmp_path)
    apt = FakeApt(bin_dir, {"qemu-utils": ["qemu-img"]})
    monkeypatch.setattr(
        provision, "_default_installer", Installer(apt, euid=0, environ={"PATH": str(bin_dir)})
    )
    assert cli.provision_tiers(["integration"]) == 0
    assert "integration: installed qemu-utils" in capsys.readouterr().out


def test_real_runner_runs_a_command() -> None:
    result = provision._run(["true"], dict(os.environ))
    assert result.returncode == 0
