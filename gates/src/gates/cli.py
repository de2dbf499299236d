"""The `gates` command: `gates run|merge|matrix|durations|status|rollback|upgrade|report|soak|
calibrate|provision|init`.

Each subcommand is a function here that returns an exit status; `main` parses the command line.
A project's task runner (Invoke tasks, say) may call `main` with the same arguments, so both
ways say the same things. This is the only module that prints: the modules below return data.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.text import Text

from gates import __version__
from gates.changes.rollback import rollback
from gates.changes.upgrade import upgrade
from gates.checks import CHECKS
from gates.engine.execution import GateContext
from gates.engine.history import History
from gates.engine.pipeline import Pipeline
from gates.engine.runner import Reporter, Run, new_run_id, run_gates
from gates.engine.shard import Shard, shard_count
from gates.errors import ConfigError, GatesError
from gates.project import find_root
from gates.reporting.console import ConsoleReporter, make_console, status_lines
from gates.tiers import Tiers

EXIT_FAILED = 1
EXIT_REFUSED = 2
REPORT_NEEDS = (
    "the HTML report needs gates' `report` extra (matplotlib, jinja2): "
    "uv add --dev 'gates[report]', or uvx --from 'gates[report]' …"
)


def _error(console: Console, label: str, error: Exception) -> None:
    """Print an error without rich markup (messages quote things like [tool.gates]), on one
    line however long its paths are."""
    console.print(Text.assemble((f"{label}: ", "bold red"), str(error)), soft_wrap=True)


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
    if enabled is None and not (environ.get("GITHUB_TOKEN") and environ.get("GITHUB_REPOSITORY")):
        return None  # not on Actions: PyGithub (half a second to import) is not needed
    from gates.reporting.github import GitHubReporter, Target

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
    shard: Shard | None = None,
    run_id: str | None = None,
    cores: int | None = None,
    nox_envdir: Path | None = None,
    all_benchmarks: bool = False,
) -> Run:
    """Run the selected phases of the project's pipeline with console (and GitHub) reporting.

    With `shard`, the run does that part of each test gate and shard 1 the other gates; its
    results, history records included, stay in its own directory for `gates merge`."""
    from gates.shards.results import HISTORY, shard_dir, write_manifest

    console = console or make_console()
    pipeline = Pipeline.load(root)
    phases = pipeline.select(_split(only), start)
    run_id = run_id or new_run_id()
    runs = root / ".gates" / "runs"
    run_dir = shard_dir(runs, run_id, shard) if shard else runs / run_id
    ctx = context or GateContext(
        root=root, run_dir=run_dir, baseline=baseline, all_benchmarks=all_benchmarks
    )
    ctx.shard, ctx.durations, ctx.nox_envdir = shard, root / pipeline.durations, nox_envdir
    if pipeline.coverage is not None:
        ctx.coverage_variable = pipeline.coverage.variable
    if cores is not None:
        ctx.cpu_count = cores
    history = History(root / pipeline.history)
    if shard is not None:
        write_manifest(ctx.run_dir, run_id, shard, [p.name for p in phases])
        history = History(ctx.run_dir / HISTORY)
        github = False  # the merge gives the verdict
    reporters: list[Reporter] = [ConsoleReporter(console)]
    remote = _github_reporter(github, ctx.environ, console)
    if remote is not None:
        reporters.append(remote)
    return run_gates(
        phases,
        ctx=ctx,
        history=history,
        reporters=reporters,
        keep_going=keep_going,
        run_id=run_id,
        checks=CHECKS,
    )


def gates(
    only: str | None = None,
    start: str | None = None,
    keep_going: bool = False,
    github: bool | None = None,
    baseline: str | None = None,
    shard: str | None = None,
    shards: str | None = None,
    run_id: str | None = None,
    cores: int | None = None,
    nox_envdir: str | None = None,
    all_benchmarks: bool = False,
) -> int:
    """`gates run`: 0 when every gate that ran passed; writes the report at the end. With
    `shard` ("I/N") one shard's part, merged later; with `shards` ("N") all N side by side,
    then merged."""
    console = make_console()
    try:
        if shard and shards:
            raise ConfigError(
                "use either --shard I/N (one shard's part) or --shards N (every shard, side by "
                "side, merged), not both"
            )
        part = Shard.parse(shard) if shard else None
        total = shard_count(shards) if shards else None
        if cores is not None and cores < 1:
            raise ConfigError(f"--cores {cores}: give a whole number ≥ 1")
        root = find_root()
        if total is not None:
            options = [*(["--only", only] if only else []), *(["--from", start] if start else [])]
            options += ["--keep-going"] if keep_going else []
            options += ["--baseline", baseline] if baseline else []
            options += ["--all-benchmarks"] if all_benchmarks else []
            return _side_by_side(root, total, run_id or new_run_id(), options, cores, console)
        run = execute(
            root,
            only=only,
            start=start,
            keep_going=keep_going,
            github=github,
            baseline=baseline,
            console=console,
            shard=part,
            run_id=run_id,
            cores=cores,
            nox_envdir=Path(nox_envdir).resolve() if nox_envdir else None,
            all_benchmarks=all_benchmarks,
        )
    except GatesError as error:
        _error(console, "error", error)
        return EXIT_REFUSED
    if part is not None:
        directory = root / ".gates" / "runs" / run.run_id / f"shard-{part.index}-of-{part.total}"
        console.print(
            f"shard {part.label}: results in {directory}; merge every shard's with "
            "`gates merge DIR…`",
            highlight=False,
            soft_wrap=True,
        )
    else:
        _report_after_run(root, console)
    return 0 if run.passed else EXIT_FAILED


def _side_by_side(
    root: Path, total: int, run_id: str, options: list[str], cores: int | None, console: Console
) -> int:
    """`gates run --shards N`: every shard as its own process, then `gates merge`."""
    from gates.shards.local import run_side_by_side

    processes = run_side_by_side(
        root,
        total,
        run_id,
        options,
        cores=cores,
        started=lambda shard, log: console.print(
            f"shard {shard.label}: started, output in {log}", highlight=False, soft_wrap=True
        ),
        finished=lambda done: console.print(
            f"shard {done.shard.label}: exit status {done.status}", highlight=False
        ),
    )
    status = merge_shards([p.directory for p in processes], root=root, console=console)
    if status:
        return status
    # A shard that crashed or refused (status 2) left nothing wrong to merge, but is wrong.
    return EXIT_FAILED if any(p.status != 0 for p in processes) else 0


def ci_matrix(shards: int, root: Path | None = None) -> int:
    """`gates matrix`: print the CI job matrix of the project's pipeline (one line of JSON)."""
    from gates.shards.matrix import matrix_json

    try:
        print(matrix_json(Pipeline.load(root or find_root()), shards))
    except GatesError as error:
        _error(make_console(), "error", error)
        return EXIT_REFUSED
    return 0


