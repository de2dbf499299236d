"""Only the affected benchmarks (gates.bench.affected): the change from the baseline with its lines
(git diff -U0: edits, insertions, deletions, renames, untracked files), the run-all triggers, the
intersection rule, the stored coverage map and what the gate prints and records. The real thing
(uv, pytest-benchmark, pytest-cov on a scratch project) is integration/gates/test_bench_affected.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from gates_testing import git, pipeline_toml

from gates import cli
from gates.bench import affected, compare
from gates.bench.affected import Change, CoverageMap, FileRun
from gates.bench.compare import BenchError, BenchReport
from gates.bench.settings import DEFAULT_RUN_ALL_ON, BenchSettings
from gates.checks import CHECKS
from gates.engine.execution import GateContext, real_shell
from gates.engine.pipeline import Pipeline
from gates.engine.runner import run_gate
from gates.errors import ConfigError, GatesError

A = "bench/test_a.py::test_a"
B = "bench/test_b.py::test_b"


class NoShell:
    """A shell that must not be used: the diff or the stored map decides without commands."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        log: Path,
        env: Mapping[str, str],
        timeout: float | None,
    ) -> int:
        self.commands.append(list(argv))
        return 1


# ---------------------------------------------------------------------------------------- diff


HEADER = "diff --git a/m.py b/m.py\nindex 1..2 100644\n--- a/m.py\n+++ b/m.py\n"


def test_a_modification_touches_its_lines_in_the_baselines_numbering() -> None:
    hunks = "@@ -3,2 +3,2 @@ def f():\n-a\n-b\n+A\n+B\n@@ -10 +10,3 @@\n-c\n+C\n+D\n+E\n"
    diff = HEADER + hunks
    assert affected.parse_diff(diff) == {"m.py": {3, 4, 10}}


def test_a_pure_insertion_touches_the_lines_around_it() -> None:
    diff = HEADER + "@@ -7,0 +8,2 @@\n+x\n+y\n@@ -0,0 +1 @@\n+first\n"
    assert affected.parse_diff(diff) == {"m.py": {7, 8, 1}}


def test_a_deletion_touches_the_deleted_lines() -> None:
    diff = HEADER + "@@ -5,3 +4,0 @@\n-a\n-b\n-c\n"
    assert affected.parse_diff(diff) == {"m.py": {5, 6, 7}}


def test_removed_and_added_lines_that_look_like_file_headers_are_lines() -> None:
    diff = HEADER + "@@ -2 +2 @@\n--- a/x.py\n+++ b/x.py\n@@ -9 +9 @@\n-b\n+c\n"
    assert affected.parse_diff(diff) == {"m.py": {2, 9}}


