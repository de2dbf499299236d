"""The tier table: one declaration of each tier, read by everything that needs tiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gates.errors import ConfigError
from gates.tiers import Tiers

ROOT = Path(__file__).resolve().parents[2]
TABLE = {
    "unit": {
        "dirs": ["backend/tests", "gates/tests/"],
        "session": "unit-{python}",
        "groups": ["test"],
    },
    "e2e": {
        "dirs": ["e2e"],
        "session": "e2e",
        "groups": ["test", "e2e"],
        "tools": {"chromium": "chromium"},
    },
    "lint": {"session": "lint", "groups": ["lint"], "tools": {"node": "nodejs"}},
}


def test_the_table_gives_dirs_groups_sessions_and_owners() -> None:
    tiers = Tiers.from_table(TABLE, python="3.12")
    assert tiers.names == ["unit", "e2e", "lint"]
    assert [t.name for t in tiers.tested] == ["unit", "e2e"]
    assert tiers.get("unit").session == "unit-3.12"
    assert tiers.dirs() == ["backend/tests", "gates/tests", "e2e"]
    assert tiers.dirs(["e2e"]) == ["e2e"]
    assert tiers.groups() == ["test", "e2e"]  # tested tiers only, each group once
    assert tiers.groups(["lint"]) == ["lint"]
    owner = tiers.tier_of("gates/tests/test_x.py")
    assert owner is not None
    assert owner.name == "unit"
    assert tiers.tier_of("gates/testsuite.py") is None  # a prefix of a name is not a directory
    assert tiers.tier_of("e2e") is not None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([], "must map tier names"),
        ({"Unit": {}}, "lower-case"),
        ({"unit": []}, "must be a table"),
        ({"unit": {"dir": ["x"]}}, r"unknown keys \['dir'\]"),
        ({"unit": {"dirs": "tests"}}, "`dirs` must be a list of strings"),
        ({"unit": {"dirs": ["/abs"]}}, "relative to the project root"),
        ({"unit": {"dirs": ["../up"]}}, "relative to the project root"),
        ({"unit": {"session": 3}}, "`session` must be the name of a nox session"),
        ({"unit": {"tools": ["x"]}}, "`tools` must map a command"),
    ],
)
def test_mistakes_are_named(table: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Tiers.from_table(table)


def test_an_unknown_tier_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no tier 'x' in .*known tiers: unit, e2e, lint"):
        Tiers.from_table(TABLE).get("x")


def test_this_project_declares_its_tiers_once() -> None:
    tiers = Tiers.load(ROOT)
    # (and `fuzz` here, the example service's: test_pipeline.py checks its phase)
    assert {"unit", "e2e", "integration", "bench"} <= {t.name for t in tiers.tested}
    assert tiers.get("unit").session.startswith("unit-3.")
