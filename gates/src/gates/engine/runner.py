"""Runs phases of gates in order, records each gate run in history, tells reporters as it goes."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from gates.coverage.figures import data_file
from gates.engine.execution import GateContext, GateResult, nox_command, tail
from gates.engine.history import History, Record
from gates.engine.junit import TestReport
from gates.engine.pipeline import DEFAULT_DURATIONS, Gate, Phase
from gates.engine.shard import Shard
from gates.git.repository import Repository, TreeState
from gates.pytest_plugins import plugin
from gates.pytest_plugins.timing import REPORT_VARIABLE as TIMING_VARIABLE

SHARD_VARIABLE = "GATES_SHARD_REPORT"  # gates.pytest_plugins.shard's (it imports pytest)
# Where a gate's command may put files worth keeping (browser traces and screenshots of failed
# tests, say): `<run dir>/artifacts/<phase>-<gate>/`, so a shard's go with its results and
# `gates merge` gathers every shard's.
ARTIFACTS_VARIABLE = "GATES_ARTIFACTS_DIR"
NO_TESTS_RAN = 5
INHERITED_COVERAGE = (
    "COVERAGE_PROCESS_CONFIG",
    "COVERAGE_PROCESS_START",
)  # pytest's exit status when it ran nothing

# A built-in check: judges a gate from what the run has so far. The registry of them is passed
# in (gates.checks.CHECKS), so the engine knows no check by name.
Check = Callable[[Gate, GateContext], GateResult]
NO_CHECKS: Mapping[str, Check] = MappingProxyType({})


class Reporter(Protocol):
    """Receives the progress of a run (the console, GitHub statuses)."""

    def run_started(self, run: Run) -> None: ...
    def phase_started(self, phase: Phase) -> None: ...
    def gate_started(self, gate: Gate) -> None: ...
    def gate_finished(self, gate: Gate, result: GateResult) -> None: ...
    def phase_finished(self, phase: Phase, results: Sequence[tuple[Gate, GateResult]]) -> None: ...
    def run_finished(self, run: Run) -> None: ...


@dataclass
class Run:
    """One `gates run`: the phases it covers and every gate result so far."""

    run_id: str
    state: TreeState
    phases: list[Phase]
    results: list[tuple[Gate, GateResult]] = field(default_factory=list)
    shard: Shard | None = None  # the part of the test gates this run did; None: all of them

    @property
    def failed(self) -> list[tuple[Gate, GateResult]]:
        return [(g, r) for g, r in self.results if r.outcome == "failed"]

    @property
    def passed(self) -> bool:
        return not self.failed

    def phase_outcome(self, phase: Phase) -> str:
        """failed, passed, skipped, or 'not run' when the run stopped before it."""
        outcomes = [r.outcome for g, r in self.results if g.phase == phase.name]
        if not outcomes:
            return "not run" if phase.gates else "skipped"
        if "failed" in outcomes:
            return "failed"
        if len(outcomes) < len(phase.gates):
            return "not run"
        return "passed" if "passed" in outcomes else "skipped"


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def run_gates(
    phases: Sequence[Phase],
    *,
    ctx: GateContext,
    history: History,
    reporters: Sequence[Reporter] = (),
    keep_going: bool = False,
    run_id: str | None = None,
    checks: Mapping[str, Check] = NO_CHECKS,
) -> Run:
    """Run `phases` in order; stop at the first failing gate unless `keep_going`. A check gate
    runs the check of that name in `checks`."""
    run = Run(run_id or new_run_id(), Repository(ctx.root).state(), list(phases), shard=ctx.shard)
    for reporter in reporters:
        reporter.run_started(run)
    stopped = False
    for phase in phases:
        if stopped:
            break
        for reporter in reporters:
            reporter.phase_started(phase)
        phase_results: list[tuple[Gate, GateResult]] = []
        for gate in phase.gates:
            for reporter in reporters:
                reporter.gate_started(gate)
            result = run_gate(gate, ctx, checks)
            ctx.results[gate.key] = result
            history.append(_record(run, gate, result))
            phase_results.append((gate, result))
            run.results.append((gate, result))
            for reporter in reporters:
                reporter.gate_finished(gate, result)
            if result.outcome == "failed" and not keep_going:
                stopped = True
                break
        for reporter in reporters:
            reporter.phase_finished(phase, phase_results)
    for reporter in reporters:
        reporter.run_finished(run)
    return run


def _record(run: Run, gate: Gate, result: GateResult) -> Record:
    shard = run.shard.label if run.shard is not None else ""
    return gate_record(run.run_id, run.state, gate, result, shard)


def gate_record(
    run_id: str, state: TreeState, gate: Gate, result: GateResult, shard: str = ""
) -> Record:
    """The history record of one gate's result (`shard`: "I/N" for one shard's part)."""
    return Record(
        run_id=run_id,
        time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        commit=state.commit,
        dirty=state.dirty,
        diff_hash=state.diff_hash,
        phase=gate.phase,
        gate=gate.name,
        outcome=result.outcome,
        duration_s=round(result.duration_s, 3),
        metrics=result.metrics,
        skips=result.skips,
        summary=result.summary,
        shard=shard,
    )


def run_gate(gate: Gate, ctx: GateContext, checks: Mapping[str, Check] = NO_CHECKS) -> GateResult:
    """Run one gate and judge it; an unexpected error fails the gate with the error's words."""
    if ctx.shard is not None and not ctx.shard.is_first and not gate.every_shard:
        return GateResult("skipped", summary=f"runs in shard 1 of {ctx.shard.total}")
    started = time.perf_counter()
    try:
        result = _check(gate, ctx, checks) if gate.kind == "check" else _command(gate, ctx)
    except Exception as error:  # a gate that crashes is a failed gate, never a crashed run
        result = GateResult("failed", summary=f"{type(error).__name__}: {error}")
    result.duration_s = time.perf_counter() - started
    if result.log is None and ctx.log_for(gate.key).exists():
        result.log = ctx.log_for(gate.key)
    if result.outcome == "failed" and not result.next_command:
        result.next_command = gate.command_for_a_person()
    return result


