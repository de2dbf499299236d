from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from gates_testing import PY, failing_gate, git, ok_gate, pipeline_toml, toml_list
from rich.console import Console

from gates.engine.execution import GateContext, GateResult, real_shell, tail
from gates.engine.history import History
from gates.engine.pipeline import Gate, Phase, Pipeline
from gates.engine.runner import Run, run_gate, run_gates
from gates.reporting.console import ConsoleReporter, status_lines

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_a" name="test_one" time="0.1"/>
<testcase classname="tests.test_a" name="test_two" time="0.1">{two}</testcase>
<testcase classname="tests.test_a" name="test_three" time="0.1">
<skipped message="needs qemu">x</skipped></testcase>
</testsuite></testsuites>"""


def junit_writer(two: str = "", status: int = 0) -> list[str]:
    """argv of a command that writes a junit report to the --junitxml path it is given."""
    body = JUNIT.format(two=two).replace("\n", " ")
    code = (
        "import sys; path = [a for a in sys.argv if a.startswith('--junitxml=')][0][11:]; "
        f"open(path, 'w').write({body!r}); print('pytest output line'); sys.exit({status})"
    )
    return [PY, "-c", code]


class Recorder:
    """A reporter that remembers the order of events."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def run_started(self, run: Run) -> None:
        self.events.append("run")

    def phase_started(self, phase: Phase) -> None:
        self.events.append(f"phase {phase.name}")

    def gate_started(self, gate: Gate) -> None:
        self.events.append(f"start {gate.key}")

    def gate_finished(self, gate: Gate, result: GateResult) -> None:
        self.events.append(f"{result.outcome} {gate.key}")

    def phase_finished(self, phase: Phase, results: Sequence[tuple[Gate, GateResult]]) -> None:
        self.events.append(f"end {phase.name}")

    def run_finished(self, run: Run) -> None:
        self.events.append("done")


def run_project(
    root: Path, *, only: Sequence[str] = (), start: str | None = None, keep_going: bool = False
) -> tuple[Run, Recorder, str]:
    pipeline = Pipeline.load(root)
    recorder = Recorder()
    out = io.StringIO()
    ctx = GateContext(root=root, run_dir=root / ".gates" / "runs" / "t")
    run = run_gates(
        pipeline.select(only, start),
        ctx=ctx,
        history=History(root / pipeline.history),
        reporters=[recorder, ConsoleReporter(Console(file=out, width=200))],
        keep_going=keep_going,
        run_id="t",
    )
    return run, recorder, out.getvalue()


def test_gates_run_in_order_and_stop_at_the_first_failure(
    make_project: Callable[..., Path],
) -> None:
    root = make_project(
        pipeline_toml(
            {
                "first": [ok_gate("a"), failing_gate("b", "the key output"), ok_gate("c")],
                "second": [ok_gate("d")],
            }
        )
    )
    run, recorder, out = run_project(root)
    assert recorder.events == [
        "run",
        "phase first",
        "start first/a",
        "passed first/a",
        "start first/b",
        "failed first/b",
        "end first",
        "done",
    ]
    assert not run.passed
    assert run.phase_outcome(run.phases[0]) == "failed"
    assert run.phase_outcome(run.phases[1]) == "not run"
    records = list(History(root / ".gates/history.jsonl").records())
    assert [(r.gate, r.outcome) for r in records] == [("a", "passed"), ("b", "failed")]
    head = git(root, "rev-parse", "HEAD").strip()
    assert {r.commit for r in records} == {head}
    assert not any(r.dirty for r in records)
    assert "the key output" in out
    assert f"Next: {PY} -c" in out
    assert "then resume with: gates run --from first" in out
    assert "not run" in out  # the final table lists what never ran


def test_keep_going_runs_everything_and_from_resumes(make_project: Callable[..., Path]) -> None:
    root = make_project(
        pipeline_toml({"first": [failing_gate("b")], "second": [ok_gate("d")], "third": []})
    )
    run, _, _ = run_project(root, keep_going=True)
    assert [(g.key, r.outcome) for g, r in run.results] == [
        ("first/b", "failed"),
        ("second/d", "passed"),
    ]
    assert run.phase_outcome(run.phases[1]) == "passed"
    assert run.phase_outcome(run.phases[2]) == "skipped"  # no gates declared
    resumed, _, out = run_project(root, start="second")
    assert resumed.passed
    assert [p.name for p in resumed.phases] == ["second", "third"]
    assert "no gates declared, skipped" in out