def test_changes_reads_commits_staged_unstaged_untracked_deleted_and_renamed_files(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "kept.py").write_text("".join(f"x{n} = {n}\n" for n in range(1, 11)))
    (root / "gone.py").write_text("a = 1\n")
    (root / "moved.py").write_text("b = 2\n" * 20)
    (root / "staged.py").write_text("c = 3\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "baseline")
    base = git(root, "rev-parse", "HEAD").strip()
    lines = (root / "kept.py").read_text().splitlines(keepends=True)
    lines[4] = "x5 = 'five'\n"  # line 5 edited
    (root / "kept.py").write_text("".join(lines))
    git(root, "commit", "-qam", "committed edit")
    (root / "staged.py").write_text("c = 4\n")
    git(root, "add", "staged.py")
    (root / "kept.py").write_text((root / "kept.py").read_text() + "x11 = 11\n")  # unstaged
    git(root, "rm", "-q", "gone.py")
    git(root, "mv", "moved.py", "renamed.py")
    (root / "new.md").write_text("untracked\n")
    change = affected.changes(root, base)
    assert change.files == {
        "kept.py": frozenset({5, 10, 11}),
        "staged.py": frozenset({1}),
        "gone.py": None,
        "moved.py": None,
        "renamed.py": frozenset(),
        "new.md": frozenset(),
    }
    assert change.added == {"renamed.py", "new.md"}


# ------------------------------------------------------------------------------------- run all


def test_the_selection_splits_into_paths_and_options_with_their_values(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "test_a.py").write_text("")
    selection = ["bench", "-k", "fan_out", "bench/test_a.py::test_a", "--benchmark-x=1", "gone"]
    assert affected.split_selection(tmp_path, selection) == (
        ["bench", "bench/test_a.py::test_a"],
        ["-k", "fan_out", "--benchmark-x=1", "gone"],
    )


@pytest.mark.parametrize(
    ("path", "trigger"),
    [
        ("uv.lock", "uv.lock"),
        ("pyproject.toml", "**/pyproject.toml"),
        ("backend/pyproject.toml", "**/pyproject.toml"),
        ("conftest.py", "conftest.py"),
        ("bench/conftest.py", "bench"),
        ("bench/data/page.json", "bench"),
        ("testkit/src/testkit/bench.py", "testkit/src/testkit/bench.py"),
        ("docs/api.md", None),
        ("backend/tests/conftest.py", None),
        ("benchmarks.py", None),
    ],
)
def test_run_all_on_and_the_benchmarks_own_dirs_run_everything(
    path: str, trigger: str | None
) -> None:
    settings = BenchSettings(run_all_on=(*DEFAULT_RUN_ALL_ON, "testkit/src/testkit/bench.py"))
    globs = affected.run_all_globs(settings, ["bench"])
    found = affected.run_all_trigger(Change({path: frozenset({1})}), globs)
    if trigger is None:
        assert found is None
    else:
        assert found == f"{path} changed (run_all_on: {trigger})"


def test_globs_keep_single_stars_within_a_directory() -> None:
    assert affected.glob_regex("docs/*.md").fullmatch("docs/a.md")
    assert not affected.glob_regex("docs/*.md").fullmatch("docs/sub/a.md")
    assert affected.glob_regex("docs/**/*.md").fullmatch("docs/sub/a.md")
    assert affected.glob_regex("**/x.cfg").fullmatch("x.cfg")


def test_a_change_without_python_files_affects_nothing_and_says_why() -> None:
    change = Change({"docs/api.md": frozenset({3}), "frontend/app.js": None})
    plan = affected.plan_from_diff(change, BenchSettings(), ["bench"], ["bench"])
    assert plan is not None
    assert plan.selection is None
    assert plan.lines() == [
        "no benchmark runs: the change (docs/api.md, frontend/app.js) has no Python file and "
        "nothing in run_all_on, so it affects no benchmark"
    ]
    assert affected.plan_from_diff(Change({"m.py": frozenset()}), BenchSettings(), [], []) is None


def test_a_run_all_trigger_keeps_the_whole_selection() -> None:
    change = Change({"uv.lock": frozenset({4}), "m.py": frozenset({1})})
    plan = affected.plan_from_diff(change, BenchSettings(), ["bench", "-k", "x"], ["bench"])
    assert plan is not None
    assert plan.selection == ["bench", "-k", "x"]
    assert plan.lines() == ["running all benchmarks: uv.lock changed (run_all_on: uv.lock)"]
    assert plan.metrics()["run_all"] is True


@pytest.mark.parametrize("value", ["uv.lock", ["/abs/path"], ["../up"], [""], [3]], ids=repr)
def test_run_all_on_must_be_a_list_of_relative_globs(value: object) -> None:
    with pytest.raises(ConfigError, match="run_all_on must be a list of path globs"):
        BenchSettings.from_table({"run_all_on": value})


def test_run_all_on_is_read_from_the_table() -> None:
    assert BenchSettings.from_table({}).run_all_on == DEFAULT_RUN_ALL_ON
    assert BenchSettings.from_table({"run_all_on": ["data/**"]}).run_all_on == ("data/**",)


# ---------------------------------------------------------------------------------- selection


def coverage_map() -> CoverageMap:
    return CoverageMap(
        "b" * 40,
        {
            "bench/test_a.py": FileRun(
                shared={"pkg/a.py": frozenset({1, 2}), "pkg/common.py": frozenset({1})},
                benchmarks={A: {"pkg/a.py": frozenset({3, 4}), "pkg/common.py": frozenset({5})}},
            ),
            "bench/test_b.py": FileRun(
                shared={"pkg/b.py": frozenset({1}), "pkg/server.py": frozenset({10, 11})},
                benchmarks={B: {"pkg/b.py": frozenset({2, 3}), "pkg/common.py": frozenset({6})}},
                unmeasured=["bench/test_b.py::test_b_needs_qemu"],
            ),
        },
    )


@pytest.mark.parametrize(
    ("files", "selected"),
    [
        ({"pkg/a.py": frozenset({4})}, [A]),  # a line only A's call executes
        ({"pkg/common.py": frozenset({6})}, [B]),
        ({"pkg/common.py": frozenset({5, 6})}, [A, B]),
        ({"pkg/common.py": frozenset({1})}, [A]),  # A's file imported it: all of A's file
        ({"pkg/server.py": frozenset({11})}, [B]),  # the live server of B's file
        ({"pkg/b.py": None}, [B]),  # deleted or renamed: as a whole
        ({"pkg/a.py": frozenset({9})}, []),  # a line no benchmark executes
        ({"pkg/other.py": frozenset({1}), "pkg/new.py": frozenset()}, []),
    ],
)
def test_a_benchmark_runs_when_the_change_touches_a_line_it_executes(
    files: dict[str, frozenset[int] | None], selected: list[str]
) -> None:
    plan = affected.select(Change(files), coverage_map(), ["-q"])
    measured = [n for n in plan.selected if "needs_qemu" not in n]
    assert measured == selected
    # Unmeasured on the baseline (skipped there, so what it executes is unknown): it always runs.
    assert plan.unmeasured == ["bench/test_b.py::test_b_needs_qemu"]
    assert plan.unmeasured[0] in plan.selected
    assert sorted(n for n in [*plan.selected, *plan.skipped] if "needs_qemu" not in n) == [A, B]
    assert plan.selection == ["-q", *plan.selected]


def test_nothing_runs_when_the_map_has_nothing_the_change_touches() -> None:
    plan = affected.select(Change({"pkg/a.py": frozenset({9})}), coverage_map_measured(), [])
    assert plan.selection is None
    assert plan.skipped == [A]
    assert plan.lines() == [
        "skipped 1 benchmarks: the change (pkg/a.py) touches no code they execute",
        f"  {A}",
    ]


def coverage_map_measured() -> CoverageMap:
    return CoverageMap("b" * 40, {"bench/test_a.py": coverage_map().runs["bench/test_a.py"]})


def test_the_printout_names_what_runs_what_is_skipped_and_why() -> None:
    change = Change({"pkg/a.py": frozenset({3}), "docs/api.md": frozenset({1})})
    only_a = CoverageMap("b" * 40, {"bench/test_a.py": coverage_map().runs["bench/test_a.py"]})
    only_a.runs["bench/test_b.py"] = FileRun(benchmarks={B: {"pkg/b.py": frozenset({2})}})
    plan = affected.select(change, only_a, [])
    plan.map_source = "stored in .gates/bench/affected/bbb.json"
    assert plan.lines() == [
        "not Python and not in run_all_on, so affecting nothing: docs/api.md",
        "running 1 affected benchmarks: test_a: pkg/a.py",
        f"  {A}",
        "skipped 1 benchmarks: the change (docs/api.md, pkg/a.py) touches no code they execute",
        f"  {B}",
        "coverage map of the baseline: stored in .gates/bench/affected/bbb.json",
    ]
    assert plan.metrics() == {
        "run_all": False,
        "reason": "test_a: pkg/a.py",
        "selected": [A],
        "skipped": [B],
        "changed": ["docs/api.md", "pkg/a.py"],
        "map": "stored in .gates/bench/affected/bbb.json",
        "unmeasured": [],
    }


# -------------------------------------------------------------------------------------- the map


def test_the_map_survives_a_round_trip_and_another_version_is_made_again(tmp_path: Path) -> None:
    original = coverage_map()
    path = affected.save_map(tmp_path, original)
    assert path == tmp_path / ".gates" / "bench" / "affected" / f"{'b' * 40}.json"
    assert json.loads(path.read_text())["version"] == affected.MAP_VERSION
    loaded = affected.load_map(tmp_path, "b" * 40, [])
    assert loaded is not None
    assert loaded.to_json() == original.to_json()
    assert affected.load_map(tmp_path, "c" * 40, []) is None
    assert affected.load_map(tmp_path, "b" * 40, ["bench", "-k", "x"]) is None  # another selection
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "version": affected.MAP_VERSION + 1}))
    assert affected.load_map(tmp_path, "b" * 40, []) is None
    path.write_text("{not json")
    assert affected.load_map(tmp_path, "b" * 40, []) is None