def _check(gate: Gate, ctx: GateContext, checks: Mapping[str, Check]) -> GateResult:
    assert isinstance(gate.target, str)
    check = checks.get(gate.target)
    if check is None:
        return GateResult("failed", summary=f"no check {gate.target!r} was given to the run")
    return check(gate, ctx)


def _command(gate: Gate, ctx: GateContext) -> GateResult:
    junit = ctx.junit_for(gate.key)
    junit.unlink(missing_ok=True)
    timing = ctx.timing_for(gate.key)
    timing.unlink(missing_ok=True)
    environ = dict(ctx.environ)
    environ[ARTIFACTS_VARIABLE] = str(ctx.run_dir / "artifacts" / gate.key.replace("/", "-"))
    if ctx.coverage_variable:
        environ[ctx.coverage_variable] = str(_fresh_coverage_file(ctx, gate))
        # The gate measures under its project's own configuration, never under that of a
        # coverage.py that measures whoever started gates (its subprocess patch's variables).
        for inherited in INHERITED_COVERAGE:
            environ.pop(inherited, None)
    extra: list[str] = []
    if gate.junit:
        # Per-test outcomes from JUnit; per-test times and workers from the timing plugin,
        # which the speedup check reads (so the tests never run a third time to be timed).
        load, environ = plugin("gates_timing", ctx.run_dir, environ)
        extra = [f"--junitxml={junit}", *load]
        environ[TIMING_VARIABLE] = str(timing)
    if gate.junit and gate.every_shard and ctx.shard is not None:
        extra += _split(gate, ctx, ctx.shard, environ)
    if gate.kind == "session":
        assert isinstance(gate.target, str)
        posargs = [*extra, *gate.args]
        envdir = ["--envdir", str(ctx.nox_envdir)] if ctx.nox_envdir else []
        argv = [*nox_command(), *envdir, "-s", gate.target]
        argv += ["--", *posargs] if posargs else []
    else:
        argv = [*gate.target, *extra, *gate.args]
    log = ctx.log_for(gate.key)
    log.unlink(missing_ok=True)
    status = ctx.shell(argv, cwd=ctx.root, log=log, env=environ, timeout=gate.timeout)
    result = GateResult("passed", summary=f"exit status {status}", log=log)
    report = TestReport.read(junit) if gate.junit else None
    if report is not None:
        ctx.reports[gate.key] = report
        result.metrics.update(report.metrics())
        result.skips = report.skips
    if report is not None and report.outcomes:
        counts = report.counts
        result.summary = (
            f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
        )
    if gate.same_outcomes_as and report is not None and report.outcomes:
        # The criterion is isolation: identical per-test outcomes, even when both runs have
        # the same failures (the baseline gate already fails for those).
        return _compare(gate, ctx, report, result)
    if status == NO_TESTS_RAN and _empty_part(gate, ctx):
        result.summary = f"no tests in shard {ctx.shard.label if ctx.shard else ''}"
        return result
    if status not in gate.ok_exit_codes:
        result.outcome = "failed"
        result.summary = f"exit status {status}" + (
            f"; {result.summary}" if report and report.outcomes else ""
        )
        failures = report.failures() if report else []
        result.key_output = failures[:30] if failures else tail(log)
    return result


def _fresh_coverage_file(ctx: GateContext, gate: Gate) -> Path:
    """The gate's own coverage data file, in its own empty directory: the processes it starts
    write their parallel files beside it, and nothing of an earlier try is combined."""
    path = data_file(ctx.run_dir, gate.key)
    if path.parent.exists():
        shutil.rmtree(path.parent)
    path.parent.mkdir(parents=True)
    return path


def _split(gate: Gate, ctx: GateContext, shard: Shard, environ: dict[str, str]) -> list[str]:
    """pytest-split's arguments for this shard's part, and the gates_shard plugin that makes the
    split independent of test order and records the tests the shard was given and kept."""
    report = ctx.shard_report_for(gate.key)
    report.unlink(missing_ok=True)
    load, loaded = plugin("gates_shard", ctx.run_dir, environ)
    environ.update(loaded)
    environ[SHARD_VARIABLE] = str(report)
    directory = ctx.durations or ctx.root / DEFAULT_DURATIONS
    durations = directory / f"{gate.durations_name}.json"
    return [*load, *shard.pytest_args(durations)]


def _empty_part(gate: Gate, ctx: GateContext) -> bool:
    """Whether this shard's split gave it no tests (more shards than tests): not a failure."""
    if ctx.shard is None or not (gate.junit and gate.every_shard):
        return False
    try:
        return not json.loads(ctx.shard_report_for(gate.key).read_text())["selected"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _compare(gate: Gate, ctx: GateContext, report: TestReport, result: GateResult) -> GateResult:
    baseline = ctx.reports.get(f"{gate.phase}/{gate.same_outcomes_as}")
    if baseline is None or not baseline.outcomes:
        result.outcome = "failed"
        result.summary = f"no per-test outcomes of {gate.same_outcomes_as!r} in this run to compare"
        return result
    differences = baseline.differences(report)
    result.metrics["differences"] = len(differences)
    if differences:
        result.outcome = "failed"
        result.summary = f"{len(differences)} tests differ from {gate.same_outcomes_as}"
        result.key_output = differences[:30]
    else:
        result.summary += f"; outcomes identical to {gate.same_outcomes_as}"
    return result
