from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gates.engine.pipeline import Pipeline
from gates.errors import ConfigError
from gates.project import find_root, gates_table, supported_pythons

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["deps", "static", "unit", "e2e", "integration", "fuzz", "coverage", "bench"]


def declared(pipeline: Pipeline) -> list[str]:
    """The phases this project should have, in order. `fuzz` (the example service's API
    contract) and `coverage` (a [tool.gates.coverage] table) are the template's own: a --bare
    copy keeps these tests and declares neither."""
    has = {"fuzz": "fuzz" in pipeline.phase_names, "coverage": pipeline.coverage is not None}
    return [name for name in ORDER if has.get(name, True)]


def test_the_projects_pipeline_is_valid_and_in_order() -> None:
    pipeline = Pipeline.load(ROOT)
    assert pipeline.phase_names == declared(pipeline)
    deps = pipeline.phase("deps")
    assert [g.name for g in deps.gates] == ["lock", "sync", "audit", "provision", "collect"]
    assert (deps.gates[2].kind, deps.gates[2].target) == ("check", "audit")
    assert deps.gates[0].target == ("uv", "lock", "--check")
    unit = pipeline.phase("unit")
    serial = unit.gates[0]
    assert serial.kind == "session"
    assert serial.target == f"unit-{supported_pythons(ROOT)[0]}"
    assert unit.gates[1].same_outcomes_as == "serial"
    assert unit.gates[2].options["min_speedup"] == "auto"
    assert ("unit", "speedup") in pipeline.green_gates()
    assert ("e2e", "e2e") not in pipeline.green_gates()
    if "fuzz" in pipeline.phase_names:
        fuzz = pipeline.phase("fuzz").gates[0]
        assert (fuzz.kind, fuzz.target, fuzz.options["tier"]) == ("session", "fuzz", "fuzz")
    if pipeline.coverage is not None:
        # The ratchet after every tier that measures, over the project's packages.
        assert pipeline.phase("coverage").gates[0].target == "coverage"
        assert "gates" in pipeline.coverage.packages


def test_select_only_keeps_pipeline_order_and_from_resumes() -> None:
    pipeline = Pipeline.load(ROOT)
    assert [p.name for p in pipeline.select(["unit", "deps"])] == ["deps", "unit"]
    names = declared(pipeline)
    later = names[names.index("integration") :]
    assert [p.name for p in pipeline.select(start="integration")] == later
    assert len(pipeline.select()) == len(names)
    with pytest.raises(ConfigError, match="unknown phase 'nope'; phases are: deps, static"):
        pipeline.select(["nope"])
    with pytest.raises(ConfigError, match="either --only or --from"):
        pipeline.select(["deps"], "unit")


