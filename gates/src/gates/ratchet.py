"""The coverage ratchet: the run's combined coverage is not under the floor and has not fallen
below the figures of the last green commit that measured with the same gates. Used by the
`coverage` check (one run) and by `gates merge` (every shard's data together)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gates.coverage.figures import CoverageError, Figures, Shell, combine, figures, sources
from gates.coverage.settings import CoverageSettings
from gates.engine.execution import GateResult
from gates.engine.history import History
from gates.engine.pipeline import Gate
from gates.git.repository import Repository

LOST_FILES_SHOWN = 30


@dataclass(frozen=True)
class Ratchet:
    """Where the project is, what its coverage table says and whose history it judges by."""

    root: Path
    settings: CoverageSettings
    history: History


@dataclass(frozen=True)
class Baseline:
    """The last green commit's figures (None: there is none with the same gates measured)."""

    commit: str | None
    figures: Figures | None
    why_none: str = ""


def judge(
    gate: Gate,
    ratchet: Ratchet,
    files: Sequence[Path],
    *,
    required: Iterable[tuple[str, str]],
    shell: Shell,
    log: Path,
    environ: Mapping[str, str],
) -> GateResult:
    """Combine `files` into the settings' output, and judge the figures against the floor and
    the newest green ancestor's figures from the same measuring gates."""
    settings = ratchet.settings
    if not files:
        return GateResult(
            "failed",
            summary="no coverage data from this run's gates: the check combines what the gates "
            f"before it measured (each gets its data file in ${settings.variable}); run it "
            "in the same `gates run` as the tiers that measure",
        )
    output = ratchet.root / settings.output
    try:
        report = combine(ratchet.root, files, output, shell=shell, log=log, environ=environ)
        now = figures(report, settings.packages)
    except CoverageError as error:
        return GateResult("failed", summary=str(error))
    measured = sources(files)
    repository = Repository(ratchet.root)
    base = baseline(repository, ratchet.history, gate, required, measured)
    problems = _problems(now, base, settings, repository)
    lost = lost_files(base.figures, now) if base.figures else []
    metrics = {**now.metrics(), "sources": measured, "floor": settings.floor}
    if base.commit:
        metrics["baseline"] = base.commit
    packages = ", ".join(f"{name} {value:.2f} %" for name, value in now.packages.items())
    basis = (
        f"against {repository.short(base.commit)}'s {base.figures.total:.2f} % "
        f"(tolerance {settings.tolerance:g} points) and the floor {settings.floor:g} %"
        if base.commit and base.figures
        else f"{base.why_none}: judged against the floor {settings.floor:g} % only"
    )
    summary = f"total {now.total:.2f} % ({packages}) from {len(measured)} gates; {basis}"
    key_output = [*problems, *lost[:LOST_FILES_SHOWN], f"coverage report: {output / 'html'}"]
    if len(lost) > LOST_FILES_SHOWN:
        key_output.insert(len(problems) + LOST_FILES_SHOWN, f"… and {len(lost) - 30} more files")
    if problems:
        summary = "; ".join([*problems, f"{packages}; {basis}"])
    return GateResult(
        "failed" if problems else "passed",
        summary=summary,
        metrics=metrics,
        key_output=key_output,
        # The check judges what the tiers before it measure: it is retried with them.
        next_command="gates run" if problems else "",
        log=log,
    )


def baseline(
    repository: Repository,
    history: History,
    gate: Gate,
    required: Iterable[tuple[str, str]],
    measured: Sequence[str],
) -> Baseline:
    """The newest green ancestor whose clean pass of this gate has figures from the same
    measuring gates; never the candidate (HEAD itself only when the tree is dirty)."""
    state = repository.state()
    if not state.commit:
        return Baseline(None, None, "no commit yet")
    green = set(history.green_commits(required))
    records = {
        r.commit: r
        for r in history.records()
        if r.phase == gate.phase and r.gate == gate.name and r.clean_pass
    }
    other_gates = ""
    for commit in repository.git("rev-list", "--topo-order", "HEAD").split():
        if commit not in green or (commit == state.commit and not state.dirty):
            continue
        record = records.get(commit)
        found = Figures.from_metrics(record.metrics) if record else None
        if record is None or found is None:
            continue
        if sorted(record.metrics.get("sources") or []) != list(measured):
            other_gates = other_gates or repository.short(commit)
            continue
        return Baseline(commit, found)
    why = "no green ancestor with a coverage figure"
    if other_gates:
        why += f" from the same gates ({', '.join(measured)}; {other_gates}'s came from others)"
    return Baseline(None, None, why)


def _problems(
    now: Figures, base: Baseline, settings: CoverageSettings, repository: Repository
) -> list[str]:
    problems = []
    if now.total < settings.floor:
        problems.append(f"total {now.total:.2f} % is under the floor {settings.floor:g} %")
    if base.commit is None or base.figures is None:
        return problems
    where = repository.short(base.commit)
    pairs: list[tuple[str, float, float | None]] = [("total", now.total, base.figures.total)]
    pairs += [
        (name, value, base.figures.packages.get(name)) for name, value in now.packages.items()
    ]
    for name, value, before in pairs:
        if before is not None and value < before - settings.tolerance:
            problems.append(
                f"{name} {value:.2f} % fell below {before:.2f} % at {where} "
                f"(by {before - value:.2f} points; tolerance {settings.tolerance:g})"
            )
    return problems


def lost_files(before: Figures, now: Figures) -> list[str]:
    """The modules that lost covered lines: fewer covered and more missed than before (a module
    that only shrank, or is gone, lost no coverage)."""
    lost = []
    for path, (covered, missed) in sorted(before.files.items()):
        if path not in now.files:
            continue
        covered_now, missed_now = now.files[path]
        if covered_now < covered and missed_now > missed:
            lost.append(
                f"{path}: {covered - covered_now} covered lines lost "
                f"(covered {covered} → {covered_now}, missed {missed} → {missed_now})"
            )
    return lost