def merge_shards(
    directories: Sequence[Path],
    *,
    output: Path | None = None,
    github: bool | None = None,
    root: Path | None = None,
    console: Console | None = None,
) -> int:
    """`gates merge`: the shards' verdicts as one run: 0 when every merged gate passed, 1 when
    one failed (a test that no shard ran fails its gate), 2 when they cannot be merged."""
    from gates.shards.merge import merge

    console = console or make_console()
    try:
        root = root or find_root()
        pipeline = Pipeline.load(root)
        merged = merge(
            [Path(d).resolve() for d in directories],
            pipeline,
            root / ".gates" / "runs",
            output,
            history=History(root / pipeline.history),
        )
    except GatesError as error:
        _error(console, "merge refused", error)
        return EXIT_REFUSED
    history = History(root / pipeline.history)
    present = {(r.run_id, r.phase, r.gate, r.shard) for r in history.all_records()}
    appended = 0
    for record in merged.records:
        if (record.run_id, record.phase, record.gate, record.shard) not in present:
            history.append(record)
            appended += 1
    run = Run(merged.run_id, merged.state, merged.phases, list(merged.results))
    reporters: list[Reporter] = [ConsoleReporter(console)]
    remote = _github_reporter(github, os.environ, console)
    if remote is not None:
        reporters.append(remote)
    for reporter in reporters:
        reporter.run_started(run)
    for phase in run.phases:
        for reporter in reporters:
            reporter.phase_started(phase)
        results = [(g, r) for g, r in run.results if g.phase == phase.name]
        for gate, result in results:
            for reporter in reporters:
                reporter.gate_started(gate)
                reporter.gate_finished(gate, result)
        for reporter in reporters:
            reporter.phase_finished(phase, results)
    for reporter in reporters:
        reporter.run_finished(run)
    console.print(
        f"merged {merged.shards} shards of run {merged.run_id}: JUnit in {merged.directory}; "
        f"{appended} records appended to {pipeline.history}"
        + ("" if appended else " (this run was merged before)"),
        highlight=False,
        soft_wrap=True,
    )
    _report_after_run(root, console)
    return 0 if merged.passed else EXIT_FAILED


