"""The bench gate's instruction metric: reading callgrind's dumps with the sidecar of
testkit's `measure`, the verdicts, the setting, the command, and the metric through the gate
(a shell stands in for valgrind; integration/gates/test_bench_instructions.py runs the real one)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from gates_testing import callgrind_dump

from gates.bench import instructions
from gates.bench.compare import render
from gates.bench.instructions import (
    INSTRUCTIONS_VARIABLE,
    WINDOWS_FILE,
    InstructionComparison,
    InstructionError,
    compare_counts,
    read_counts,
)
from gates.bench.settings import BenchSettings
from gates.errors import ConfigError

RECORDED = Path(__file__).parent / "fixtures" / "callgrind"


def test_a_recorded_run_gives_the_count_of_its_window() -> None:
    """Dumps of a real callgrind run (trimmed): the numbered one is the window, the last one
    (program termination, totals 0) and its garbage summary are ignored."""
    assert read_counts(RECORDED) == {"bench/test_service.py::test_state_machine": 29_258_163}


def windows(directory: Path, *entries: tuple[str, int]) -> Path:
    for n, (name, total) in enumerate(entries, start=1):
        with (directory / WINDOWS_FILE).open("a") as sidecar:
            sidecar.write(name + "\n")
        (directory / f"callgrind.out.77.{n}").write_text(callgrind_dump(total, n))
    (directory / "callgrind.out.77").write_text(callgrind_dump(0, len(entries) + 1))
    return directory


def test_the_nth_dump_belongs_to_the_nth_window_and_windows_of_a_benchmark_add_up(
    tmp_path: Path,
) -> None:
    windows(tmp_path, ("a::test_x", 100), ("a::test_y", 7), ("a::test_y", 8), ("a::test_z", 1))
    # A forked child's own termination dump is no window.
    (tmp_path / "callgrind.out.78").write_text(callgrind_dump(0))
    assert read_counts(tmp_path) == {"a::test_x": 100, "a::test_y": 15, "a::test_z": 1}


def test_dumps_and_windows_that_do_not_match_are_an_error(tmp_path: Path) -> None:
    windows(tmp_path, ("a::test_x", 100), ("a::test_y", 7))
    (tmp_path / "callgrind.out.77.2").unlink()
    with pytest.raises(InstructionError, match=r"2 windows named in windows.txt but dumps \[1\]"):
        read_counts(tmp_path)


def test_numbered_dumps_of_two_processes_are_an_error(tmp_path: Path) -> None:
    windows(tmp_path, ("a::test_x", 100))
    (tmp_path / "callgrind.out.78.1").write_text(callgrind_dump(5))
    with pytest.raises(InstructionError, match="dumps of 2 processes"):
        read_counts(tmp_path)


def test_a_dump_without_totals_is_an_error(tmp_path: Path) -> None:
    windows(tmp_path, ("a::test_x", 100))
    (tmp_path / "callgrind.out.77.1").write_text("# callgrind format\nevents: Ir\n")
    with pytest.raises(InstructionError, match="has no `totals:` line"):
        read_counts(tmp_path)


@pytest.mark.parametrize(
    ("candidate", "verdict"),
    [
        (1_000, "same"),
        (1_020, "same"),  # exactly the threshold is no regression
        (1_021, "slower"),
        (1_050, "slower"),
        (981, "same"),
        (980, "faster"),
    ],
)
def test_the_verdict_holds_the_ratio_against_the_threshold(candidate: int, verdict: str) -> None:
    comparison = InstructionComparison("a::test_x", 1_000, candidate, 0.02)
    assert comparison.ratio == candidate / 1_000
    assert comparison.verdict == verdict
    assert comparison.regressed == (verdict == "slower")
    assert comparison.as_metrics()["verdict"] == verdict


def test_compare_counts_names_benchmarks_counted_on_one_side() -> None:
    both, only = compare_counts({"a": 10, "b": 20}, {"b": 21, "c": 5}, 0.02)
    assert [(c.name, c.baseline, c.candidate) for c in both] == [("b", 20, 21)]
    assert only == ["a", "c"]


def test_the_table_shows_counts_change_threshold_and_verdict() -> None:
    text = render(
        instructions.table(
            [
                InstructionComparison(
                    "bench/t.py::test_state_machine", 29_258_163, 30_721_071, 0.02
                ),
                InstructionComparison("bench/t.py::test_same", 1_000, 1_001, 0.02),
            ]
        )
    )
    assert "test_state_machine" in text
    for shown in ("29,258,163", "30,721,071", "+5.00%", "+2%", "slower", "same"):
        assert shown in text


def test_the_instruction_run_pins_hash_seed_and_address_layout(tmp_path: Path) -> None:
    argv = instructions.pytest_argv(["bench/test_x.py"], tmp_path, ["bench"])
    assert argv[:4] == ["uv", "run", "--locked", "--group=bench"]
    assert argv[4:7] == ["setarch", platform.machine(), "-R"]
    assert "--instr-atstart=no" in argv
    assert "--dump-after=callgrind_stop_instrumentation" in argv
    assert f"--callgrind-out-file={tmp_path}/callgrind.out.%p" in argv
    assert argv[-4:] == ["--benchmark-disable", "bench/test_x.py", "-p", "gates_cpu_bound_only"]
    collect = instructions.collect_argv(["bench", "-m", "not slow"], ["bench"])
    assert collect[-5:] == ["bench", "-m", "not slow", "-p", "gates_cpu_bound_only"]
    env = instructions.environment({"PATH": "/bin"}, tmp_path)
    assert env == {
        "PATH": "/bin",
        "PYTHONPATH": str(tmp_path / "plugin"),
        "PYTHONHASHSEED": "0",
        INSTRUCTIONS_VARIABLE: str(tmp_path),
        instructions.LAYOUT_VARIABLE: "",
    }


def test_each_run_of_a_side_starts_from_its_own_layout_padding(tmp_path: Path) -> None:
    pads = [
        instructions.environment({}, tmp_path, run)[instructions.LAYOUT_VARIABLE]
        for run in (1, 2, 3)
    ]
    assert [len(pad) for pad in pads] == [0, 24, 48]


REGISTERED = '[tool.pytest.ini_options]\nstrict = true\nmarkers = ["cpu_bound: c"]\n'
COUNTED = "import pytest\n\n@pytest.mark.cpu_bound\ndef test_counted():\n    pass\n"
STRICT_PROJECT = {
    "pyproject.toml": "[tool.pytest.ini_options]\nstrict = true\nmarkers = []\n",
    "test_x.py": "def test_plain():\n    pass\n",
}


@pytest.mark.parametrize(
    ("extra", "status", "ran"),
    [
        ({}, 5, []),  # a project that never registered cpu_bound: none, not a usage error
        (
            {"pyproject.toml": REGISTERED, "test_y.py": COUNTED},
            0,
            ["test_y.py::test_counted"],
        ),
    ],
)
def test_the_plugin_keeps_only_cpu_bound_tests_whether_or_not_the_marker_is_registered(
    tmp_path: Path, extra: dict[str, str], status: int, ran: list[str]
) -> None:
    for name, text in {**STRICT_PROJECT, **extra}.items():
        (tmp_path / name).write_text(text)
    env = instructions.with_plugin(
        {"PATH": os.environ["PATH"], "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, tmp_path / "p"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
         *instructions.MARKED],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == status, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected == ran


def test_instruction_runs_default_to_three_and_are_validated() -> None:
    assert BenchSettings.from_table({}).instruction_runs == 3
    assert BenchSettings.from_table({"instruction_runs": 1}).instruction_runs == 1
    for bad in (0, 1.5, True, "3"):
        with pytest.raises(ConfigError, match="instruction_runs must be an integer >= 1"):
            BenchSettings.from_table({"instruction_runs": bad})


def test_each_benchmark_keeps_its_fewest_instructions_over_the_runs() -> None:
    runs = [{"a": 105, "b": 20}, {"a": 100, "b": 22}, {"a": 101, "b": 21}]
    assert instructions.fewest("baseline", runs) == {"a": 100, "b": 20}
    with pytest.raises(InstructionError, match=r"baseline side's instruction runs counted"):
        instructions.fewest("baseline", [{"a": 1}, {"a": 1, "b": 2}])


class RecordingShell:
    """callgrind runs that leave one window each (`a::test_x`, 100 + the run's number
    instructions, or `counts[(side, run)]`), recording which started and how many ran at
    once; the side named `empty` has no cpu_bound benchmark."""

    def __init__(self, at_once: int = 2, counts: Mapping[tuple[str, int], int] | None = None):
        self.started: list[str] = []
        self.layouts: dict[str, str] = {}  # side/run-N: its layout padding
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        # Each run waits for `at_once` runs to be running, or the first one waits in vain.
        self.together = threading.Barrier(at_once)
        self.counts = counts or {}

    def __call__(self, argv: Sequence[str], *, cwd: Path, log: Path, env: Mapping[str, str],
                 timeout: float | None) -> int:  # fmt: skip
        directory = Path(env[INSTRUCTIONS_VARIABLE])
        with self.lock:
            self.started.append(f"{cwd.name}/{directory.name}")
            self.layouts[f"{cwd.name}/{directory.name}"] = env[instructions.LAYOUT_VARIABLE]
            self.running += 1
            self.most = max(self.most, self.running)
        self.together.wait(timeout=30)
        with self.lock:
            self.running -= 1
        if cwd.name == "empty":
            return instructions.NO_TESTS
        assert log == directory.parent / f"{directory.name}.log"
        run = int(directory.name.removeprefix("run-"))
        windows(directory, ("a::test_x", self.counts.get((cwd.name, run), 100 + run)))
        return 0


def side_runs(tmp_path: Path, *names: str) -> list[instructions.SideRuns]:
    return [
        instructions.SideRuns(name, tmp_path / name, {}, tmp_path / f"{name}-instructions")
        for name in names
    ]


def test_the_runs_of_both_sides_go_side_by_side_each_into_its_own_folder(tmp_path: Path) -> None:
    """Up to `workers` runs at once, one run per side and round; each run's dumps in `run-N`,
    its log beside; without `enough`, every round runs."""
    shell = RecordingShell()
    sides = side_runs(tmp_path, "baseline", "candidate")
    counted = instructions.count_sides(
        sides, ["bench"], runs=3, groups=["bench"], shell=shell, timeout=60, workers=2
    )
    assert counted == [{"a::test_x": 101}, {"a::test_x": 101}]
    assert sorted(shell.started) == [
        f"{s}/run-{n}" for s in ("baseline", "candidate") for n in (1, 2, 3)
    ]
    assert shell.most == 2
    assert [instructions.runs_made(side) for side in sides] == [3, 3]
    # Each round its own layout, the same on both sides.
    pads = [shell.layouts[f"baseline/run-{n}"] for n in (1, 2, 3)]
    assert len(set(pads)) == 3
    assert pads == [shell.layouts[f"candidate/run-{n}"] for n in (1, 2, 3)]


def test_a_side_without_cpu_bound_benchmarks_ends_the_runs_after_the_first_round(
    tmp_path: Path,
) -> None:
    shell = RecordingShell()
    counted = instructions.count_sides(
        side_runs(tmp_path, "full", "empty"), ["bench"], runs=3, groups=["bench"], shell=shell,
        timeout=60, workers=2,
    )  # fmt: skip
    assert counted == [{"a::test_x": 101}, None]
    assert sorted(shell.started) == ["empty/run-1", "full/run-1"]


def test_the_rounds_end_once_enough_says_so_and_each_side_keeps_its_fewest(
    tmp_path: Path,
) -> None:
    # The candidate's first run landed 3 % high: not settled; its second is back at the level.
    counts = {("baseline", 1): 1000, ("candidate", 1): 1030, ("baseline", 2): 1004,
              ("candidate", 2): 1001}  # fmt: skip
    shell = RecordingShell(counts=counts)
    seen: list[list[dict[str, int] | None]] = []

    def enough(counted: Sequence[dict[str, int] | None]) -> bool:
        seen.append(list(counted))
        base, cand = counted
        return instructions.settled(base, cand, threshold=0.02, spread=0.015)

    sides = side_runs(tmp_path, "baseline", "candidate")
    counted = instructions.count_sides(
        sides, ["bench"], runs=3, groups=["bench"], shell=shell, timeout=60, workers=2,
        enough=enough,
    )  # fmt: skip
    assert seen == [
        [{"a::test_x": 1000}, {"a::test_x": 1030}],
        [{"a::test_x": 1000}, {"a::test_x": 1001}],
    ]
    assert counted == [{"a::test_x": 1000}, {"a::test_x": 1001}]
    assert [instructions.runs_made(side) for side in sides] == [2, 2]


@pytest.mark.parametrize(
    ("ratio", "is_settled"),
    [
        (1.0, True),  # same, whatever more runs find: 0.985 to 1.015
        (1.0049, True),  # up to 1.02 / 1.015: still same at the top
        (1.006, False),  # could reach 1.021: slower, if the baseline's run was a high one
        (1.025, False),  # slower now, but 1.0099 once the candidate's lowest is found
        (1.036, True),  # slower even at 1.036 / 1.015 = 1.0207
        (1.05, True),  # five percent more work: slower after the first round
        (0.97, False),  # faster now, but same if the baseline's lowest is 1.5 % lower
        (0.96, True),  # faster at both ends
    ],
)
def test_settled_when_both_ends_of_what_more_runs_can_find_get_one_verdict(
    ratio: float, is_settled: bool
) -> None:
    baseline = {"a": 1_000_000, "b": 500_000}
    candidate = {"a": round(1_000_000 * ratio), "b": 500_000}
    assert instructions.settled(baseline, candidate, 0.02, 0.015) is is_settled
    assert instructions.settled(baseline, {"b": 500_000}, 0.02, 0.015)  # `a` on one side only
    assert instructions.settled(None, candidate, 0.02, 0.015)
    # With no spread, one run decides.
    assert instructions.settled(baseline, candidate, 0.02, 0.0)


def test_instruction_spread_defaults_to_two_and_a_half_percent_and_is_validated() -> None:
    assert BenchSettings.from_table({}).instruction_spread == 0.025
    assert BenchSettings.from_table({"instruction_spread": 0}).instruction_spread == 0.0
    assert BenchSettings.from_table({"instruction_spread": 0.05}).instruction_spread == 0.05
    for bad in (-0.01, 1, "1%", True):
        with pytest.raises(ConfigError, match=r"instruction_spread must be a fraction in \[0, 1\)"):
            BenchSettings.from_table({"instruction_spread": bad})


def test_missing_valgrind_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(InstructionError, match=r"apt-get install valgrind"):
        instructions.require_valgrind({"PATH": str(tmp_path)})


def test_instruction_threshold_defaults_to_two_percent_and_is_validated() -> None:
    assert BenchSettings.from_table({}).instruction_threshold == 0.02
    assert BenchSettings.from_table({"instruction_threshold": 0.05}).instruction_threshold == 0.05
    for bad in (0, -0.1, "2%", True):
        with pytest.raises(ConfigError, match="instruction_threshold must be a fraction"):
            BenchSettings.from_table({"instruction_threshold": bad})


def dump_with_objects(directory: Path, *objects: str) -> Path:
    lines = [f"ob=({n}) {path}" for n, path in enumerate(objects, start=1)]
    text = callgrind_dump(100).replace("\ntotals:", "\n" + "\n".join(lines) + "\ntotals:")
    directory.mkdir()
    (directory / "callgrind.out.9.1").write_text(text)
    return directory


LIBPYTHON = "/opt/py/3.11.7/lib/libpython3.11.so.1.0"


def test_the_interpreter_is_libpython_else_the_python_executable(tmp_path: Path) -> None:
    shared = dump_with_objects(
        tmp_path / "a", "/usr/lib/libc.so.6", LIBPYTHON, "/opt/py/bin/python3.11"
    )
    assert instructions.interpreter(shared) == LIBPYTHON
    static = dump_with_objects(tmp_path / "b", "/usr/lib/libc.so.6", "/opt/static/bin/python3.12")
    assert instructions.interpreter(static) == "/opt/static/bin/python3.12"
    assert instructions.interpreter(dump_with_objects(tmp_path / "c", "/usr/lib/libc.so.6")) is None


def test_sides_that_ran_different_pythons_are_an_error(tmp_path: Path) -> None:
    baseline = dump_with_objects(tmp_path / "baseline", LIBPYTHON)
    same = dump_with_objects(tmp_path / "same", LIBPYTHON)
    other = dump_with_objects(tmp_path / "other", "/opt/py/3.12.1/lib/libpython3.12.so.1.0")
    instructions.require_same_interpreter(baseline, same)
    with pytest.raises(InstructionError, match=r"different Pythons.*libpython3\.12"):
        instructions.require_same_interpreter(baseline, other)
