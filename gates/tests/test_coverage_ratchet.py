"""Coverage combined per run and the ratchet gate, in scratch projects that measure themselves
with coverage.py (real git repositories, real pytest and coverage processes)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from gates_testing import PY, git, toml_list
from rich.console import Console

from gates import cli
from gates.coverage.figures import Figures, package_of
from gates.coverage.settings import CoverageSettings
from gates.engine.history import History, Record
from gates.engine.pipeline import Pipeline
from gates.engine.shard import Shard
from gates.errors import ConfigError
from gates.ratchet import lost_files

pytestmark = pytest.mark.timeout(180)

CALC = """\
def add(a, b):
    return a + b


def sub(a, b):
    if a < b:
        return -(b - a)
    return a - b
"""
TEST_ADD = """\
import unittest

from calc import add


class TestAdd(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)
"""
TEST_SUB = """\
import unittest

from calc import sub


class TestSub(unittest.TestCase):
    def test_sub(self):
        self.assertEqual(sub(5, 3), 2)
        self.assertEqual(sub(3, 5), -2)
"""
# unittest, not pytest, where a run needs no JUnit: the scratch runs stay quick.
UNITTEST = [PY, "-m", "coverage", "run", "-m", "unittest", "discover", "-q", "-s", "tests"]
# With PYTEST_DISABLE_PLUGIN_AUTOLOAD=1: only pytest-split, which shards need.
PYTEST = [
    *[PY, "-m", "coverage", "run", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
    *["-p", "pytest_split.plugin", "tests"],
]


def pipeline(floor: float = 10, *, pytest_gate: bool = False) -> str:
    """A project measuring `calc` in one test gate, and the ratchet after it."""
    gate = (
        f"name = 'tests', run = {toml_list(PYTEST)}, tier = 'unit', junit = true"
        if pytest_gate
        else f"name = 'tests', run = {toml_list(UNITTEST)}"
    )
    return f"""
[tool.pytest.ini_options]
minversion = "8.0"

[tool.coverage.run]
source_pkgs = ["calc"]
branch = true
parallel = true
relative_files = true

[tool.gates]
history = ".gates/history.jsonl"
green_phases = ["unit", "coverage"]

[tool.gates.tiers.unit]
dirs = ["tests"]

[tool.gates.coverage]
packages = ["calc"]
floor = {floor}
tolerance = 0.5

[[tool.gates.phases]]
name = "unit"
gates = [{{ {gate} }}]

[[tool.gates.phases]]
name = "coverage"
gates = [{{ name = "ratchet", check = "coverage" }}]
"""


FILES = {
    "calc/__init__.py": CALC,
    "tests/test_add.py": TEST_ADD,
    "tests/test_sub.py": TEST_SUB,
    "test-durations/unit.json": json.dumps(
        {"tests/test_add.py::TestAdd::test_add": 1.0, "tests/test_sub.py::TestSub::test_sub": 1.0}
    ),
}


@pytest.fixture
def project(make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_SHA"):
        monkeypatch.delenv(name, raising=False)
    return make_project(pipeline(), FILES)


def run(root: Path) -> tuple[Record, str]:
    """One `gates run` in the project: the ratchet's history record and what the console said."""
    out = io.StringIO()
    cli.execute(root, console=Console(file=out, width=300), github=False)
    record = History(root / ".gates" / "history.jsonl").last("coverage", "ratchet")
    assert record is not None, out.getvalue()
    return record, out.getvalue()


def test_deleting_the_tests_of_a_covered_function_fails_the_ratchet_naming_its_file(
    project: Path,
) -> None:
    first, _ = run(project)
    assert first.outcome == "passed", first.summary
    assert first.metrics["total"] == 100.0
    assert first.metrics["packages"] == {"calc": 100.0}
    assert "no green ancestor with a coverage figure" in first.summary
    assert "judged against the floor 10 % only" in first.summary
    combined = project / ".gates" / "coverage"
    assert json.loads((combined / "coverage.json").read_text())["totals"]["percent_covered"] == 100
    assert (combined / "html" / "index.html").exists()

    # A commit that changes no coverage passes against the green one.
    (project / "README.md").write_text("only words changed\n")
    git(project, "add", "README.md")
    git(project, "commit", "-qm", "words")
    second, _ = run(project)
    assert second.outcome == "passed", second.summary
    assert second.metrics["baseline"] == first.commit
    assert f"against {first.commit[:12]}'s 100.00 %" in second.summary

    (project / "tests" / "test_sub.py").unlink()
    git(project, "commit", "-qam", "drop the tests of sub")
    third, console = run(project)

    assert third.outcome == "failed"
    assert third.metrics["total"] == 37.5
    assert third.metrics["baseline"] == second.commit
    assert f"total 37.50 % fell below 100.00 % at {second.commit[:12]}" in third.summary
    assert f"calc 37.50 % fell below 100.00 % at {second.commit[:12]}" in third.summary
    assert "calc/__init__.py: 3 covered lines lost (covered 6 → 3, missed 0 → 3)" in console
    # The measuring tiers must run again with the ratchet: the next command is the whole run.
    assert "Next: gates run\n" in console