def test_contexts_split_into_each_calls_lines_and_the_shared_ones(tmp_path: Path) -> None:
    report = {
        "files": {
            "pkg/a.py": {"contexts": {"1": [""], "3": [f"{A}|run"], "4": [f"{A}|setup"]}},
            str(tmp_path / "pkg" / "b.py"): {"contexts": {"2": [f"{A}|run", f"{B}|run"]}},
            "/usr/lib/python3/site.py": {"contexts": {"9": [f"{A}|run"]}},
            # relative_files, recorded by a process whose working directory was "/"
            str(tmp_path / "pkg" / "c.py").lstrip("/"): {"contexts": {"7": [f"{B}|run"]}},
        }
    }
    shared, tests = affected.read_contexts(report, tmp_path)
    assert shared == {"pkg/a.py": frozenset({1, 4})}
    assert tests == {
        A: {"pkg/a.py": frozenset({3}), "pkg/b.py": frozenset({2})},
        B: {"pkg/b.py": frozenset({2}), "pkg/c.py": frozenset({7})},
    }


def test_junit_names_the_benchmarks_that_ran_and_those_skipped(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        "<testsuites><testsuite>"
        '<testcase classname="bench.test_a" name="test_a" />'
        '<testcase classname="bench.test_a.TestGroup" name="test_p[x-1]" />'
        '<testcase classname="bench.test_a" name="test_qemu"><skipped message="no qemu"/>'
        "</testcase></testsuite></testsuites>"
    )
    assert affected.read_junit(junit, "bench/test_a.py") == (
        [A, "bench/test_a.py::TestGroup::test_p[x-1]"],
        ["bench/test_a.py::test_qemu"],
    )


