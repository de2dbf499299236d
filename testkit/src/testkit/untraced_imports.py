"""A pytest plugin: import the tests' third-party libraries before coverage starts measuring.

Coverage measures only the project's packages, but while it runs, its tracer is called for every
Python function of every library: on Python 3.11 the C tracer, with `concurrency = greenlet`
(SQLAlchemy's asyncio layer switches greenlets) asking greenlet for the current greenlet at
each call. Importing FastAPI, SQLAlchemy, matplotlib and the like runs hundreds of thousands of
such calls that measure nothing. Imported here first, untraced, they cost a test process seconds
less; the project's own modules are still imported under coverage (their module-level lines are
measured as before) and find the libraries already imported.

Loaded with `-p testkit.untraced_imports`; the modules are the ini option
`coverage_untraced_imports`. It does its work only where pytest-cov measures and tests run: not
without `--cov`, not in an xdist controller (its workers run the tests). A module that fails to
import (an extra not installed, a warning on import) is left alone here: the test that imports
it meets the same error where it belongs. Nothing else changes: no test's outcome depends on
whether a library was imported before coverage started or after.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Generator, Mapping

import pytest

INI = "coverage_untraced_imports"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        INI,
        "third-party modules to import before coverage starts (testkit.untraced_imports)",
        type="linelist",
        default=[],
    )


def wanted(options: object, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process measures coverage and runs tests (an xdist worker, or no xdist)."""
    if not getattr(options, "cov_source", None) or getattr(options, "no_cov", False):
        return False
    controller = getattr(options, "numprocesses", None) or getattr(options, "dist", "no") != "no"
    return not controller or "PYTEST_XDIST_WORKER" in environ


def import_all(names: list[str]) -> list[str]:
    """Import each module; return those that could not be imported (and were left alone)."""
    failed = []
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning stays the test's to see, as an error
            try:
                importlib.import_module(name)
            except Exception:  # the test that imports it reports it
                failed.append(name)
    return failed


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    # A wrapper runs before every plain implementation, pytest-cov's (which starts coverage) too.
    if wanted(early_config.known_args_namespace):
        import_all(early_config.getini(INI))
    return (yield)