def test_under_the_floor_fails_without_a_green_ancestor(
    make_project: Callable[..., Path],
) -> None:
    root = make_project(pipeline(floor=99), {**FILES, "tests/test_sub.py": "\n"})
    record, _ = run(root)
    assert record.outcome == "failed"
    assert "is under the floor 99 %" in record.summary
    assert "judged against the floor 99 % only" in record.summary


def test_no_data_from_the_run_fails_saying_where_the_data_comes_from(project: Path) -> None:
    out = io.StringIO()
    cli.execute(project, only="coverage", console=Console(file=out, width=300), github=False)
    record = History(project / ".gates" / "history.jsonl").last("coverage", "ratchet")
    assert record is not None
    assert record.outcome == "failed"
    assert "no coverage data from this run's gates" in record.summary
    assert "$COVERAGE_FILE" in record.summary


def test_each_gate_measures_into_its_own_file_under_its_own_configuration(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate gets COVERAGE_FILE in the run's directory, and not the subprocess patch of a
    coverage.py measuring whoever started gates."""
    show = (
        "import os, json; "
        "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('COVERAGE_')}))"
    )
    toml = pipeline().replace(toml_list(UNITTEST), toml_list([PY, "-c", show]))
    root = make_project(toml, FILES)
    monkeypatch.setenv("COVERAGE_PROCESS_CONFIG", "{}")
    monkeypatch.setenv("COVERAGE_PROCESS_START", "pyproject.toml")
    cli.execute(root, only="unit", console=Console(file=io.StringIO()), github=False)
    runs = list((root / ".gates" / "runs").iterdir())
    log = (runs[0] / "unit-tests.log").read_text().splitlines()
    seen = json.loads(log[-1])
    assert seen == {"COVERAGE_FILE": str(runs[0] / "coverage" / "unit-tests" / ".coverage")}


@pytest.mark.usefixtures("placeholder_charts")  # the merge ends with the report
def test_two_shards_are_judged_together_by_the_merge(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(pipeline(pytest_gate=True), FILES)
    for name in [k for k in os.environ if k.startswith(("PYTEST_", "GATES_"))]:
        monkeypatch.delenv(name)
    # The shards' pytest without the plugins this environment would load for it (seconds each).
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    quiet = Console(file=io.StringIO(), width=300)
    for index in (1, 2):
        cli.execute(project, shard=Shard(index, 2), run_id="R", console=quiet, github=False)
    merged = cli.merge_shards([project / ".gates" / "runs" / "R"], root=project, console=quiet)
    assert merged == 0
    records = list(History(project / ".gates" / "history.jsonl").all_records())
    ratchet = [r for r in records if r.gate == "ratchet"]
    # Each shard skips it (it measured only its part); the merge judges both parts together.
    assert sorted(r.shard for r in ratchet) == ["", "1/2", "2/2"]
    assert all(r.outcome == "skipped" for r in ratchet if r.shard)
    whole = next(r for r in ratchet if not r.shard)
    assert whole.outcome == "passed", whole.summary
    assert whole.metrics["total"] == 100.0
    assert whole.metrics["sources"] == ["unit-tests"]
    # Each shard ran one of the two tests: only together do they cover all of calc.
    assert len(list((project / ".gates" / "runs" / "R").glob("shard-*/coverage/unit-tests"))) == 2


def test_a_module_belongs_to_the_innermost_directory_named_like_a_package() -> None:
    packages = ["hangar", "gates"]
    assert package_of("backend/src/hangar/api/app.py", packages) == "hangar"
    assert package_of("gates/src/gates/cli.py", packages) == "gates"
    assert package_of("tools/other.py", packages) is None


def test_only_modules_with_fewer_covered_and_more_missed_lines_lost_coverage() -> None:
    before = Figures(90.0, {}, {"a.py": (10, 0), "b.py": (10, 0), "gone.py": (5, 0)})
    now = Figures(80.0, {}, {"a.py": (6, 4), "b.py": (6, 0)})  # b.py only shrank
    assert lost_files(before, now) == ["a.py: 4 covered lines lost (covered 10 → 6, missed 0 → 4)"]


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({}, "`packages` must list the measured packages' import names"),
        ({"packages": ["a-b"]}, "`packages` must list"),
        ({"packages": ["a"], "floor": 120}, "`floor` must be a percentage from 0 to 100"),
        ({"packages": ["a"], "tolerance": "1"}, "`tolerance` must be a percentage"),
        ({"packages": ["a"], "colour": 1}, "unknown keys ['colour']"),
        ({"packages": ["a"], "variable": ""}, "`variable` must be a non-empty string"),
    ],
)
def test_a_bad_coverage_table_says_what_is_allowed(table: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=r"tool\.gates\.coverage") as raised:
        CoverageSettings.from_table(table)
    assert words in str(raised.value)


def test_a_coverage_check_without_the_table_is_refused() -> None:
    table = {"phases": [{"name": "c", "gates": [{"name": "r", "check": "coverage"}]}]}
    with pytest.raises(ConfigError, match=r"needs a \[tool.gates.coverage\] table"):
        Pipeline.from_table(table)