# ------------------------------------------------------------------------------ the bench check

PROJECT = (
    pipeline_toml({"bench": ["name = 'compare', check = 'bench'"]})
    + "\n[tool.gates.bench]\nrounds = 2\n"
)


def bench_context(root: Path, shell: NoShell) -> GateContext:
    return GateContext(
        root=root,
        run_dir=root / ".gates" / "runs" / "r1",
        shell=shell,
        environ={},
        baseline="HEAD~1",
    )


def commit(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "change")


def test_a_docs_only_change_passes_without_running_anything(
    make_project: Callable[..., Path],
) -> None:
    root = make_project(PROJECT, {"bench/test_a.py": "", "docs/index.md": "# a\n"})
    commit(root, {"docs/index.md": "# a\n\nmore\n"})
    shell = NoShell()
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, bench_context(root, shell), CHECKS)
    assert result.outcome == "passed", result.summary
    assert result.summary.endswith(
        "no benchmark affected: the change (docs/index.md) has no Python file and nothing in "
        "run_all_on, so it affects no benchmark"
    )
    assert result.metrics["affected"]["selected"] == []
    assert shell.commands == []  # no worktree, no environment, no pytest


def test_a_stored_map_decides_without_a_worktree(make_project: Callable[..., Path]) -> None:
    root = make_project(PROJECT, {"bench/test_a.py": "", "pkg/a.py": "x = 1\ny = 2\nz = 3\n"})
    base = git(root, "rev-parse", "HEAD").strip()
    commit(root, {"pkg/a.py": "x = 1\ny = 2\nz = 4\n"})
    affected.save_map(
        root,
        CoverageMap(
            base,
            {"bench/test_a.py": FileRun(benchmarks={A: {"pkg/a.py": frozenset({2})}})},
            ["bench"],
        ),
    )
    shell = NoShell()
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, bench_context(root, shell), CHECKS)
    assert result.outcome == "passed", result.summary
    assert "no benchmark affected: the change touches no code they execute" in result.summary
    assert result.metrics["affected"]["skipped"] == [A]
    assert result.metrics["affected"]["map"].startswith("stored in .gates/bench/affected/")
    assert shell.commands == []


