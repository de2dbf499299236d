"""`gates merge`: the shards' directories combined into the verdicts of one whole run.

Per test gate (a junit gate that runs in every shard), the per-test outcomes are the union of the
shards' JUnit reports, and every test of the recorded collection must be among them: a test that
no shard ran fails the gate, named. A `same_outcomes_as` gate (isolation) compares the merged
outcomes of both gates. Any other gate takes its shards' worst outcome (failed, else passed, else
skipped), except the coverage check, which judges every shard's coverage data combined. The
result carries the records for the project's history: the shards' own, tagged
"I/N", and one whole record per gate.
"""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gates.coverage.figures import data_files
from gates.engine.execution import GateResult, real_shell
from gates.engine.history import History, Outcome, Record
from gates.engine.junit import TestReport
from gates.engine.pipeline import Gate, Phase, Pipeline
from gates.engine.runner import gate_record, new_run_id
from gates.git.repository import TreeState
from gates.ratchet import Ratchet, judge
from gates.shards.results import MergeError, ShardResults, find_shards


@dataclass
class Merged:
    """The whole run the shards make together."""

    run_id: str
    state: TreeState
    shards: int
    phases: list[Phase]
    directory: Path  # the merged JUnit files
    results: list[tuple[Gate, GateResult]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)  # the shards' first, then the whole's

    @property
    def passed(self) -> bool:
        return all(result.outcome != "failed" for _, result in self.results)


def merge(
    directories: Sequence[Path],
    pipeline: Pipeline,
    runs: Path,
    output: Path | None = None,
    *,
    history: History | None = None,
) -> Merged:
    """Merge the shards' directories; write each test gate's merged JUnit into `output`
    (default: `<runs>/<run>/merged`).

    The shards may come from several selections of phases (CI's jobs per tier: `--only unit
    --shard I/2`, `--only e2e --shard I/2`, …): each selection's shards are complete on their
    own, and each phase's gates are judged from the selection that ran it.

    Raises MergeError when the directories are not, per selection, the N shards of one split,
    all of one tree."""
    groups = _groups(directories)
    shards = [shard for group in groups for shard in group.shards]
    first = shards[0]
    states = {(r.commit, r.dirty, r.diff_hash) for s in shards for r in s.records}
    if len(states) > 1:
        raise MergeError(
            "the shards ran on different trees (commit, dirty, diff): "
            + ", ".join(
                f"{c[:12]}{' dirty ' + d if dirty else ''}" for c, dirty, d in sorted(states)
            )
        )
    commit, dirty, diff_hash = states.pop() if states else ("", False, "")
    run_ids = {s.run_id for s in shards}
    run_id = first.run_id if len(run_ids) == 1 else new_run_id()
    output = output or runs / run_id / "merged"
    merged = Merged(run_id, TreeState(commit, dirty, diff_hash), len(shards), [], output)
    output.mkdir(parents=True, exist_ok=True)
    reports: dict[str, TestReport] = {}
    for phase in pipeline.phases:
        group = next((g for g in groups if g.phases is None or phase.name in g.phases), None)
        if group is None:
            continue  # no shard's selection had this phase
        ran = False
        for gate in phase.gates:
            parts = [(s, _last(s, gate)) for s in group.shards]
            if all(record is None for _, record in parts):
                continue
            ran = True
            if any(r is None and _stopped(s) for s, r in parts):
                # As in one run: after a failing gate the later ones are not run (the run has
                # failed already); the parts other shards did stay in their tagged records.
                continue
            if gate.junit and gate.every_shard:
                result = _test_gate(gate, parts, reports, output)
            elif gate.kind == "check" and gate.target == "coverage" and history is not None:
                result = _coverage_gate(gate, shards, pipeline, history, runs.parents[1], output)
            else:
                result = _other_gate(gate, parts)
            result.metrics["shards"] = len(group.shards)
            if result.outcome == "failed":
                _guide(gate, result, parts)
            merged.results.append((gate, result))
            merged.records.append(_record(merged, gate, result))
        if ran:
            merged.phases.append(phase)
    merged.records[:0] = [r for s in shards for r in s.records]
    _gather_artifacts(shards, output / "artifacts")
    return merged