def test_dirty_tree_is_recorded_with_a_diff_hash(make_project: Callable[..., Path]) -> None:
    root = make_project(pipeline_toml({"p": [ok_gate("a")]}))
    (root / "README.md").write_text("changed\n")
    run_project(root)
    (root / "new file.bin").write_bytes(b"\0\1")
    run_project(root)
    first, second = History(root / ".gates/history.jsonl").records()
    assert first.dirty
    assert second.dirty
    assert first.diff_hash
    assert second.diff_hash
    assert first.diff_hash != second.diff_hash


def test_junit_gates_record_counts_skips_and_failures(make_project: Callable[..., Path]) -> None:
    failing = junit_writer(two='<failure message="assert 1 == 2">trace</failure>', status=1)
    root = make_project(
        pipeline_toml(
            {
                "t": [
                    f"name = 'good', run = {toml_list(junit_writer())}, junit = true",
                    f"name = 'bad', run = {toml_list(failing)}, junit = true",
                ]
            }
        )
    )
    run, _, out = run_project(root, keep_going=True)
    good, bad = (r for _, r in run.results)
    assert good.summary == "2 passed, 0 failed, 1 skipped"
    assert good.metrics == {"tests": 3, "passed": 2, "failed": 0, "error": 0, "skipped": 1}
    assert good.skips == [{"test": "tests.test_a::test_three", "reason": "needs qemu"}]
    assert bad.outcome == "failed"
    assert bad.key_output == ["tests.test_a::test_two: assert 1 == 2"]
    records = list(History(root / ".gates/history.jsonl").records())
    assert records[0].skips == good.skips
    assert "tests.test_a::test_two: assert 1 == 2" in out


def test_same_outcomes_as_fails_on_any_difference(make_project: Callable[..., Path]) -> None:
    flaky = junit_writer(two='<failure message="order dependent">x</failure>')
    root = make_project(
        pipeline_toml(
            {
                "u": [
                    f"name = 'serial', run = {toml_list(junit_writer())}, junit = true",
                    f"name = 'same', run = {toml_list(junit_writer())}, "
                    "same_outcomes_as = 'serial'",
                    f"name = 'isolation', run = {toml_list(flaky)}, same_outcomes_as = 'serial'",
                ]
            }
        )
    )
    run, _, _ = run_project(root, keep_going=True)
    _, same, isolation = (r for _, r in run.results)
    assert same.outcome == "passed"
    assert same.summary.endswith("outcomes identical to serial")
    assert isolation.outcome == "failed"
    assert isolation.key_output == ["tests.test_a::test_two: passed serially, failed in parallel"]
    assert isolation.metrics["differences"] == 1


def test_same_outcomes_without_a_baseline_in_the_run_fails(tmp_path: Path) -> None:
    gate = Gate("u", "iso", "run", tuple(junit_writer()), junit=True, same_outcomes_as="serial")
    result = run_gate(gate, GateContext(root=tmp_path, run_dir=tmp_path / "run"))
    assert result.outcome == "failed"
    assert "no per-test outcomes of 'serial'" in result.summary