@pytest.mark.parametrize("flag", [True, False])
def test_all_benchmarks_reaches_the_bench_check_through_the_context(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, flag: bool
) -> None:
    root = make_project(PROJECT)
    monkeypatch.chdir(root)
    contexts: list[GateContext] = []

    def capture(*_args: object, ctx: GateContext, **_kwargs: object) -> None:
        contexts.append(ctx)
        raise GatesError("captured")

    monkeypatch.setattr(cli, "run_gates", capture)
    argv = ["run", "--only", "bench", *(["--all-benchmarks"] if flag else [])]
    assert cli.main(argv) == cli.EXIT_REFUSED
    assert [ctx.all_benchmarks for ctx in contexts] == [flag]


def test_all_benchmarks_runs_everything_and_records_why(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(PROJECT, {"bench/test_a.py": "", "docs/index.md": "# a\n"})
    commit(root, {"docs/index.md": "# a\n\nmore\n"})
    selections: list[list[str]] = []

    def comparison(*_args: object, selection: Sequence[str], **_kwargs: object) -> None:
        selections.append(list(selection))
        raise BenchError("stop here")

    monkeypatch.setattr(compare, "run_comparison", comparison)
    context = bench_context(root, NoShell())
    context.all_benchmarks = True
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, context, CHECKS)
    assert result.summary == "stop here"
    assert selections == [["bench"]]  # the docs-only change alone would have run nothing


def test_without_a_coverage_map_every_benchmark_runs(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The baseline's environment cannot be synced (a stand-in for any failure to measure):
    nothing says which benchmarks are safe to skip, so all of them run, saying why."""
    root = make_project(PROJECT, {"bench/test_a.py": "", "pkg/a.py": "x = 1\n"})
    commit(root, {"pkg/a.py": "x = 2\n"})

    def git_only(
        argv: Sequence[str],
        *,
        cwd: Path,
        log: Path,
        env: Mapping[str, str],
        timeout: float | None,
    ) -> int:
        if argv[0] == "git":
            return real_shell(argv, cwd=cwd, log=log, env=env, timeout=timeout)
        return 1

    selections: list[list[str]] = []

    def comparison(*_args: object, selection: Sequence[str], **_kwargs: object) -> None:
        selections.append(list(selection))
        raise BenchError("stop here")

    monkeypatch.setattr(compare, "run_comparison", comparison)
    context = bench_context(root, NoShell())
    context.shell = git_only
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, context, CHECKS)
    assert selections == [["bench"]]
    assert result.summary == "stop here"
    assert result.key_output[0].startswith(
        "running all benchmarks: no coverage map of the baseline (syncing the baseline's "
        "environment failed; see "
    ), result.key_output
    assert result.metrics["affected"]["run_all"] is True
    assert git(root, "worktree", "list").count("\n") == 1  # the map's worktree is gone


def test_affected_benchmarks_skipped_on_both_sides_again_pass_saying_so(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The only affected benchmark was skipped on the baseline when its map was made (no QEMU
    there, say) and is skipped again on both sides: nothing measurable changed."""
    root = make_project(PROJECT, {"bench/test_a.py": "", "pkg/a.py": "x = 1\n"})
    base = git(root, "rev-parse", "HEAD").strip()
    commit(root, {"pkg/a.py": "x = 2\n"})
    qemu = "bench/test_a.py::test_qemu"
    affected.save_map(
        root,
        CoverageMap(
            base, {"bench/test_a.py": FileRun(benchmarks={A: {}}, unmeasured=[qemu])}, ["bench"]
        ),
    )

    def comparison(*_args: object, selection: Sequence[str], **_kwargs: object) -> BenchReport:
        assert list(selection) == [qemu]
        return BenchReport(base, [], [], root / ".gates" / "bench" / "r1", 2)

    monkeypatch.setattr(compare, "run_comparison", comparison)
    gate = Pipeline.load(root).phase("bench").gates[0]
    result = run_gate(gate, bench_context(root, NoShell()), CHECKS)
    assert result.outcome == "passed", result.summary
    assert result.summary.endswith(
        "the only benchmarks that could be affected were skipped on both sides, as when the "
        "baseline's coverage map was made"
    )
    assert result.metrics["affected"]["unmeasured"] == [qemu]
