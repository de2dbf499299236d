"""A pytest plugin for one shard of a test gate: a split that no test order can change, and a
record of the tests the shard was meant to run.

Loaded as `-p gates_shard` (a copy of this file, see gates.pytest_plugins) next to pytest-split's
`--splits N --group I`, with `GATES_SHARD_REPORT=PATH`; without the variable it does nothing.

pytest-split breaks ties between tests of equal duration by the order it is given, and
pytest-randomly shuffles that order first, with a seed of its own in every shard. So the split is
handed the tests sorted by node id, and the tests it keeps get their shuffled order back. The
hooks are registered with `-p`, before pytest-split registers its own in pytest_configure, so
among the `trylast` ones this plugin's runs just before pytest-split's.

At the end of collection it writes PATH (JUnit keys: `classname::name`, as pytest's --junitxml
names the tests):

    {"format": 1, "collected": [every test the split was given], "selected": [this shard's]}

Under pytest-xdist every worker collects and writes the same file (atomically).
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path

import pytest

REPORT_VARIABLE = "GATES_SHARD_REPORT"
FORMAT = 1
_COLLECTED = pytest.StashKey[list[str]]()


def junit_key(nodeid: str) -> str:
    """The test's `classname::name`, as pytest's --junitxml writes it (without a prefix)."""
    from _pytest.junitxml import mangle_test_address

    names = mangle_test_address(nodeid)
    return ".".join(names[:-1]) + "::" + names[-1]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Just before pytest-split: every test it is given, sorted by node id."""
    if os.environ.get(REPORT_VARIABLE):
        items.sort(key=lambda item: item.nodeid)
        config.stash[_COLLECTED] = [junit_key(item.nodeid) for item in items]


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(REPORT_VARIABLE):
        config.pluginmanager.register(_Order(), "gates_shard_order")


class _Order:
    """The innermost wrapper: it sees the shuffled order and gives it back to the tests the split
    kept, then writes the report."""

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None, None, None]:
        position = {item.nodeid: index for index, item in enumerate(items)}
        result = yield
        items.sort(key=lambda item: position.get(item.nodeid, len(position)))
        data = {
            "format": FORMAT,
            "collected": config.stash.get(_COLLECTED, []),
            "selected": [junit_key(item.nodeid) for item in items],
        }
        path = Path(os.environ[REPORT_VARIABLE])
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(data, indent=0))
        partial.replace(path)
        return result
