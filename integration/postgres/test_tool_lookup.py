"""How the PostgreSQL fixture finds `initdb` and `pg_ctl`: provisioning is asked when one is
missing, a tool it installed is used, and one still missing skips with the install command on a
person's machine and fails under CI=true. The provisioning is replaced by stubs: nothing is
installed and no server is started here."""

from __future__ import annotations

from pathlib import Path

import pytest

import gates.provision
from gates.provision import ProvisionReport
from testkit.postgres import tool as _tool

PG_CTL = Path("/usr/lib/postgresql/99/bin/pg_ctl")


def missing_report() -> ProvisionReport:
    return ProvisionReport(
        "integration",
        missing=["pg_ctl"],
        packages=["postgresql"],
        not_installed_because="installing was not asked for",
    )


def test_a_tool_that_provisioning_installs_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: list[str] = []

    def find_tool(name: str, extra_dirs: object = None) -> Path | None:
        return PG_CTL if installed else None

    def ensure(tier: str, **_: object) -> ProvisionReport:
        installed.append(tier)
        return ProvisionReport(tier, installed=["postgresql"])

    monkeypatch.setattr(gates.provision, "find_tool", find_tool)
    monkeypatch.setattr(gates.provision, "ensure", ensure)
    assert _tool("pg_ctl") == str(PG_CTL)
    assert installed == ["integration"]


def test_a_tool_still_missing_skips_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(gates.provision, "find_tool", lambda name, extra_dirs=None: None)
    monkeypatch.setattr(gates.provision, "ensure", lambda tier, **_: missing_report())
    with pytest.raises(
        pytest.skip.Exception, match=r"install with: .*apt-get install -y postgresql"
    ):
        _tool("pg_ctl")


def test_a_tool_still_missing_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(gates.provision, "find_tool", lambda name, extra_dirs=None: None)
    monkeypatch.setattr(gates.provision, "ensure", lambda tier, **_: missing_report())
    with pytest.raises(pytest.fail.Exception, match=r"CI=true: a missing tool fails the tier"):
        _tool("pg_ctl")


def test_a_tier_reported_complete_without_the_tool_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(gates.provision, "find_tool", lambda name, extra_dirs=None: None)
    monkeypatch.setattr(gates.provision, "ensure", lambda tier, **_: ProvisionReport(tier))
    with pytest.raises(pytest.fail.Exception, match=r"`pg_ctl` was not found.*extra_dirs"):
        _tool("pg_ctl")