def refresh_durations(tiers: Sequence[str] = (), *, root: Path | None = None) -> int:
    """`gates durations`: run each tier's tests serially and store every test's duration, the
    split's weights; by default the tiers of the pipeline's test gates."""
    import subprocess

    from gates.shards.durations import durations_file, refresh_command

    try:
        root = root or find_root()
        pipeline = Pipeline.load(root)
        known = Tiers.load(root)
        default = [
            g.durations_name for p in pipeline.phases for g in p.gates if g.junit and g.every_shard
        ]
        chosen = list(tiers) or list(dict.fromkeys(n for n in default if n in known.names))
        commands = []
        for name in chosen:
            target = durations_file(root, pipeline.durations, name)
            commands.append((name, target, refresh_command(known.get(name), target)))
    except GatesError as error:
        print(f"error: {error}")
        return EXIT_REFUSED
    for name, target, argv in commands:
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"durations {name}: {' '.join(argv)}", flush=True)
        before = target.stat().st_mtime_ns if target.exists() else None
        status = subprocess.run(argv, cwd=root, check=False).returncode
        stored = target.exists() and target.stat().st_mtime_ns != before
        if not stored:
            print(f"durations {name}: exit status {status}; nothing stored, {target} unchanged")
            return EXIT_FAILED
        if status != 0:
            # pytest-split stores the durations whatever the outcome: say so, and why.
            print(
                f"durations {name}: stored in {target.relative_to(root)}, but the run ended with "
                f"exit status {status} (failing tests are timed too): look at it before committing"
            )
            return EXIT_FAILED
        print(f"durations {name}: stored in {target.relative_to(root)}")
    return 0


def _report_after_run(root: Path, console: Console) -> None:
    """Write the report after a run; a failure to do so warns and never changes an outcome."""
    try:
        from gates.reporting.html.page import write_report
    except ImportError as error:
        console.print(f"report: not written: {REPORT_NEEDS} ({error})", highlight=False)
        return
    try:
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
    """`gates report`: write the HTML report of the history and print the path of its page."""
    console = console or make_console()
    try:
        root = root or find_root()
        from gates.reporting.html.page import write_report

        target = Path(output).resolve() if output else None
        index = write_report(root, target, commits=commits)
    except GatesError as error:
        _error(console, "error", error)
        return EXIT_REFUSED
    except ImportError as error:
        _error(
            console,
            "error",
            RuntimeError(f"{REPORT_NEEDS} ({error})"),
        )
        return EXIT_REFUSED
    except OSError as error:
        _error(console, "error", RuntimeError(f"the report could not be written: {error}"))
        return EXIT_REFUSED
    console.print(str(index), highlight=False, markup=False, soft_wrap=True)
    return 0


def status(root: Path | None = None, console: Console | None = None) -> int:
    """`gates status`: the audit trail per phase and gate."""
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
    """`gates rollback`: save the work, bring the tree back, print how to restore the work."""
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
    """`gates upgrade`: upgrade the lock, run the gates, keep it staged or put everything back."""
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


