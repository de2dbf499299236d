"""The commands behind `invoke gates|status|rollback|upgrade|report`; each returns a status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from gates.console import ConsoleReporter, status_lines
from gates.errors import GatesError
from gates.execution import GateContext
from gates.history import History
from gates.pipeline import Pipeline
from gates.project import find_root
from gates.rollback import rollback
from gates.runner import Reporter, Run, new_run_id, run_gates
from gates.upgrade import upgrade

EXIT_FAILED = 1
EXIT_REFUSED = 2


def make_console() -> Console:
    """A console for people and for CI logs: a log is not 80 columns wide, so do not wrap at 80."""
    console = Console()
    return console if console.is_terminal else Console(width=120)


def _error(console: Console, label: str, error: Exception) -> None:
    """Print an error without rich markup: messages quote things like [tool.gates]."""
    console.print(Text.assemble((f"{label}: ", "bold red"), str(error)))


def _split(phases: str | Sequence[str] | None) -> list[str]:
    if not phases:
        return []
    items = phases.split(",") if isinstance(phases, str) else phases
    return [p.strip() for p in items if p.strip()]


def _github_reporter(
    enabled: bool | None, environ: Mapping[str, str], console: Console
) -> Reporter | None:
    """`--github` forces reporting, None turns it on when Actions' variables are all set."""
    if enabled is False:
        return None
    from gates.github import GitHubReporter, Target

    target = Target.from_environment(environ)
    if target is None:
        if enabled:
            console.print(
                "[yellow]warning:[/] --github needs GITHUB_TOKEN, GITHUB_REPOSITORY and "
                "GITHUB_SHA; not reporting"
            )
        return None

    def warn(message: str) -> None:
        console.print(f"[yellow]warning:[/] {message}", highlight=False, markup=False)

    return GitHubReporter(target, warn)


def execute(
    root: Path,
    *,
    only: str | Sequence[str] | None = None,
    start: str | None = None,
    keep_going: bool = False,
    github: bool | None = None,
    console: Console | None = None,
    context: GateContext | None = None,
    baseline: str | None = None,
) -> Run:
    """Run the selected phases of the project's pipeline with console (and GitHub) reporting."""
    console = console or make_console()
    pipeline = Pipeline.load(root)
    phases = pipeline.select(_split(only), start)
    run_id = new_run_id()
    ctx = context or GateContext(
        root=root, run_dir=root / ".gates" / "runs" / run_id, baseline=baseline
    )
    reporters: list[Reporter] = [ConsoleReporter(console)]
    remote = _github_reporter(github, ctx.environ, console)
    if remote is not None:
        reporters.append(remote)
    return run_gates(
        phases,
        ctx=ctx,
        history=History(root / pipeline.history),
        reporters=reporters,
        keep_going=keep_going,
        run_id=run_id,
    )


def gates(
    only: str | None = None,
    start: str | None = None,
    keep_going: bool = False,
    github: bool | None = None,
    baseline: str | None = None,
) -> int:
    """`invoke gates`: 0 when every gate that ran passed; writes the report at the end."""
    console = make_console()
    try:
        root = find_root()
        run = execute(
            root,
            only=only,
            start=start,
            keep_going=keep_going,
            github=github,
            baseline=baseline,
            console=console,
        )
    except GatesError as error:
        _error(console, "error", error)
        return EXIT_REFUSED
    _report_after_run(root, console)
    return 0 if run.passed else EXIT_FAILED


def _report_after_run(root: Path, console: Console) -> None:
    """Write the report after a run; a failure to do so warns and never changes an outcome."""
    try:
        from gates.report import write_report

        index = write_report(root)
    except Exception as error:  # the gates' verdict stands whatever happens to the report
        console.print(
            Text.assemble(("warning: ", "yellow"), f"the report was not written: {error}")
        )
        return
    console.print(f"report: {index}", highlight=False, markup=False, soft_wrap=True)


