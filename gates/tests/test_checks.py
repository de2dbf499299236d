from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gates.checks import CHECKS
from gates.checks.collect import pytest_command
from gates.engine.execution import GateContext, GateResult
from gates.engine.pipeline import Gate
from gates.engine.runner import run_gate
from gates.provision import ProvisionReport, Tool
from gates.pytest_plugins import collection


class FakeShell:
    """Answers pytest commands: writes a collection report, advances a fake clock."""

    def __init__(
        self,
        items: dict[str, list[str]] | None = None,
        status: int = 0,
        seconds: Mapping[str, float] | None = None,
    ) -> None:
        self.items = items or {}
        self.status = status
        self.seconds = seconds or {}
        self.now = 0.0
        self.calls: list[list[str]] = []
        self.environs: list[Mapping[str, str]] = []

    def clock(self) -> float:
        return self.now

    def __call__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        log: Path,
        env: Mapping[str, str],
        timeout: float | None,
    ) -> int:
        self.calls.append(list(argv))
        self.environs.append(env)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            out.write("E   ImportError: no module named nothing\n")
        if collection.REPORT_VARIABLE in env:
            Path(env[collection.REPORT_VARIABLE]).write_text(json.dumps(self.items))
        workers = argv[argv.index("-n") + 1] if "-n" in argv else "serial"
        self.now += self.seconds.get(workers, 1.0)
        return self.status


TIERS_TOML = """
[tool.gates.tiers.unit]
dirs = ["tests"]
groups = ["test"]
[tool.gates.tiers.e2e]
dirs = ["e2e"]
groups = ["e2e"]
[tool.gates.tiers.integration]
dirs = ["integration"]
groups = ["integration"]
[tool.gates.tiers.bench]
dirs = ["bench"]
groups = ["bench"]
[tool.gates.tiers.lint]
groups = ["lint"]
"""


def context(tmp_path: Path, shell: FakeShell, cores: int = 2, **kw: Any) -> GateContext:
    """A project whose tiers are unit (tests/), e2e, integration, bench and tool-only lint."""
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "pyproject.toml").write_text(TIERS_TOML)
    return GateContext(
        root=tmp_path,
        run_dir=tmp_path / "run",
        shell=shell,
        cpu_count=cores,
        clock=shell.clock,
        **kw,
    )


def check(name: str, **options: Any) -> Gate:
    return Gate("p", name, "check", name, options={"dirs": ["tests", "absent"], **options})


def test_pytest_runs_through_uv_with_the_given_groups_once_each() -> None:
    assert pytest_command(["test", "e2e", "test"], "-q") == [
        "uv",
        "run",
        "--locked",
        "--group=test",
        "--group=e2e",
        "pytest",
        "-q",
    ]


def test_collect_counts_and_only_names_existing_dirs(tmp_path: Path) -> None:
    shell = FakeShell({"tests/test_a.py::t": ["unit"], "tests/test_a.py::u": ["unit"]})
    result = run_gate(check("collect"), context(tmp_path, shell), CHECKS)
    assert result.outcome == "passed"
    assert result.summary == "2 tests collect"
    argv = shell.calls[0]
    # 'absent' does not exist and is left out: pytest would reject it.
    assert argv[-6:] == [
        "--collect-only",
        "-q",
        "--strict-markers",
        "-p",
        "gates_collection",
        "tests",
    ]
    # The plugin loads from the run's directory: the project's environment needs no gates.
    plugins = tmp_path / "run" / "pytest-plugins"
    assert (plugins / "gates_collection.py").read_text() == Path(collection.__file__).read_text()
    assert shell.environs[0]["PYTHONPATH"].split(os.pathsep)[0] == str(plugins)


def test_collect_defaults_to_every_tiers_dirs_and_groups(tmp_path: Path) -> None:
    shell = FakeShell({"tests/test_a.py::t": ["unit"]})
    ctx = context(tmp_path, shell)
    (tmp_path / "e2e").mkdir()
    run_gate(Gate("p", "collect", "check", "collect"), ctx, CHECKS)
    argv = shell.calls[0]
    groups = [a for a in argv if a.startswith("--group=")]
    assert groups == ["--group=test", "--group=e2e", "--group=integration", "--group=bench"]
    assert argv[-2:] == ["tests", "e2e"]  # the tool-only lint tier has no tests to collect


def test_collect_failure_shows_pytests_words(tmp_path: Path) -> None:
    result = run_gate(check("collect"), context(tmp_path, FakeShell(status=4)), CHECKS)
    assert result.outcome == "failed"
    assert result.summary == "collection failed (pytest exit status 4)"
    assert "ImportError" in result.key_output[-1]
    assert result.next_command == "gates run --only p"


