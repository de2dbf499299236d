"""The commands behind the invoke tasks, end to end in small real projects."""

from __future__ import annotations

import argparse
import ast
import io
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gates_testing import PY, failing_gate, git, ok_gate, pipeline_toml, toml_list
from rich.console import Console

from gates import cli
from gates.changes.upgrade import UpgradeResult, VersionChange
from gates.engine.history import History
from gates.engine.runner import Run

ROOT = Path(__file__).resolve().parents[2]


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=300), out


@pytest.fixture
def project(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, placeholder_charts: None
) -> Path:
    """A project whose `gates` runs end with a report of placeholder charts (see the fixture)."""
    flag = "import pathlib, sys; sys.exit(pathlib.Path('FAIL').exists())"
    root = make_project(
        pipeline_toml(
            {
                "deps": [ok_gate("lock")],
                "unit": [f"name = 'tests', run = {toml_list([PY, '-c', flag])}"],
                "later": [failing_gate("never-green")],
            },
            green=["deps", "unit"],
        ),
        extra={"README.md": "hello\n"},
    )
    monkeypatch.chdir(root)
    for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_SHA"):
        monkeypatch.delenv(name, raising=False)
    return root


def test_gates_exit_status_follows_the_run(project: Path) -> None:
    assert cli.gates(only="deps,unit") == 0
    assert cli.gates() == cli.EXIT_FAILED  # 'later' fails
    assert cli.gates(only="nope") == cli.EXIT_REFUSED
    records = list(History(project / ".gates/history.jsonl").records())
    assert [(r.phase, r.outcome) for r in records] == [
        ("deps", "passed"),
        ("unit", "passed"),
        ("deps", "passed"),
        ("unit", "passed"),
        ("later", "failed"),
    ]


def test_status_prints_the_green_commit(project: Path) -> None:
    screen, out = console()
    assert cli.status(console=screen) == 0
    assert "No green commit yet" in out.getvalue()
    cli.gates(only="deps,unit")
    screen, out = console()
    cli.status(console=screen)
    head = git(project, "rev-parse", "HEAD").strip()[:12]
    assert f"Phase 1 Gate 0 (unit/tests): PASSED (commit {head}" in out.getvalue()
    assert f"Last green commit (phases deps, unit): {head}" in out.getvalue()


def test_status_and_rollback_outside_a_project_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()  # tests may run inside a checkout; the search stops here
    monkeypatch.chdir(tmp_path)
    screen, out = console()
    assert cli.status(console=screen) == cli.EXIT_REFUSED
    assert cli.roll_back(console=screen) == cli.EXIT_REFUSED
    assert cli.upgrade_dependencies(console=screen) == cli.EXIT_REFUSED
    assert cli.gates() == cli.EXIT_REFUSED
    assert "no pyproject.toml with a [tool.gates] table" in out.getvalue()


def test_failing_gate_then_rollback_then_restore(project: Path) -> None:
    assert cli.gates(only="deps,unit") == 0
    (project / "FAIL").write_text("makes the unit gate fail\n")
    (project / "README.md").write_text("edited\n")
    git(project, "add", "README.md")
    assert cli.gates(only="unit") == cli.EXIT_FAILED
    screen, out = console()
    assert cli.roll_back(console=screen) == 0
    text = out.getvalue()
    assert "Rolled back the whole tree to" in text
    assert not (project / "FAIL").exists()
    assert (project / "README.md").read_text() == "hello\n"
    command = text.split("To bring it back exactly as it was, run:\n")[1].splitlines()[0].strip()
    subprocess.run(command, shell=True, check=True)  # noqa: S602 - as a person pastes it
    assert (project / "FAIL").read_text() == "makes the unit gate fail\n"
    assert git(project, "status", "--porcelain").splitlines() == ["M  README.md", "?? FAIL"]


def test_rollback_refusal_is_explained(project: Path) -> None:
    screen, out = console()
    assert cli.roll_back(to="no-such-commit", console=screen) == cli.EXIT_REFUSED
    assert "rollback refused: unknown target 'no-such-commit'" in out.getvalue()


def test_upgrade_refuses_without_a_lock(project: Path) -> None:
    screen, out = console()
    assert cli.upgrade_dependencies(console=screen) == cli.EXIT_REFUSED
    assert "uv.lock is missing" in out.getvalue()


def test_github_flag_without_the_variables_warns(project: Path) -> None:
    screen, out = console()
    run = cli.execute(project, only="deps", github=True, console=screen)
    assert run.passed
    assert "--github needs GITHUB_TOKEN, GITHUB_REPOSITORY and GITHUB_SHA" in out.getvalue()


