"""What a person sees: live progress with each gate's time, the final table, the status audit."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from gates.engine.execution import GateResult
from gates.engine.history import History
from gates.engine.pipeline import Gate, Phase, Pipeline
from gates.engine.runner import Run

STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow", "not run": "dim"}


def make_console() -> Console:
    """A console for people and for CI logs: a log is not 80 columns wide, so do not wrap at 80."""
    console = Console()
    return console if console.is_terminal else Console(width=120)


class ConsoleReporter:
    """Shows a spinner with elapsed time per running gate and one line per finished gate."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task: TaskID | None = None

    def run_started(self, run: Run) -> None:
        state = run.state
        where = f"commit {state.commit[:12]}" if state.commit else "no commit"
        dirty = f", dirty (diff {state.diff_hash})" if state.dirty else ""
        phases = ", ".join(p.name for p in run.phases)
        self.console.print(f"[bold]gates[/] run {run.run_id} on {where}{dirty}: {phases}")
        self._progress.start()

    def phase_started(self, phase: Phase) -> None:
        if not phase.gates:
            self.console.print(f"Phase {phase.index} {phase.name}: no gates declared, skipped")

    def gate_started(self, gate: Gate) -> None:
        self._task = self._progress.add_task(f"{gate.key}  [dim]{gate.describe()}[/]", total=None)

    def gate_finished(self, gate: Gate, result: GateResult) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        style = STYLE[result.outcome]
        self.console.print(
            f"  [{style}]{result.outcome.upper():7}[/] {gate.key:28} "
            f"{result.duration_s:7.1f} s  {result.summary}",
            highlight=False,
            soft_wrap=True,
        )
        if gate.kind == "check" and gate.target in ("provision", "bench"):
            for line in result.key_output:
                self.console.print(
                    f"           {line}", highlight=False, markup=False, soft_wrap=True
                )

    def phase_finished(self, phase: Phase, results: Sequence[tuple[Gate, GateResult]]) -> None:
        return None

    def run_finished(self, run: Run) -> None:
        self._progress.stop()
        self.console.print(summary_table(run))
        for gate, result in run.failed:
            self.console.print(f"\n[bold red]FAILED[/] {gate.key}: {result.summary}")
            for line in result.key_output:
                self.console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
            if result.log is not None:
                self.console.print(f"  full output: {result.log}", highlight=False, soft_wrap=True)
        if run.failed:
            gate, result = run.failed[0]
            # A command and a path are copied whole: a log never folds them.
            self.console.print(
                f"\nNext: [bold]{result.next_command}[/]", highlight=False, soft_wrap=True
            )
            self.console.print(
                f"then resume with: [bold]gates run --from {gate.phase}[/]",
                highlight=False,
            )


def summary_table(run: Run) -> Table:
    """Phase, gate, outcome, time and summary of every gate in the run."""
    table = Table(title=f"gates run {run.run_id}")
    for column in ("phase", "gate", "outcome", "time", "summary"):
        table.add_column(column)
    for phase in run.phases:
        ran = {g.name: r for g, r in run.results if g.phase == phase.name}
        if not phase.gates:
            table.add_row(f"{phase.index} {phase.name}", "—", "[yellow]skipped[/]", "", "no gates")
        for gate in phase.gates:
            result = ran.get(gate.name)
            outcome = result.outcome if result else "not run"
            table.add_row(
                f"{phase.index} {phase.name}",
                gate.name,
                f"[{STYLE[outcome]}]{outcome}[/]",
                f"{result.duration_s:.1f} s" if result else "",
                result.summary if result else "",
            )
    return table


def status_lines(pipeline: Pipeline, history: History) -> list[str]:
    """The audit trail: per gate its last outcome and the last commit where it passed clean."""
    lines = []
    for phase in pipeline.phases:
        for number, gate in enumerate(phase.gates):
            last = history.last(phase.name, gate.name)
            green = history.last_green_of(phase.name, gate.name)
            label = f"Phase {phase.index} Gate {number} ({phase.name}/{gate.name})"
            if last is None:
                lines.append(f"{label}: NEVER RUN")
                continue
            dirty = ", dirty tree" if last.dirty else ""
            where = f"commit {last.commit[:12] or 'none'}{dirty}, {last.time}"
            green_at = f"last green commit {green.commit[:12]}" if green else "never green"
            lines.append(f"{label}: {last.outcome.upper()} ({where}); {green_at}")
    commit = history.last_green_commit(pipeline.green_gates())
    required = ", ".join(pipeline.green_phases)
    lines.append(
        f"Last green commit (phases {required}): {commit[:12]}"
        if commit
        else f"No green commit yet: no clean run where phases {required} all passed"
    )
    return lines
