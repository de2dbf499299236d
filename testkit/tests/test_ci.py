"""A missing tool skips with the reason on a person's machine and fails under CI=true."""

from __future__ import annotations

import pytest

import gates.provision
from testkit import ci


def test_is_ci_is_the_provisioning_modules_own() -> None:
    assert ci.is_ci is gates.provision.is_ci


def test_skip_or_fail_skips_locally_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^no browser; install with: apt-get"):
        ci.skip_or_fail("no browser; install with: apt-get install -y chromium")


@pytest.mark.parametrize("value", ["true", "1", "YES"])
def test_skip_or_fail_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception) as failure:
        ci.skip_or_fail("no browser")
    assert str(failure.value) == "no browser (CI=true: a missing tool fails the tier)"
