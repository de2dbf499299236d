from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gates import collection
from gates.checks import min_speedup_for, pytest_command, worker_counts
from gates.execution import GateContext
from gates.pipeline import Gate
from gates.provision import ProvisionReport, Tool
from gates.runner import run_gate


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
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            out.write("E   ImportError: no module named nothing\n")
        if collection.REPORT_VARIABLE in env:
            Path(env[collection.REPORT_VARIABLE]).write_text(json.dumps(self.items))
        workers = argv[argv.index("-n") + 1] if "-n" in argv else "serial"
        self.now += self.seconds.get(workers, 1.0)
        return self.status


def context(tmp_path: Path, shell: FakeShell, cores: int = 2, **kw: Any) -> GateContext:
    (tmp_path / "tests").mkdir(exist_ok=True)
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


def test_thresholds_derive_from_the_cores() -> None:
    assert min_speedup_for(2) == 1.2
    assert min_speedup_for(4) == 1.6
    assert min_speedup_for(64) == 4.0
    assert worker_counts(1) == []
    assert worker_counts(2) == [2]
    assert worker_counts(8) == [4, 8]


def test_pytest_runs_through_uv_with_the_gates_groups() -> None:
    gate = check("collect", groups=["e2e", "test"])
    assert pytest_command(gate, "-q") == [
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
    result = run_gate(check("collect"), context(tmp_path, shell))
    assert result.outcome == "passed"
    assert result.summary == "2 tests collect"
    argv = shell.calls[0]
    # 'absent' does not exist and is left out: pytest would reject it.
    assert argv[-6:] == [
        "--collect-only",
        "-q",
        "--strict-markers",
        "-p",
        "gates.collection",
        "tests",
    ]


def test_collect_failure_shows_pytests_words(tmp_path: Path) -> None:
    result = run_gate(check("collect"), context(tmp_path, FakeShell(status=4)))
    assert result.outcome == "failed"
    assert result.summary == "collection failed (pytest exit status 4)"
    assert "ImportError" in result.key_output[-1]
    assert result.next_command == "uv run invoke gates --only p"


def test_categorization_counts_tests_per_tier(tmp_path: Path) -> None:
    items = {"a": ["unit"], "b": ["unit", "slow"], "c": ["e2e"], "d": ["integration"]}
    result = run_gate(check("categorization"), context(tmp_path, FakeShell(items)))
    assert result.outcome == "passed"
    assert result.summary == "unit 2, e2e 1, integration 1, bench 0"
    assert result.metrics["per_tier"] == {"unit": 2, "e2e": 1, "integration": 1, "bench": 0}


def test_categorization_fails_on_none_or_two_tiers(tmp_path: Path) -> None:
    items = {"a": ["unit"], "b": ["slow"], "c": ["e2e", "unit"]}
    result = run_gate(check("categorization"), context(tmp_path, FakeShell(items)))
    assert result.outcome == "failed"
    assert result.key_output == [
        "b: tier markers none (need exactly one of ['unit', 'e2e', 'integration', 'bench'])",
        "c: tier markers ['e2e', 'unit'] (need exactly one of "
        "['unit', 'e2e', 'integration', 'bench'])",
    ]
    broken = run_gate(check("categorization"), context(tmp_path, FakeShell(status=2)))
    assert broken.summary == "collection failed (pytest exit status 2)"


def test_collect_and_categorization_share_one_collection_run(tmp_path: Path) -> None:
    shell = FakeShell({"tests/test_a.py::t": ["unit"]})
    ctx = context(tmp_path, shell)
    assert run_gate(check("collect"), ctx).summary == "1 tests collect"
    assert run_gate(check("categorization"), ctx).summary == "unit 1, e2e 0, integration 0, bench 0"
    assert len(shell.calls) == 1
    # Other directories are another collection.
    run_gate(check("categorization", dirs=["tests", "more"]), ctx)
    (tmp_path / "more").mkdir()
    run_gate(check("categorization", dirs=["tests", "more"]), ctx)
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


def test_speedup_records_speedup_and_best_worker_count(tmp_path: Path) -> None:
    shell = FakeShell(seconds={"serial": 10.0, "2": 6.0, "4": 4.0})
    result = run_gate(check("speedup"), context(tmp_path, shell, cores=4))
    assert result.outcome == "passed"
    assert result.metrics == {
        "cores": 4,
        "serial_s": 10.0,
        "parallel_s": {"2": 6.0, "4": 4.0},
        "speedup": 2.5,
        "best_workers": 4,
        "min_speedup": 1.6,
    }
    assert result.summary == "speedup 2.5x with 4 workers (need 1.6x on 4 cores)"
    assert [call[call.index("-q") :] for call in shell.calls] == [
        ["-q", "-p", "no:randomly", "tests"],
        ["-q", "-p", "no:randomly", "-n", "2", "tests"],
        ["-q", "-p", "no:randomly", "-n", "4", "tests"],
    ]


def test_speedup_below_threshold_fails(tmp_path: Path) -> None:
    shell = FakeShell(seconds={"serial": 10.0, "2": 9.0})
    result = run_gate(check("speedup"), context(tmp_path, shell))
    assert result.outcome == "failed"
    assert result.metrics["speedup"] == 1.11
    assert result.key_output[0] == "speedup 1.11x with 2 workers (need 1.2x on 2 cores)"


def test_speedup_with_explicit_threshold_and_workers(tmp_path: Path) -> None:
    shell = FakeShell(seconds={"serial": 10.0, "3": 9.0})
    gate = check("speedup", min_speedup=1.1, workers=[3])
    assert run_gate(gate, context(tmp_path, shell, cores=8)).metrics["best_workers"] == 3


def test_speedup_is_skipped_on_one_core(tmp_path: Path) -> None:
    result = run_gate(check("speedup"), context(tmp_path, FakeShell(), cores=1))
    assert result.outcome == "skipped"
    assert result.summary == "1 core: nothing to run in parallel"


@pytest.mark.parametrize(("failing_at", "summary"), [(1, "the serial run"), (2, "2 workers")])
def test_speedup_fails_when_the_tests_fail(tmp_path: Path, failing_at: int, summary: str) -> None:
    shell = FakeShell()
    original = shell.__call__

    def flaky(argv: Sequence[str], **kwargs: Any) -> int:
        original(argv, **kwargs)
        return 1 if len(shell.calls) == failing_at else 0

    ctx = context(tmp_path, shell)
    ctx.shell = flaky
    result = run_gate(check("speedup"), ctx)
    assert result.outcome == "failed"
    assert summary in result.summary


def test_provision_check_records_versions_and_names_short_tiers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.gates.provision.tiers.e2e]\nchromium = 'chromium'\n"
        "[tool.gates.provision.tiers.integration]\nqemu-img = 'qemu-utils'\n"
    )

    def provisioner(tier: str) -> ProvisionReport:
        if tier == "e2e":
            return ProvisionReport(tier, tools={"chromium": Tool("chromium", Path("/c"), "C 1")})
        return ProvisionReport(
            tier, missing=["qemu-img"], packages=["qemu-utils"], not_installed_because="no apt"
        )

    monkeypatch.delenv("CI", raising=False)
    ctx = context(tmp_path, FakeShell(), provisioner=provisioner, environ={})
    result = run_gate(Gate("deps", "provision", "check", "provision"), ctx)
    assert result.outcome == "passed"  # the tier itself skips or fails, not the deps phase
    assert result.summary == "tiers short of tools: integration"
    assert result.metrics["e2e"]["tools"] == {"chromium": {"path": "/c", "version": "C 1"}}
    assert result.key_output == [
        "e2e: chromium C 1 at /c",
        "tier integration will be skipped: missing: qemu-img not found (no apt); "
        "install with: sudo apt-get install -y qemu-utils",
    ]
    ci = context(tmp_path, FakeShell(), provisioner=provisioner, environ={"CI": "true"})
    gate = Gate("deps", "provision", "check", "provision", options={"tiers": ["integration"]})
    assert "will fail (CI=true)" in run_gate(gate, ci).key_output[0]
    everything = run_gate(
        Gate("deps", "provision", "check", "provision", options={"tiers": ["e2e"]}), ci
    )
    assert everything.summary == "all tools found for e2e"