def phases(*gates: dict[str, Any], name: str = "p") -> dict[str, Any]:
    return {"phases": [{"name": name, "gates": list(gates)}]}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "needs \\[\\[tool.gates.phases\\]\\]"),
        ({"phases": [{}]}, "needs a string `name`"),
        ({"phases": [{"name": "a"}, {"name": "a"}]}, "declared twice"),
        ({"phases": [{"name": "a", "gates": {}}]}, "must be a list"),
        (phases({"run": ["x"]}), "every gate needs a string `name`"),
        (phases({"name": "g"}), "exactly one of session, run, check"),
        (phases({"name": "g", "run": ["x"], "session": "s"}), "exactly one"),
        (phases({"name": "g", "run": []}), "non-empty argv"),
        (phases({"name": "g", "run": "x"}), "`run` must be a list of strings"),
        (phases({"name": "g", "session": 1}), "`session` must be a string"),
        (phases({"name": "g", "check": "magic"}), "unknown check 'magic'"),
        (phases({"name": "g", "run": ["x"], "colour": 1}), "unknown keys \\['colour'\\]"),
        (phases({"name": "g", "run": ["x"], "timeout": "soon"}), "`timeout` must be seconds"),
        (phases({"name": "g", "run": ["x"], "ok_exit_codes": 0}), "list of integers"),
        (phases({"name": "g", "run": ["x"], "same_outcomes_as": 1}), "must name an earlier"),
        (phases({"name": "g", "run": ["x"], "same_outcomes_as": "later"}), "must name an earlier"),
        (phases({"name": "g", "run": ["x"]}, {"name": "g", "run": ["y"]}), "gate 'g' twice"),
        ({**phases({"name": "g", "run": ["x"]}), "green_phases": ["z"]}, "green_phases"),
        ({**phases({"name": "g", "run": ["x"]}), "history": 3}, "history must be a path"),
        (phases({"name": "g", "check": "speedup"}), "serial='serial' must name an earlier gate"),
        (phases({"name": "g", "check": "audit", "ignore": "GHSA-x"}), "list of advisory ids"),
        (phases({"name": "g", "check": "audit", "ignore": [""]}), "list of advisory ids"),
        (phases({"name": "g", "check": "audit", "service_url": "osv.dev"}), "http\\(s\\) URL"),
        (
            phases(
                {"name": "a", "run": ["x"], "junit": True},
                {"name": "b", "run": ["x"]},
                {"name": "g", "check": "speedup", "serial": "a", "parallel": "b"},
            ),
            "parallel='b' must name an earlier gate of the same phase with junit = true",
        ),
    ],
)
def test_malformed_pipelines_are_rejected_with_the_reason(
    table: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Pipeline.from_table(table)


def test_gate_descriptions_and_commands_for_a_person() -> None:
    pipeline = Pipeline.from_table(
        phases(
            {"name": "s", "session": "unit-{python}", "args": ["a", "b"], "junit": True},
            {"name": "r", "run": ["uv", "lock"], "timeout": 5, "ok_exit_codes": [0, 5]},
            {"name": "t", "session": "parallel", "same_outcomes_as": "s"},
            {"name": "c", "check": "speedup", "serial": "s", "parallel": "t"},
        ),
        pythons=["3.12"],
    )
    s, r, t, c = pipeline.phase("p").gates
    assert s.target == "unit-3.12"
    assert s.describe() == "nox -s unit-3.12"
    assert s.command_for_a_person() == "uv run nox -s unit-3.12 -- a b"
    assert t.command_for_a_person() == "uv run nox -s parallel"
    assert t.junit  # comparing outcomes needs them
    assert r.describe() == r.command_for_a_person() == "uv lock"
    assert r.timeout == 5.0
    assert r.ok_exit_codes == (0, 5)
    assert c.describe() == "check speedup"
    assert c.command_for_a_person() == "gates run --only p"
    assert c.key == "p/c"
    assert pipeline.green_phases == ("p",)  # default: every phase


def test_session_placeholder_stays_without_known_pythons() -> None:
    pipeline = Pipeline.from_table(phases({"name": "s", "session": "unit-{python}"}))
    assert pipeline.phase("p").gates[0].target == "unit-{python}"


def test_find_root_walks_up_to_the_gates_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.gates]\nphases = []\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "pyproject.toml").write_text("[project]\nname = 'member'\n")
    assert find_root(tmp_path / "a" / "b") == tmp_path


def test_missing_or_broken_config_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # the search stops at a repository root (tests may run in one)
    with pytest.raises(ConfigError, match=r"no pyproject.toml with a \[tool.gates\] table"):
        find_root(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        find_root(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.other]\n")
    with pytest.raises(ConfigError, match=r"has no \[tool.gates\] table"):
        gates_table(tmp_path)


def test_the_audit_gates_ignore_list_and_service_reach_the_check() -> None:
    table = phases(
        {
            "name": "audit",
            "check": "audit",
            "ignore": ["GHSA-462w-v97r-4m45"],
            "service_url": "https://osv.example/",
        }
    )
    [gate] = Pipeline.from_table(table).phase("p").gates
    assert gate.options["ignore"] == ["GHSA-462w-v97r-4m45"]
    assert gate.options["service_url"] == "https://osv.example/"