def report(
    output: str | Path | None = None,
    commits: int = 20,
    root: Path | None = None,
    console: Console | None = None,
) -> int:
    """`invoke report`: write the HTML report of the history and print the path of its page."""
    console = console or make_console()
    try:
        root = root or find_root()
        from gates.report import write_report

        target = Path(output).resolve() if output else None
        index = write_report(root, target, commits=commits)
    except GatesError as error:
        _error(console, "error", error)
        return EXIT_REFUSED
    except ImportError as error:
        _error(
            console,
            "error",
            RuntimeError(
                f"the report needs the `report` extra of gates (matplotlib, jinja2): {error}"
            ),
        )
        return EXIT_REFUSED
    except OSError as error:
        _error(console, "error", RuntimeError(f"the report could not be written: {error}"))
        return EXIT_REFUSED
    console.print(str(index), highlight=False, markup=False, soft_wrap=True)
    return 0


def status(root: Path | None = None, console: Console | None = None) -> int:
    """`invoke status`: the audit trail per phase and gate."""
    console = console or make_console()
    try:
        root = root or find_root()
        pipeline = Pipeline.load(root)
    except GatesError as error:
        _error(console, "error", error)
        return EXIT_REFUSED
    for line in status_lines(pipeline, History(root / pipeline.history)):
        console.print(line, highlight=False, markup=False)
    return 0


def roll_back(
    to: str | None = None,
    paths: Sequence[str] = (),
    root: Path | None = None,
    console: Console | None = None,
) -> int:
    """`invoke rollback`: save the work, bring the tree back, print how to restore the work."""
    console = console or make_console()
    try:
        root = root or find_root()
        pipeline = Pipeline.load(root)
        result = rollback(
            root, pipeline=pipeline, history=History(root / pipeline.history), to=to, paths=paths
        )
    except GatesError as error:
        _error(console, "rollback refused", error)
        return EXIT_REFUSED
    scope = ", ".join(result.paths) if result.paths else "the whole tree"
    console.print(f"Rolled back {scope} to {result.target[:12]} (HEAD unchanged).", highlight=False)
    console.print(
        f"Your work (staged, unstaged and untracked files) is saved as commit "
        f"{result.saved.commit[:12]}, kept by ref {result.saved.ref}.",
        highlight=False,
    )
    console.print("To bring it back exactly as it was, run:", highlight=False)
    console.print(
        f"  {result.saved.restore_command}", highlight=False, markup=False, soft_wrap=True
    )
    if result.sync_problem:
        console.print(
            f"[yellow]warning:[/] re-syncing the environment failed: {result.sync_problem}; "
            "run `uv sync --locked --all-groups`",
            highlight=False,
        )
    return 0


def upgrade_dependencies(
    package: str | None = None,
    commit: bool = False,
    only: str | None = None,
    root: Path | None = None,
    console: Console | None = None,
) -> int:
    """`invoke upgrade`: upgrade the lock, run the gates, keep it staged or put everything back."""
    console = console or make_console()
    try:
        root = root or find_root()
        chosen = root
        result = upgrade(
            chosen,
            run_gates=lambda: execute(chosen, only=only, console=console),
            package=package,
            commit=commit,
        )
    except GatesError as error:
        _error(console, "upgrade failed", error)
        return EXIT_REFUSED
    if not result.changes:
        console.print("Nothing to upgrade: the lock is already at the newest allowed versions.")
        return 0
    changes = "\n".join(f"  {change}" for change in result.changes)
    failing = result.failing
    if failing is not None:
        gate, gate_result = failing
        console.print(
            f"[bold red]Upgrade rejected:[/] gate {gate.key} failed ({gate_result.summary}).\n"
            f"pyproject.toml and uv.lock are restored exactly; the environment was re-synced.\n"
            f"The rejected version changes:\n{changes}",
            highlight=False,
        )
        if result.sync_problem:
            console.print(f"[yellow]warning:[/] re-sync failed: {result.sync_problem}")
        return EXIT_FAILED
    kept = (
        f"committed as {result.commit[:12]}" if result.commit else "staged (commit it when ready)"
    )
    console.print(f"All gates passed; the upgrade is {kept}:\n{changes}", highlight=False)
    return 0