def test_github_reporting_turns_on_from_the_environment(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/hangar")
    monkeypatch.setenv("GITHUB_SHA", "abc")
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # nothing listens: it must warn
    from github import Github

    from gates.reporting import github

    monkeypatch.setattr(
        github,
        "make_client",
        lambda target, paced=True: Github(
            base_url=target.api_url,
            retry=None,
            timeout=2,
            seconds_between_requests=None,
            seconds_between_writes=None,
        ),
    )
    screen, out = console()
    run = cli.execute(project, only="deps", console=screen)
    assert run.passed
    assert "GitHub reporting failed (status gates/deps)" in out.getvalue()
    screen, out = console()
    cli.execute(project, only="deps", github=False, console=screen)
    assert "GitHub" not in out.getvalue()


def test_tasks_wrap_the_gates_command_one_to_one() -> None:
    """Every invoke task of tasks.py that wraps gates names its `gates` subcommand, and each
    subcommand but `init` (once per project) and `matrix` (the CI workflow's) has its task
    (read, not imported: the test environment need not have invoke)."""
    tree = ast.parse((ROOT / "tasks.py").read_text())
    wrapped = {
        node.name: call.args[0].value
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "_gates"
        and call.args
        and isinstance(call.args[0], ast.Constant)
    }
    [action] = [a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction)]
    subcommands = set(action.choices)
    assert wrapped == {
        "gates": "run",
        "status": "status",
        "rollback": "rollback",
        "upgrade": "upgrade",
        "report": "report",
        "soak": "soak",
        "calibrate": "calibrate",
        "merge": "merge",
        "durations": "durations",
        "_provision_system_packages": "provision",
    }
    assert set(wrapped.values()) | {"init", "matrix"} == subcommands


def test_the_command_line_helps_and_refuses_clearly(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as helped:
        cli.main(["--help"])
    assert helped.value.code == 0
    assert "rollback" in capsys.readouterr().out
    with pytest.raises(SystemExit) as wrong:
        cli.main(["launch"])
    assert wrong.value.code == 2
    assert "invalid choice: 'launch'" in capsys.readouterr().err
    monkeypatch.chdir(project)
    assert cli.main(["run", "--only", "nope"]) == 2
    assert "unknown phase 'nope'; phases are: deps, unit, later" in capsys.readouterr().out
    assert cli.main(["run", "--only", "deps"]) == 0


def fake_upgrade(result: UpgradeResult) -> Callable[..., UpgradeResult]:
    def upgrade(root: Path, *, run_gates: Callable[[], Run], **kwargs: object) -> UpgradeResult:
        if result.changes:
            result.run = run_gates()
        return result

    return upgrade


CHANGES = [VersionChange("rich", "13.0", "14.0")]


@pytest.mark.parametrize(
    ("result", "status", "says"),
    [
        (UpgradeResult(), 0, "Nothing to upgrade"),
        (
            UpgradeResult(CHANGES, staged=True),
            0,
            "upgrade is staged (commit it when ready):\n  rich 13.0 → 14.0",
        ),
        (UpgradeResult(CHANGES, staged=True, commit="c" * 40), 0, "committed as cccccccccccc"),
        (
            UpgradeResult(CHANGES, restored=True, sync_problem="boom"),
            1,
            "gate later/never-green failed",
        ),
    ],
)
def test_upgrade_reports_the_outcome(
    project: Path, monkeypatch: pytest.MonkeyPatch, result: UpgradeResult, status: int, says: str
) -> None:
    monkeypatch.setattr(cli, "upgrade", fake_upgrade(result))
    screen, out = console()
    only = "deps,unit" if status == 0 else None  # 'later' always fails
    assert cli.upgrade_dependencies(only=only, console=screen) == status
    assert says in out.getvalue()


def test_sigterm_ends_the_run_and_what_its_gate_started(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    """A cancelled CI job gets SIGTERM: the run ends with 143 and takes its gate's processes
    with it, as on Ctrl-C, instead of leaving them running."""
    pid_file = tmp_path / "gate.pid"
    sleeper = (
        "import os, pathlib, time; "
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(120)"
    )
    gate = f"name = 'sleep', run = {toml_list([PY, '-c', sleeper])}"
    root = make_project(pipeline_toml({"slow": [gate]}))
    run = subprocess.Popen(
        [PY, "-m", "gates", "run"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text() != "", "the gate to start")
        gate_pid = int(pid_file.read_text())
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=30) == 128 + signal.SIGTERM
        wait_for(lambda: not alive(gate_pid), f"the gate's process {gate_pid} to end")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if run.stdout is not None:
            run.stdout.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