def test_session_gates_call_nox_with_posargs(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def shell(
        argv: Sequence[str],
        *,
        cwd: Path,
        log: Path,
        env: Mapping[str, str],
        timeout: float | None,
    ) -> int:
        seen.append(list(argv))
        environs.append(env)
        return 0

    environs: list[Mapping[str, str]] = []
    ctx = GateContext(root=tmp_path, run_dir=tmp_path / "run", shell=shell, environ={})
    plain = Gate("s", "lint", "session", "lint")
    tested = Gate("u", "serial", "session", "unit-3.11", args=("a", "b"), junit=True)
    assert run_gate(plain, ctx).outcome == "passed"
    run_gate(tested, ctx)
    assert seen[0][-2:] == ["-s", "lint"]
    assert seen[1][-8:] == [
        "-s",
        "unit-3.11",
        "--",
        f"--junitxml={tmp_path / 'run' / 'u-serial.xml'}",
        "-p",
        "gates_timing",
        "a",
        "b",
    ]
    # The timing plugin writes where the speedup check will look; a plain gate gets neither.
    assert environs[1]["GATES_TIMING_REPORT"] == str(tmp_path / "run" / "u-serial.timing.json")
    assert "GATES_TIMING_REPORT" not in environs[0]


def test_a_crashing_gate_fails_instead_of_crashing_the_run(tmp_path: Path) -> None:
    def shell(*args: object, **kwargs: object) -> int:
        raise RuntimeError("shell exploded")

    ctx = GateContext(root=tmp_path, run_dir=tmp_path / "run", shell=shell)
    result = run_gate(Gate("p", "g", "run", ("x",)), ctx)
    assert result.outcome == "failed"
    assert result.summary == "RuntimeError: shell exploded"
    assert result.next_command == "x"


def test_real_shell_logs_times_out_and_reports_missing_programs(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "g.log"
    env = {"PATH": "/usr/bin:/bin"}
    assert real_shell([PY, "-c", "print('hi')"], cwd=tmp_path, log=log, env=env, timeout=30) == 0
    assert tail(log)[-1] == "hi"
    slow = [PY, "-c", "import time; time.sleep(30)"]
    assert real_shell(slow, cwd=tmp_path, log=log, env=env, timeout=0.5) == 124
    assert tail(log)[-1] == "timed out after 0.5 s"
    assert real_shell(["/no/such/program"], cwd=tmp_path, log=log, env=env, timeout=5) == 127
    assert tail(tmp_path / "absent.log") == []


def test_status_shows_the_audit_trail(make_project: Callable[..., Path]) -> None:
    root = make_project(
        pipeline_toml(
            {"deps": [ok_gate("lock"), ok_gate("sync")], "later": [ok_gate("x")]}, green=["deps"]
        )
    )
    pipeline = Pipeline.load(root)
    history = History(root / pipeline.history)
    before = status_lines(pipeline, history)
    assert before[0] == "Phase 0 Gate 0 (deps/lock): NEVER RUN"
    assert before[-1].startswith("No green commit yet")
    run_project(root, only=["deps"])
    head = git(root, "rev-parse", "HEAD").strip()
    lines = status_lines(pipeline, history)
    assert lines[1].startswith(f"Phase 0 Gate 1 (deps/sync): PASSED (commit {head[:12]}, ")
    assert lines[1].endswith(f"last green commit {head[:12]}")
    assert lines[2] == "Phase 1 Gate 0 (later/x): NEVER RUN"
    assert lines[-1] == f"Last green commit (phases deps): {head[:12]}"


@pytest.mark.parametrize("outcome", ["passed", "skipped"])
def test_console_lists_provision_details(tmp_path: Path, outcome: str) -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(Console(file=out, width=200))
    gate = Gate("deps", "provision", "check", "provision")
    reporter.gate_started(gate)
    reporter.gate_finished(gate, GateResult(outcome, key_output=["e2e: chromium 1 at /x"]))  # type: ignore[arg-type]
    assert "e2e: chromium 1 at /x" in out.getvalue()


def test_isolation_judges_outcomes_not_the_exit_status(make_project: Callable[..., Path]) -> None:
    failing = junit_writer(two='<failure message="broken everywhere">x</failure>', status=1)
    crash = [PY, "-c", "import sys; print('worker crashed'); sys.exit(2)"]
    root = make_project(
        pipeline_toml(
            {
                "u": [
                    f"name = 'serial', run = {toml_list(failing)}, junit = true",
                    f"name = 'isolation', run = {toml_list(failing)}, same_outcomes_as = 'serial'",
                    f"name = 'crashed', run = {toml_list(crash)}, same_outcomes_as = 'serial'",
                ]
            }
        )
    )
    run, _, _ = run_project(root, keep_going=True)
    serial, isolation, crashed = (r for _, r in run.results)
    assert serial.outcome == "failed"
    assert serial.summary == "exit status 1; 1 passed, 1 failed, 1 skipped"
    assert isolation.outcome == "passed"  # the same failure in both runs: isolated
    assert isolation.summary.endswith("outcomes identical to serial")
    assert crashed.outcome == "failed"  # no report at all: the exit status decides
    assert crashed.key_output[-1] == "worker crashed"