def soak_tier(tier: str, runs: int, extra: Sequence[str] = (), *, root: Path | None = None) -> int:
    """`gates soak`: print the report and store the soak under `.gates/soak/`; 1 when any
    test failed or a run crashed. `tier` is one tier or `all`."""
    from gates import soak

    try:
        root = root or find_root()
        tiers = Tiers.load(root)
        soak.tiers_to_soak(tier, tiers)  # an unknown tier fails first
    except GatesError as error:
        print(f"error: {error}")
        return EXIT_REFUSED
    run_id = new_run_id()
    started = datetime.now(timezone.utc)
    project = root
    state = soak.tree_state(root)  # the code that is soaked: the tree as it is at the start

    def progress(run: soak.RunRecord) -> None:
        if tier == soak.ALL:
            where = f"round {run.round}/{runs} {run.tier}:"
        else:
            where = f"run {run.number}/{runs}"
        print(f"soak {tier}: {where} exit {run.exit_status}", flush=True)

    try:
        result = soak.soak(
            tier,
            runs,
            extra=extra,
            on_run=progress,
            tiers=tiers,
            tree=lambda: soak.tree_key(project),
            root=project,
        )
    except soak.SoakError as error:
        print(f"error: {error}")
        return EXIT_REFUSED
    print(result.render())
    try:
        path = soak.store(
            result, root / soak.SOAK_DIR, run_id=run_id, started=started, state=state, extra=extra
        )
    except OSError as error:
        print(f"warning: the soak could not be stored: {error}")
    else:
        print(f"soak stored: {path} (shown by `gates report`)")
    return 0 if result.ok else EXIT_FAILED


def soak_arguments(tier: str, words: Sequence[str]) -> tuple[str, list[str]]:
    """`gates soak --tier T [-- ARGS]` or `gates soak T [-- ARGS]`: the tier and pytest's args."""
    if tier:
        return tier, list(words)
    if not words:
        raise GatesError("name the tier to soak: --tier NAME, or --tier all for every tier")
    return words[0], list(words[1:])


def calibrate(
    runs: int, factors: str = "", selection: Sequence[str] = (), metric: str = "both"
) -> int:
    """`gates calibrate`: print the rates beside their goals and the per-benchmark table; 2 when
    it cannot run, 130 on Ctrl-C (the finished runs stay in the results' calibration.json)."""
    from gates.bench.calibration import DEFAULT_FACTORS, METRICS, gate_selection, parse_factors
    from gates.bench.calibration import calibrate as measure
    from gates.bench.settings import BenchSettings

    console = make_console()
    results: Path | None = None
    try:
        root = find_root()
        settings = BenchSettings.load(root)
        chosen = list(selection) or gate_selection(root)
        measured = parse_factors(factors) if factors else DEFAULT_FACTORS
        metrics = METRICS if metric == "both" else (metric,)
        if metric != "both" and metric not in METRICS:
            raise GatesError(f"--metric must be wall, instructions or both, got {metric!r}")
        results = root / ".gates" / "calibration" / new_run_id()
        console.print(
            f"calibrating the bench gate ({' and '.join(metrics)}): {runs} runs of "
            f"{1 + len(measured)} comparisons of HEAD with itself (as it is, then slowed by "
            f"{', '.join(f'{f:g}x' for f in measured)}; {' '.join(chosen)}); results in {results}",
            highlight=False,
        )
        calibration = measure(
            root,
            runs=runs,
            factors=measured,
            metrics=metrics,  # type: ignore[arg-type]  # checked against METRICS above
            settings=settings,
            results=results,
            log=results / "bench.log",
            selection=chosen,
            progress=lambda line: console.print(line, highlight=False, markup=False),
        )
    except GatesError as error:
        console.print(Text.assemble(("error: ", "bold red"), str(error)))
        return EXIT_REFUSED
    except KeyboardInterrupt:
        console.print(f"interrupted; the worktrees are removed; finished runs: {results}")
        return 130
    console.print(calibration.table())
    console.print(calibration.benchmark_table())
    console.print(calibration.summary(), highlight=False)
    console.print(f"results: {results / 'calibration.json'}", highlight=False)
    return 0


def provision_tiers(tiers: Sequence[str] = (), *, check: bool = False) -> int:
    """`gates provision`: install the tiers' system tools (all tiers by default) and list them;
    1 under CI=true when any is short. A bad tier or table exits 2 with the reason on stderr."""
    from gates.provision import ProvisionSpec, ensure, is_ci

    try:
        spec = ProvisionSpec.load()
        chosen = list(tiers) or sorted(spec.tiers)
        reports = [ensure(t, install=False if check else None, spec=spec) for t in chosen]
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_REFUSED) from error
    short = False
    for found in reports:
        for tool in found.tools.values():
            print(f"{found.tier}: {tool.name} {tool.path} ({tool.version or 'version unknown'})")
        if found.installed:
            print(f"{found.tier}: installed {' '.join(found.installed)}")
        if not found.ok:
            short = True
            verdict = "fails under CI=true" if is_ci() else "will be skipped"
            print(f"{found.tier}: {found.reason('missing')} — the tier {verdict}")
    return EXIT_FAILED if short and is_ci() else 0


