"""The plugin that imports the tests' libraries before coverage starts: where, and what."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import pytest

from testkit.untraced_imports import INI, import_all, wanted


@pytest.mark.parametrize(
    ("options", "environ", "expected"),
    [
        (Namespace(), {}, False),  # no pytest-cov
        (Namespace(cov_source=None), {}, False),  # no --cov
        (Namespace(cov_source=[True], no_cov=True), {}, False),
        (Namespace(cov_source=[True]), {}, True),  # serial, measured
        (Namespace(cov_source=[True], numprocesses=0, dist="no"), {}, True),
        (Namespace(cov_source=[True], numprocesses=2), {}, False),  # xdist controller
        (Namespace(cov_source=[True], dist="load"), {}, False),
        (Namespace(cov_source=[True], numprocesses=2), {"PYTEST_XDIST_WORKER": "gw0"}, True),
    ],
)
def test_only_a_measured_process_that_runs_tests_imports(
    options: Namespace, environ: dict[str, str], expected: bool
) -> None:
    assert wanted(options, environ) is expected


def test_a_module_that_cannot_be_imported_is_left_to_its_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "warns_on_import.py").write_text(
        "import warnings\nwarnings.warn('old', DeprecationWarning, stacklevel=1)\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    names = ["json", "no_such_module_here", "warns_on_import"]
    assert import_all(names) == ["no_such_module_here", "warns_on_import"]
    assert "json" in sys.modules
    # Not half-imported: the test that imports it meets the warning itself (as an error here).
    assert "warns_on_import" not in sys.modules


def test_every_configured_module_imports(pytestconfig: pytest.Config) -> None:
    configured = pytestconfig.getini(INI)
    assert configured, f"{INI} is empty"
    assert import_all(configured) == []
