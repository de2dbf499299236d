"""CI or a person's machine: what a missing tool does to a test.

On a person's machine a test that cannot have what it needs is skipped with the reason (which
names the install command); under CI=true it fails, because CI never hides a tier. `is_ci` is
gates' own (`gates.provision.is_ci`), so provisioning and the tests agree on what CI is.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

from gates.provision import is_ci

__all__ = ["CI_FAILS", "is_ci", "skip_or_fail"]

# The words gates' ProvisionReport.skip_or_fail adds under CI; the same here.
CI_FAILS = "(CI=true: a missing tool fails the tier)"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test with `reason`; under CI=true fail it instead, saying why it did not skip."""
    if is_ci():
        pytest.fail(f"{reason} {CI_FAILS}", pytrace=False)
    pytest.skip(reason)