def init_project(*, dry_run: bool = False, root: Path | None = None) -> int:
    """`gates init`: print the choices and the table; write them unless `dry_run`."""
    from gates import init as starter
    from gates.project import PYPROJECT

    root = root or Path.cwd()
    try:
        if not (root / PYPROJECT).is_file():
            raise ConfigError(f"no {PYPROJECT} in {root}: run gates init at the project's root")
        chosen = starter.survey(root)
    except GatesError as error:
        print(f"error: {error}")
        return EXIT_REFUSED
    print("gates init chose:")
    for reason in chosen.reasons:
        print(f"  - {reason}")
    print(chosen.toml())
    if dry_run:
        print("(dry run: nothing written)")
        return 0
    for change in starter.write(root, chosen):
        print(f"wrote {change}")
    print("next: gates run   (then: gates status, gates report)")
    return 0


# ---------------------------------------------------------------- the command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gates",
        description="Phased gates over a project's test tiers, with a recorded history, a "
        "benchmark gate and safe rollback. The pipeline is [tool.gates] of pyproject.toml.",
    )
    parser.add_argument("--version", action="version", version=f"gates {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run the phased gates; stop at the first failing gate")
    run.add_argument("--only", default="", help="comma-separated phases, e.g. deps,static,unit")
    run.add_argument("--from", dest="start", default="", help="resume at this phase")
    run.add_argument("--keep-going", action="store_true", help="run every gate after a failure")
    run.add_argument(
        "--baseline", default="", help="commit the bench gate compares with (never the candidate)"
    )
    run.add_argument(
        "--all-benchmarks",
        action="store_true",
        help="the bench gate runs every benchmark, not only those the change can affect",
    )
    run.add_argument(
        "--github",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="report commit statuses and a PR comment (default: when GITHUB_TOKEN, "
        "GITHUB_REPOSITORY and GITHUB_SHA are set)",
    )
    run.add_argument(
        "--shard",
        default="",
        metavar="I/N",
        help="run shard I of N: that part of every test gate, and (shard 1) the other gates; "
        "results stay in .gates/runs/<run>/shard-I-of-N for gates merge",
    )
    run.add_argument(
        "--shards", default="", metavar="N", help="run N shards side by side here, then merge"
    )
    run.add_argument("--run-id", default="", help="the run's id (CI: the same for every shard)")
    run.add_argument(
        "--cores", type=int, default=None, help="cores this run may use (default: all)"
    )
    run.add_argument(
        "--nox-envdir", default="", help="nox's --envdir for the session gates (default .nox)"
    )

    merge_ = commands.add_parser(
        "merge", help="merge the results of every shard of a run into one verdict"
    )
    merge_.add_argument(
        "directories",
        nargs="+",
        metavar="DIR",
        help="one shard's results (.gates/runs/<run>/shard-I-of-N), or a directory above some",
    )
    merge_.add_argument(
        "--output", default="", help="the merged JUnit files (default: .gates/runs/<run>/merged)"
    )
    merge_.add_argument(
        "--github",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="report commit statuses and a PR comment, as gates run does",
    )

    matrix = commands.add_parser(
        "matrix",
        help="the CI job matrix (JSON) over the pipeline's tiers and their shards",
    )
    matrix.add_argument(
        "--shards", type=int, default=2, metavar="N", help="shards per tier (default 2)"
    )

    durations = commands.add_parser(
        "durations", help="time every test of tiers serially: the weights of the shards' split"
    )
    durations.add_argument(
        "tiers", nargs="*", help="tiers (default: those of the pipeline's test gates)"
    )

    commands.add_parser("status", help="the last outcome per gate and the last green commit")

    back = commands.add_parser(
        "rollback", help="save all work, bring the tree back to the last green commit"
    )
    back.add_argument("--to", default="", help="commit to roll back to (default: last green)")
    back.add_argument(
        "--path", dest="paths", action="append", default=[], help="only this path (repeatable)"
    )

    up = commands.add_parser(
        "upgrade", help="upgrade the lock and keep it only if every gate passes"
    )
    up.add_argument("--package", default="", help="upgrade only this package")
    up.add_argument("--commit", action="store_true", help="commit the upgrade when gates pass")
    up.add_argument("--only", default="", help="comma-separated phases to run after upgrading")

    report_ = commands.add_parser("report", help="write the history as an HTML page with charts")
    report_.add_argument("--output", default="", help="directory (default: .gates/report)")
    report_.add_argument("--commits", type=int, default=20, help="commits in the outcome grid")

    soak_ = commands.add_parser(
        "soak", help="run a tier, or every tier, N times; list every flaky test"
    )
    soak_.add_argument(
        "--tier", default="", help="a tier of [tool.gates.tiers] with tests and a session, or all"
    )
    soak_.add_argument("--runs", type=int, default=10, help="how many runs (default 10)")
    soak_.add_argument(
        "words",
        nargs="*",
        metavar="[TIER] PYTEST_ARGS",
        help="the tier (without --tier), then extra pytest arguments after --",
    )

    calibrate = commands.add_parser(
        "calibrate", help="measure the bench gate's false-alarm and detection rates here"
    )
    calibrate.add_argument("--runs", type=int, default=10, help="pairs of comparisons")
    calibrate.add_argument(
        "--factors",
        default="",
        help="slowdowns to inject, comma-separated (default 1.05,1.1,1.25)",
    )
    calibrate.add_argument(
        "--metric",
        choices=["both", "wall", "instructions"],
        default="both",
        help="which metric to calibrate (instructions: only the callgrind runs; default both)",
    )
    calibrate.add_argument("--select", default="", help="benchmarks, as pytest arguments")

    provision_ = commands.add_parser("provision", help="install the system tools of tiers")
    provision_.add_argument("tiers", nargs="*", help="tiers (default: every tier with tools)")
    provision_.add_argument("--check", action="store_true", help="only look; install nothing")

    init = commands.add_parser(
        "init", help="write a starter [tool.gates] for this project and say why"
    )
    init.add_argument("--dry-run", action="store_true", help="print it; write nothing")
    return parser


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, `kill`) unwinds like Ctrl-C does, so what a gate started is
    ended and nothing outlives the run; the exit status is then 128 + 15. Only in the main
    thread, the one that may set signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `gates` subcommand; returns its exit status (0 ok, 1 failed, 2 refused)."""
    args = _parser().parse_args(argv)
    with _terminate_as_exit():
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "run":
        return gates(
            only=args.only or None,
            start=args.start or None,
            keep_going=args.keep_going,
            github=args.github,
            baseline=args.baseline or None,
            shard=args.shard or None,
            shards=args.shards or None,
            run_id=args.run_id or None,
            cores=args.cores,
            nox_envdir=args.nox_envdir or None,
            all_benchmarks=args.all_benchmarks,
        )
    if command == "merge":
        return merge_shards(
            [Path(d) for d in args.directories],
            output=Path(args.output).resolve() if args.output else None,
            github=args.github,
        )
    if command == "matrix":
        return ci_matrix(args.shards)
    if command == "durations":
        return refresh_durations(args.tiers)
    if command == "status":
        return status()
    if command == "rollback":
        return roll_back(to=args.to or None, paths=args.paths)
    if command == "upgrade":
        return upgrade_dependencies(
            package=args.package or None, commit=args.commit, only=args.only or None
        )
    if command == "report":
        return report(output=args.output or None, commits=args.commits)
    if command == "soak":
        try:
            tier, pytest_args = soak_arguments(args.tier, args.words)
        except GatesError as error:
            print(f"error: {error}")
            return EXIT_REFUSED
        return soak_tier(tier, args.runs, pytest_args)
    if command == "calibrate":
        return calibrate(args.runs, args.factors, shlex.split(args.select), args.metric)
    if command == "provision":
        return provision_tiers(args.tiers, check=args.check)
    return init_project(dry_run=args.dry_run)