def test_categorization_counts_tests_per_tier(tmp_path: Path) -> None:
    items = {"a": ["unit"], "b": ["unit", "slow"], "c": ["e2e"], "d": ["integration"]}
    result = run_gate(check("categorization"), context(tmp_path, FakeShell(items)), CHECKS)
    assert result.outcome == "passed"
    assert result.summary == "unit 2, e2e 1, integration 1, bench 0"
    assert result.metrics["per_tier"] == {"unit": 2, "e2e": 1, "integration": 1, "bench": 0}


def test_categorization_fails_on_none_or_two_tiers(tmp_path: Path) -> None:
    items = {"a": ["unit"], "b": ["slow"], "c": ["e2e", "unit"]}
    result = run_gate(check("categorization"), context(tmp_path, FakeShell(items)), CHECKS)
    assert result.outcome == "failed"
    assert result.key_output == [
        "b: tier markers none (need exactly one of ['unit', 'e2e', 'integration', 'bench'])",
        "c: tier markers ['e2e', 'unit'] (need exactly one of "
        "['unit', 'e2e', 'integration', 'bench'])",
    ]
    broken = run_gate(check("categorization"), context(tmp_path, FakeShell(status=2)), CHECKS)
    assert broken.summary == "collection failed (pytest exit status 2)"


def test_collect_and_categorization_share_one_collection_run(tmp_path: Path) -> None:
    shell = FakeShell({"tests/test_a.py::t": ["unit"]})
    ctx = context(tmp_path, shell)
    assert run_gate(check("collect"), ctx, CHECKS).summary == "1 tests collect"
    assert (
        run_gate(check("categorization"), ctx, CHECKS).summary
        == "unit 1, e2e 0, integration 0, bench 0"
    )
    assert len(shell.calls) == 1
    # Other directories are another collection.
    run_gate(check("categorization", dirs=["tests", "more"]), ctx, CHECKS)
    (tmp_path / "more").mkdir()
    run_gate(check("categorization", dirs=["tests", "more"]), ctx, CHECKS)
    assert len(shell.calls) == 2


def test_collection_plugin_writes_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def item(nodeid: str, *names: str) -> SimpleNamespace:
        marks = [SimpleNamespace(name=n) for n in names]
        return SimpleNamespace(nodeid=nodeid, iter_markers=lambda: iter(marks))

    session: Any = SimpleNamespace(items=[item("t::a", "unit", "unit"), item("t::b")])
    monkeypatch.delenv(collection.REPORT_VARIABLE, raising=False)
    collection.pytest_collection_finish(session)  # no variable: writes nothing
    target = tmp_path / "c.json"
    monkeypatch.setenv(collection.REPORT_VARIABLE, str(target))
    collection.pytest_collection_finish(session)
    assert json.loads(target.read_text()) == {"t::a": ["unit"], "t::b": []}


