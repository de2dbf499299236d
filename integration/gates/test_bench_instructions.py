"""The bench gate's instruction metric for real: callgrind counts of the cpu_bound benchmarks of
this very project. By hand:

    CI=true uv run nox -s integration -- integration/gates/test_bench_instructions.py

A copy of the working tree becomes a one-commit repository in a temp dir (removed at the end).
Counted twice the way the gate counts a side when the first rounds do not settle (the fewest
instructions of three runs), that commit must agree with itself within half the gate's
`instruction_threshold` (1 %) for every cpu_bound benchmark, the room the threshold needs; and
each of the six single runs must land within `instruction_spread` of the lowest, which the gate
assumes when it stops after fewer runs (single runs differed by up to 2.3 %: docs/gates.md). A
commit that makes the state machine's `check` do about 5 % more work must be caught by the
instruction metric of the gate's comparison.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gates import provision
from gates.bench import instructions
from gates.bench.compare import run_comparison, untraced
from gates.bench.settings import BenchSettings
from gates.engine.execution import real_shell
from integration.gates.repos import git, project_environ, working_tree_copy

ROOT = Path(__file__).parents[2]
CPU_BOUND = ["test_state_machine", "test_serialize_machine_page"]
STATES = "backend/src/hangar/service/states.py"
# Real extra work in every call of `check`: a needless copy of the allowed states (+5.5 % of
# test_state_machine's instructions here).
EXACT = "    if state not in transition.allowed:\n"
SLOWED = (
    "    allowed = set(transition.allowed)  # copied on every call\n    if state not in allowed:\n"
)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The working tree as a one-commit repository; valgrind provisioned, or the test skipped
    with the install command (failed under CI=true)."""
    if provision.find_tool("valgrind") is None:
        report = provision.ensure("integration")  # installs what it can without a password
        if provision.find_tool("valgrind") is None:
            report.skip_or_fail("valgrind (callgrind counts the bench gate's instructions)")
            pytest.fail(f"valgrind is missing though provisioning found {report.tools}")
    scratch = tmp_path_factory.mktemp("instructions")
    try:
        yield working_tree_copy(ROOT, scratch / "hangar")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def environ() -> dict[str, str]:
    """The copy's own environment (never this run's), without the test-only slowdown switch and
    without this tier's coverage tracer, as the gate runs its sides (compare.untraced)."""
    found = untraced(project_environ())
    found.pop("HANGAR_BENCH_SLOWDOWN", None)
    return found


def test_one_commit_counted_twice_agrees_within_half_the_threshold(
    project: Path, tmp_path: Path
) -> None:
    settings = BenchSettings()
    sides = [
        instructions.SideRuns(label, project, environ(), tmp_path / label)
        for label in ("first", "second")
    ]
    first, second = instructions.count_sides(
        sides,
        ["bench"],
        runs=settings.instruction_runs,
        groups=("bench",),
        shell=real_shell,
        timeout=1500,
    )
    assert first is not None, "no cpu_bound benchmark was selected"
    assert second is not None, "no cpu_bound benchmark was selected"
    assert sorted(name.rsplit("::", 1)[-1] for name in first) == sorted(CPU_BOUND)
    assert set(first) == set(second)
    for name, baseline in first.items():
        ratio = second[name] / baseline
        assert abs(ratio - 1) < settings.instruction_threshold / 2, (
            f"{name}: {baseline:,} then {second[name]:,} ({ratio:.4f})"
        )
    single = [
        instructions.read_counts(side.run_directory(run))
        for side in sides
        for run in range(1, settings.instruction_runs + 1)
    ]
    for name in first:
        counts = sorted(run[name] for run in single)
        assert counts[-1] / counts[0] - 1 <= settings.instruction_spread, (
            f"{name}: single runs counted {', '.join(f'{c:,}' for c in counts)}: more than "
            f"instruction_spread ({settings.instruction_spread:.1%}) apart"
        )


def test_five_percent_more_work_in_the_state_machine_is_caught_by_its_instructions(
    project: Path, tmp_path: Path
) -> None:
    states = project / STATES
    original = states.read_text()
    assert original.count(EXACT) == 1, f"{STATES} changed: update this test's slowdown"
    states.write_text(original.replace(EXACT, SLOWED))
    git(project, "commit", "-q", "--no-gpg-sign", "-am", "check copies the allowed states")
    try:
        outcome = run_comparison(
            project,
            "HEAD~1",
            shell=real_shell,
            results=tmp_path / "results",
            log=tmp_path / "bench.log",
            environ=environ(),
            settings=BenchSettings(rounds=1),
            selection=["bench/test_service.py::test_state_machine"],
        )
    finally:
        git(project, "reset", "-q", "--hard", "HEAD~1")
    [counted] = outcome.instructions
    assert counted.name.endswith("::test_state_machine")
    assert counted.verdict == "slower", counted.as_metrics()
    assert 1.03 < counted.ratio < 1.10, counted.as_metrics()
    assert counted in outcome.regressions
    assert "instructions (callgrind Ir)" in (tmp_path / "results" / "comparison.txt").read_text()