def _gather_artifacts(shards: Sequence[ShardResults], target: Path) -> None:
    """Every shard's gate artifacts (`artifacts/<phase>-<gate>/`: a failed browser test's trace
    and screenshot, say) under `target/<phase>-<gate>/`; a name two shards used is kept once per
    shard (`<name>.shard-I-of-N`)."""
    for shard in shards:
        for gate_dir in sorted((shard.directory / "artifacts").glob("*")):
            if not gate_dir.is_dir():
                continue
            into = target / gate_dir.name
            for item in sorted(gate_dir.iterdir()):
                where = into / item.name
                if where.exists():
                    where = into / f"{item.name}.shard-{shard.shard.index}-of-{shard.shard.total}"
                into.mkdir(parents=True, exist_ok=True)
                if item.is_dir():
                    shutil.copytree(item, where, symlinks=True)
                else:
                    shutil.copy2(item, where)


@dataclass(frozen=True)
class Group:
    """The shards 1…N of one selection of phases (None: an older shard, which ran them all)."""

    phases: tuple[str, ...] | None
    shards: list[ShardResults]


def _groups(directories: Sequence[Path]) -> list[Group]:
    """The shards by selection, each selection complete, no phase in two selections."""
    if not directories:
        raise MergeError("give the directories of the shards to merge (one per shard)")
    by_selection: dict[tuple[str, ...] | None, list[ShardResults]] = {}
    for shard in (ShardResults.read(d) for d in find_shards(directories)):
        by_selection.setdefault(shard.phases, []).append(shard)
    if None in by_selection and len(by_selection) > 1:
        raise MergeError(
            "shards that recorded no phases (an older gates) cannot be merged with shards of "
            "selected phases: run them all with this gates"
        )
    groups = [Group(phases, _complete(found, phases)) for phases, found in by_selection.items()]
    owner: dict[str, Group] = {}
    for group in groups:
        for phase in group.phases or ():
            if phase in owner:
                raise MergeError(
                    f"phase {phase!r} was run by two selections of shards "
                    f"({_selection(owner[phase].phases)} and {_selection(group.phases)}): "
                    "each phase's shards may be given once"
                )
            owner[phase] = group
    return groups


def _selection(phases: tuple[str, ...] | None) -> str:
    return "--only " + ",".join(phases) if phases else "every phase"


def _complete(shards: Sequence[ShardResults], phases: tuple[str, ...] | None) -> list[ShardResults]:
    """The shards 1…N of one selection, each once, all of the same N."""
    of = f" (of {_selection(phases)})" if phases else ""
    totals = sorted({s.shard.total for s in shards})
    if len(totals) > 1:
        raise MergeError(f"the directories are shards of different splits (N = {totals}){of}")
    total = totals[0]
    found: dict[int, ShardResults] = {}
    for shard in shards:
        twice = found.get(shard.shard.index)
        if twice is not None:
            raise MergeError(
                f"shard {shard.shard.label} is given twice: {twice.directory} and "
                f"{shard.directory}{of}"
            )
        found[shard.shard.index] = shard
    absent = [f"{i}/{total}" for i in range(1, total + 1) if i not in found]
    if absent:
        raise MergeError(
            f"shard {', '.join(absent)} is missing: merge needs all {total} shards{of}"
        )
    return [found[i] for i in range(1, total + 1)]


def _guide(
    gate: Gate, result: GateResult, parts: Sequence[tuple[ShardResults, Record | None]]
) -> None:
    """What a person needs next, as a run gives it: the command, and a failing shard's log."""
    result.next_command = gate.command_for_a_person()
    failing = [s for s, r in parts if r is not None and r.outcome == "failed"]
    for shard in failing or [s for s, _ in parts]:
        log = _file(shard, gate, ".log")
        if log.exists():
            result.log = log
            return


def _stopped(shard: ShardResults) -> bool:
    """Whether the shard stopped at a failing gate (it ran without --keep-going)."""
    return any(record.outcome == "failed" for record in shard.records)


def _last(shard: ShardResults, gate: Gate) -> Record | None:
    found = None
    for record in shard.records:
        if record.phase == gate.phase and record.gate == gate.name:
            found = record
    return found


def _file(shard: ShardResults, gate: Gate, suffix: str) -> Path:
    return shard.directory / (gate.key.replace("/", "-") + suffix)