def write_timing(
    path: Path,
    workers: int,
    durations: Sequence[float],
    *,
    startup: float,
    others_cpu_s: float | None = None,
) -> None:
    """What gates.pytest_plugins.timing writes: tests back to back on each worker after
    `startup` seconds; with `others_cpu_s`, the CPU figures of a machine on which other work
    used that much CPU meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = ["main"] if workers == 0 else [f"gw{i}" for i in range(workers)]
    clocks = dict.fromkeys(names, 100.0 + startup)
    tests = []
    for index, duration in enumerate(durations):
        worker = names[index % len(names)]
        start = clocks[worker]
        clocks[worker] = start + duration
        tests.append(
            {
                "nodeid": f"t.py::test_{index}",
                "worker": worker,
                "start": start,
                "stop": start + duration,
                "duration": duration,
                "outcome": "passed",
            }
        )
    document = {
        "format": 1,
        "session_start": 100.0,
        "session_finish": max(clocks.values()) + 0.1,
        "workers": workers,
        "tests": tests,
    }
    if others_cpu_s is not None:
        own = sum(durations)
        document.update(session_cpu_s=own, machine_cpu_s=own + others_cpu_s, cores=2)
    path.write_text(json.dumps(document))


def timed_phase(
    tmp_path: Path,
    *,
    parallel_startup: float,
    cores: int = 2,
    others_cpu_s: tuple[float, float] | None = None,
) -> GateContext:
    """A context in which the phase's serial and isolation gates ran 40 tests of 0.25 s (and
    other work used `others_cpu_s` CPU seconds during each run)."""
    ctx = context(tmp_path, FakeShell(), cores=cores)
    durations = [0.25] * 40
    serial_others, parallel_others = others_cpu_s or (None, None)
    write_timing(ctx.timing_for("p/serial"), 0, durations, startup=0.5, others_cpu_s=serial_others)
    write_timing(
        ctx.timing_for("p/isolation"),
        2,
        durations,
        startup=parallel_startup,
        others_cpu_s=parallel_others,
    )
    return ctx


def test_speedup_judges_the_two_earlier_runs_without_running_the_tests(tmp_path: Path) -> None:
    ctx = timed_phase(tmp_path, parallel_startup=1.0)
    ctx.results["p/serial"] = GateResult("passed", duration_s=12.0)
    ctx.results["p/isolation"] = GateResult("passed", duration_s=8.0)
    result = run_gate(check("speedup"), ctx, CHECKS)
    assert result.outcome == "passed", result.key_output
    assert ctx.shell.calls == []  # type: ignore[attr-defined]
    assert result.metrics["serial_s"] == 10.6
    assert result.metrics["parallel_s"] == {"2": 6.1}
    assert result.metrics["best_workers"] == 2
    assert result.metrics["speedup"] == round(10.6 / 6.1, 3)
    assert result.metrics["min_speedup"] == result.metrics["required"]
    assert result.metrics["phase_cost"] == round(20.0 / (10.6 + 6.1), 2)
    assert any(
        "took 1.20x the wall time of the two pytest runs" in line for line in result.key_output
    )


def test_speedup_fails_naming_worker_start_up_that_eats_the_gain(tmp_path: Path) -> None:
    result = run_gate(check("speedup"), timed_phase(tmp_path, parallel_startup=9.0), CHECKS)
    assert result.outcome == "failed"
    assert "start-up" in result.summary


def test_a_numeric_min_speedup_means_that_number(tmp_path: Path) -> None:
    ctx = timed_phase(tmp_path, parallel_startup=1.0)
    assert run_gate(check("speedup", min_speedup=1.5), ctx, CHECKS).outcome == "passed"
    assert run_gate(check("speedup", min_speedup=1.8), ctx, CHECKS).outcome == "failed"


def test_speedup_without_the_earlier_runs_timings_fails_saying_which(tmp_path: Path) -> None:
    ctx = context(tmp_path, FakeShell())
    result = run_gate(check("speedup", serial="s1"), ctx, CHECKS)
    assert result.outcome == "failed"
    assert result.summary.startswith("no timings of gate p/s1 in this run")


def test_speedup_is_not_judged_when_other_work_took_the_cores(tmp_path: Path) -> None:
    # The isolation run took 14.1 s on 2 cores (28.2 core-seconds); other work used 12 of them.
    (tmp_path / "busy").mkdir()
    busy = timed_phase(tmp_path / "busy", parallel_startup=9.0, others_cpu_s=(0.0, 12.0))
    result = run_gate(check("speedup"), busy, CHECKS)
    assert result.outcome == "skipped"
    assert result.summary.startswith(
        "not judged: other work took 43% of the machine's 2 cores during the parallel run"
    ), result.summary
    # A little other work (up to 25 % of the machine) leaves the judgement as it was: failed.
    (tmp_path / "quiet").mkdir()
    quiet = timed_phase(tmp_path / "quiet", parallel_startup=9.0, others_cpu_s=(0.5, 1.0))
    assert run_gate(check("speedup"), quiet, CHECKS).outcome == "failed"


def test_speedup_is_skipped_on_one_core(tmp_path: Path) -> None:
    result = run_gate(check("speedup"), context(tmp_path, FakeShell(), cores=1), CHECKS)
    assert result.outcome == "skipped"
    assert result.summary == "1 core: nothing to run in parallel"


def test_provision_check_records_versions_and_names_short_tiers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def project(ctx: GateContext) -> GateContext:
        (tmp_path / "pyproject.toml").write_text(
            "[tool.gates.tiers.e2e]\ntools = { chromium = 'chromium' }\n"
            "[tool.gates.tiers.integration]\ntools = { qemu-img = 'qemu-utils' }\n"
        )
        return ctx

    def provisioner(tier: str) -> ProvisionReport:
        if tier == "e2e":
            return ProvisionReport(tier, tools={"chromium": Tool("chromium", Path("/c"), "C 1")})
        return ProvisionReport(
            tier, missing=["qemu-img"], packages=["qemu-utils"], not_installed_because="no apt"
        )

    monkeypatch.delenv("CI", raising=False)
    ctx = project(context(tmp_path, FakeShell(), provisioner=provisioner, environ={}))
    result = run_gate(Gate("deps", "provision", "check", "provision"), ctx, CHECKS)
    assert result.outcome == "passed"  # the tier itself skips or fails, not the deps phase
    assert result.summary == "tiers short of tools: integration"
    assert result.metrics["e2e"]["tools"] == {"chromium": {"path": "/c", "version": "C 1"}}
    assert result.key_output == [
        "e2e: chromium C 1 at /c",
        "tier integration will be skipped: missing: qemu-img not found (no apt); "
        "install with: sudo apt-get install -y qemu-utils",
    ]
    ci = project(context(tmp_path, FakeShell(), provisioner=provisioner, environ={"CI": "true"}))
    gate = Gate("deps", "provision", "check", "provision", options={"tiers": ["integration"]})
    assert "will fail (CI=true)" in run_gate(gate, ci, CHECKS).key_output[0]
    everything = run_gate(
        Gate("deps", "provision", "check", "provision", options={"tiers": ["e2e"]}), ci, CHECKS
    )
    assert everything.summary == "all tools found for e2e"