def _test_gate(
    gate: Gate,
    parts: Sequence[tuple[ShardResults, Record | None]],
    reports: dict[str, TestReport],
    output: Path,
) -> GateResult:
    report = TestReport()
    expected: set[str] = set()
    recorded = 0
    for shard, _ in parts:
        part = TestReport.read(_file(shard, gate, ".xml"))
        report.outcomes.update(part.outcomes)
        report.messages.update(part.messages)
        report.skips += part.skips
        try:
            data = json.loads(_file(shard, gate, ".shard.json").read_text())
        except (OSError, ValueError):
            continue
        expected.update(data.get("collected", []))
        recorded += 1
    reports[gate.key] = report
    _write_junit([_file(s, gate, ".xml") for s, _ in parts], output / f"{_stem(gate)}.xml")
    result = GateResult("passed", metrics=report.metrics(), skips=report.skips)
    result.duration_s = max((r.duration_s for _, r in parts if r is not None), default=0.0)
    counts = report.counts
    result.summary = (
        f"{counts['passed']} passed, {counts['failed'] + counts['error']} failed, "
        f"{counts['skipped']} skipped"
    )
    lost = sorted(expected - set(report.outcomes))
    problems: list[str] = []
    if recorded == 0:
        problems.append("no shard recorded the tests it was given (no .shard.json)")
    absent = [s.shard.label for s, r in parts if r is None]
    if absent:  # and no failure stopped it: it crashed or was ended
        problems.append(f"shard {', '.join(absent)} never ran it")
    if lost:
        result.metrics["lost"] = len(lost)
        listed = output / f"{_stem(gate)}.lost.txt"
        listed.write_text("".join(f"{test}\n" for test in lost))
        problems.append(f"{len(lost)} collected tests were run by no shard (all in {listed})")
        result.key_output += [f"{test}: collected, but no shard ran it" for test in lost[:30]]
        if len(lost) > 30:
            result.key_output.append(f"… and {len(lost) - 30} more, in {listed}")
    if gate.same_outcomes_as:
        baseline = reports.get(f"{gate.phase}/{gate.same_outcomes_as}")
        differences = baseline.differences(report) if baseline is not None else []
        result.metrics["differences"] = len(differences)
        if baseline is None or not baseline.outcomes:
            problems.append(f"no merged outcomes of {gate.same_outcomes_as!r} to compare")
        elif differences:
            problems.append(f"{len(differences)} tests differ from {gate.same_outcomes_as}")
            result.key_output += differences[:30]
        elif not lost:
            result.summary += f"; outcomes identical to {gate.same_outcomes_as}"
    else:
        failed = [
            f"shard {s.shard.label}: {r.summary}" for s, r in parts if r and r.outcome == "failed"
        ]
        if failed:
            problems.append("failed in " + "; ".join(failed))
            result.key_output += report.failures()[:30]
    if problems:
        result.outcome = "failed"
        result.summary = "; ".join([*problems, result.summary])
    return result


def _coverage_gate(
    gate: Gate,
    shards: Sequence[ShardResults],
    pipeline: Pipeline,
    history: History,
    root: Path,
    output: Path,
) -> GateResult:
    """The coverage ratchet over every shard's data together (a shard only measured its part)."""
    if pipeline.coverage is None:  # pragma: no cover - the pipeline refuses such a gate
        return GateResult("failed", summary="no [tool.gates.coverage] table")
    return judge(
        gate,
        Ratchet(root, pipeline.coverage, history),
        data_files(s.directory for s in shards),
        required=pipeline.green_gates(),
        shell=real_shell,
        log=output / f"{_stem(gate)}.log",
        environ=os.environ,
    )


def _other_gate(gate: Gate, parts: Sequence[tuple[ShardResults, Record | None]]) -> GateResult:
    """The worst outcome of the shards that ran the gate, with that shard's words and figures."""
    ran = [(s, r) for s, r in parts if r is not None]
    outcome: Outcome = next(
        (o for o in ("failed", "passed", "skipped") if any(r.outcome == o for _, r in ran)),
        "skipped",
    )
    shard, record = next((s, r) for s, r in ran if r.outcome == outcome)
    # Which shard said so, when more than one ran the gate (shards 2… skip a shard-1 gate).
    where = f" (shard {shard.shard.label})" if gate.every_shard and len(ran) > 1 else ""
    return GateResult(
        outcome,
        duration_s=max(r.duration_s for _, r in ran),
        summary=record.summary + where,
        metrics=dict(record.metrics),
        skips=list(record.skips),
    )


def _record(merged: Merged, gate: Gate, result: GateResult) -> Record:
    return gate_record(merged.run_id, merged.state, gate, result)


def _stem(gate: Gate) -> str:
    return gate.key.replace("/", "-")


def _write_junit(parts: Sequence[Path], target: Path) -> None:
    """One JUnit file holding every shard's test suites."""
    merged = ET.Element("testsuites")
    for path in parts:
        try:
            root = ET.parse(path).getroot()  # noqa: S314 - our own pytest's output
        except (OSError, ET.ParseError):
            continue
        merged.extend(root.iter("testsuite") if root.tag == "testsuites" else [root])
    ET.ElementTree(merged).write(target, encoding="utf-8", xml_declaration=True)
