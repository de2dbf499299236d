"""The HTML report: every section from a synthetic history, escaping, and the commands."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import pytest
from gates_testing import ok_gate, pipeline_toml, placeholder_save

from gates import cli, soak
from gates.engine.history import History, Outcome, Record
from gates.engine.junit import TestReport
from gates.git.repository import TreeState
from gates.reporting.html import charts, model, page

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40
HOSTILE = "<script>alert('skip')</script>"
PIPELINE = pipeline_toml(
    {
        "deps": [ok_gate("lock")],
        "unit": [
            ok_gate("serial") + ", junit = true",
            "name = 'speedup', check = 'speedup', serial = 'serial', parallel = 'serial'",
        ],
        "e2e": [ok_gate("e2e")],
        "bench": ["name = 'compare', check = 'bench'"],
    },
    green=["deps", "unit"],
)
BENCHMARKS = ["test_list_machines_page", "test_event_fan_out", "test_state_machine"]


def write_project(root: Path, toml: str = PIPELINE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f"[project]\nname = 'demo'\nversion = '0'\n\n{toml}")
    return root


class Recorder:
    """Appends records through the real History API, one run at a time."""

    def __init__(self, root: Path) -> None:
        self.history = History(root / ".gates" / "history.jsonl")
        self.minutes = 0

    def run(
        self, run_id: str, commit: str, gates: list[tuple[str, str, Outcome, dict[str, Any]]], *,
        dirty: bool = False,
    ) -> None:  # fmt: skip
        for phase, gate, outcome, extra in gates:
            self.minutes += 3
            self.history.append(
                Record(
                    run_id=run_id,
                    time=(START + timedelta(minutes=self.minutes)).isoformat(),
                    commit=commit,
                    dirty=dirty,
                    diff_hash="d1ff" if dirty else "",
                    phase=phase,
                    gate=gate,
                    outcome=outcome,
                    duration_s=extra.get("duration_s", 2.0 + self.minutes / 10),
                    metrics=extra.get("metrics", {}),
                    skips=extra.get("skips", []),
                    summary=extra.get("summary", f"{gate} {outcome}"),
                )
            )


def bench_metrics(factor: float, threshold: float = 0.1) -> dict[str, Any]:
    benchmarks = {}
    for number, name in enumerate(BENCHMARKS, start=1):
        baseline = 0.001 * number
        ratio = factor if name == "test_event_fan_out" else 1.0 + number / 100
        verdict = "slower" if ratio - 0.05 > 1 + threshold else "same"
        benchmarks[f"bench/test_service.py::{name}"] = {
            "name": f"bench/test_service.py::{name}",
            "baseline_s": baseline,
            "candidate_s": baseline * ratio,
            "ratio": ratio,
            "low": ratio - 0.05,
            "high": ratio + 0.05,
            "threshold": threshold,
            "verdict": verdict,
        }
    return {
        "baseline": C1,
        "rounds": 3,
        "results": ".gates/bench/x",
        "regressions": sum(b["verdict"] == "slower" for b in benchmarks.values()),
        "benchmarks": benchmarks,
        "only_one_side": ["bench/test_new.py::test_brand_new"],
        "instructions": {
            "bench/test_service.py::test_state_machine": {
                "name": "bench/test_service.py::test_state_machine",
                "baseline": 29_500_000,
                "candidate": round(29_500_000 * factor),
                "threshold": 0.02,
            }
        },
    }


def write_calibration(root: Path) -> None:
    """A stored `gates calibrate` result: both metrics, false alarms and two factors."""
    rates = [
        ("instructions", None, 6, 0, True),
        ("instructions", 1.05, 6, 6, True),
        ("wall", None, 18, 1, False),
        ("wall", 1.05, 18, 2, None),
    ]
    stored = {
        "version": 2,
        "runs": 2,
        "factors": [1.05],
        "rates": [
            {"metric": m, "factor": f, "judged": j, "slower": n, "share": n / j, "goal_met": g}
            for m, f, j, n, g in rates
        ],
        "goals": {
            "instructions": {"false_alarms": 0.0, "factor": 1.05, "detection": 0.95},
            "wall": {"false_alarms": 0.05, "factor": 1.25, "detection": 0.95},
        },
    }
    directory = root / ".gates" / "calibration" / "20261121T120000Z-cccccc"
    directory.mkdir(parents=True)
    (directory / "calibration.json").write_text(json.dumps(stored))


def coverage_metrics(total: float, baseline: str) -> dict[str, Any]:
    """What the coverage check records: the total and each package's figure."""
    metrics: dict[str, Any] = {
        "total": total,
        "packages": {"demo": total + 1, "tools": total - 3},
        "files": {"demo/app.py": [90, 10]},
        "floor": 90.0,
        "sources": ["unit-serial"],
    }
    return {**metrics, "baseline": baseline} if baseline else metrics


def speedup_metrics(speedup: float) -> dict[str, Any]:
    return {
        "cores": 2,
        "serial_s": 40.0,
        "parallel_s": {"2": round(40.0 / speedup, 3)},
        "speedup": speedup,
        "best_workers": 2,
        "min_speedup": 1.2,
    }


@pytest.mark.usefixtures("placeholder_charts")
def test_the_speedup_section_says_what_the_suite_allows_and_what_the_phase_costs(
    tmp_path: Path,
) -> None:
    root = write_project(tmp_path)
    advice = {"bound": 1.41, "recommended_workers": 0, "phase_cost": 1.12, "min_speedup": None}
    metrics = {**speedup_metrics(1.1), **advice}
    Recorder(root).run("r1", C1, [("unit", "speedup", "passed", {"metrics": metrics})])
    report = page.collect(root)
    [run] = report.speedup  # recorded though nothing was required of it
    assert (run.min_speedup, run.bound, run.recommended_workers, run.phase_cost) == (
        None,
        1.41,
        0,
        1.12,
    )
    html = page.write_report(root).read_text()
    assert "the suite allows 1.41\N{MULTIPLICATION SIGN}" in html
    assert "nothing required: it cannot gain" in html
    assert "recommended: run serially" in html
    assert "<strong>1.12\N{MULTIPLICATION SIGN}</strong> the wall time of the two test runs" in html


def write_history(root: Path) -> None:
    """Three commits (one also run dirty), every kind of gate, skips, two soaks, junk lines."""
    rec = Recorder(root)
    skips = [
        {"test": "tests/test_a.py::test_needs_qemu", "reason": "qemu-system-x86_64 not found"},
        {"test": "tests/test_a.py::test_hostile", "reason": HOSTILE},
    ]
    rec.run(
        "run-1",
        C1,
        [
            ("deps", "lock", "passed", {}),
            ("unit", "serial", "passed", {}),
            ("unit", "speedup", "passed", {"metrics": speedup_metrics(1.4)}),
            ("e2e", "e2e", "failed", {"summary": "2 failed & more"}),
            ("coverage", "ratchet", "passed", {"metrics": coverage_metrics(91.5, "")}),
            ("bench", "compare", "passed", {"metrics": bench_metrics(1.02)}),
        ],
    )
    rec.run(
        "run-2",
        C1,
        [
            ("deps", "lock", "passed", {}),
            ("unit", "serial", "failed", {}),
        ],
        dirty=True,
    )
    rec.run(
        "run-3",
        C2,
        [
            ("deps", "lock", "passed", {}),
            ("unit", "serial", "passed", {}),
            ("unit", "speedup", "failed", {"metrics": speedup_metrics(1.1)}),
        ],
    )
    rec.run(
        "run-4",
        C3,
        [
            ("deps", "lock", "passed", {}),
            ("unit", "serial", "passed", {"skips": skips}),
            ("unit", "speedup", "passed", {"metrics": speedup_metrics(1.5)}),
            ("e2e", "e2e", "skipped", {}),
            ("coverage", "ratchet", "passed", {"metrics": coverage_metrics(90.25, C1)}),
            ("bench", "compare", "passed", {"metrics": bench_metrics(1.05)}),
        ],
    )
    rec.run(
        "run-5",
        C3,
        [("bench", "compare", "failed", {"metrics": bench_metrics(1.3)})],
        dirty=True,
    )
    with rec.history.path.open("a") as handle:  # what History skips: foreign and torn lines
        handle.write('{"not": "a record"}\n{"run_id": "torn", "ti')
    write_soaks(root)


def write_soaks(root: Path) -> None:
    flaky = soak.SoakResult("e2e")
    for number in (1, 2, 3):
        outcomes = {
            "e2e.test_login::test_sign_in": "failed" if number == 2 else "passed",
            "e2e.test_login::test_sign_out[-->]": "failed",
            "e2e.test_money::test_total[$x$]": "failed" if number == 3 else "passed",
            "e2e.test_x::test_fine": "passed",
        }
        messages = {test: f"boom {number}" for test, o in outcomes.items() if o == "failed"}
        flaky.runs.append(soak.RunRecord(number, 1, 10.0, TestReport(outcomes, messages)))
    clean = soak.SoakResult("unit")
    for number in (1, 2, 3):
        clean.runs.append(soak.RunRecord(number, 0, 5.0, TestReport({"t::a": "passed"})))
    directory = root / soak.SOAK_DIR
    state = TreeState(C3, False, "")
    soak.store(flaky, directory, run_id="20261121T100000Z-aaaaaa", started=START, state=state)
    soak.store(clean, directory, run_id="20261121T110000Z-bbbbbb", started=START, state=state)
    (directory / "garbage.json").write_text("{ not json")


def write_synthetic_report(root: Path) -> tuple[Path, str]:
    write_project(root)
    write_history(root)
    write_calibration(root)
    index = page.write_report(root, commits=20, now=START + timedelta(days=2))
    return index, index.read_text()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One report of the synthetic history (charts as placeholders), shared by the tests that
    only read its page."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(charts, "_save", placeholder_save)
        return write_synthetic_report(tmp_path_factory.mktemp("report") / "project")


def chart_files(index: Path, html: str) -> list[Path]:
    return [index.parent / name for name in re.findall(r'<img src="([^"]+)"', html)]


def test_every_chart_is_an_svg_that_draws(tmp_path: Path) -> None:
    index, html = write_synthetic_report(tmp_path / "project")
    assert index == index.parent / "index.html"
    assert index.parent.name == "report"
    charts = chart_files(index, html)
    names = sorted(path.name for path in charts)
    assert names == [
        "chart-bench.svg",
        "chart-coverage.svg",
        "chart-durations.svg",
        "chart-outcomes.svg",
        "chart-soak-20261121T100000Z-aaaaaa.svg",
        "chart-speedup.svg",
    ]
    for path in charts:
        svg = ET.parse(path).getroot()  # noqa: S314 - our own output
        assert svg.tag == f"{SVG}svg"
        assert float(svg.get("width", "0").removesuffix("pt")) > 100
        assert len(list(svg.iter(f"{SVG}path"))) > 20, f"{path.name} draws almost nothing"
    assert sorted(p.name for p in index.parent.glob("*.svg")) == names


def test_the_page_shows_every_section(written: tuple[Path, str]) -> None:
    _, html = written
    assert "Gate report: demo" in html
    assert "2026-11-22 09:00:00 UTC" in html  # generated
    assert f"<code>{C3[:12]}</code>" in html  # the last green commit
    assert "<code>run-5</code> on commit <code>3333333+</code> (dirty tree)" in html
    assert "1 gate:\n      0 passed, 1 failed, 0 skipped" in html
    for gate in ("deps/lock", "unit/serial", "unit/speedup", "e2e/e2e", "bench/compare"):
        assert f'<th class="gate mono">{gate}</th>' in html
    for column in ("1111111", "1111111+", "2222222", "3333333", "3333333+"):
        assert f">{column}</th>" in html
    for name in BENCHMARKS:
        assert f">{name}</td>" in html
    assert "bench/test_new.py::test_brand_new" in html  # only on one side
    assert "Latest: <strong>1.5\N{MULTIPLICATION SIGN}</strong> with 2 workers" in html
    # Coverage: the latest judgement per package beside the run before, and its basis.
    assert "total\n  <strong>90.25 %</strong>" in html
    assert f"against the green commit <code>{C1[:7]}</code> (floor 90 %)" in html
    assert '<td class="mono">demo</td><td class="num">91.25 %</td>' in html
    assert '<td class="num">92.50 %</td>' in html  # demo in the run before
    assert '<td class="mono">tools</td><td class="num">87.25 %</td>' in html
    assert "e2e.test_login::test_sign_in</td>" in html
    assert "e2e.test_login::test_sign_out[--&gt;]</td>" in html
    assert "e2e.test_money::test_total[$x$]</td>" in html
    assert ">1/3</td>" in html
    assert ">3/3</td>" in html
    assert "No flaky tests in 3 runs" in html
    assert "Rule of three (95 % confidence): tier unit: 0 failures in 3 rounds, so its" in html
    assert "qemu-system-x86_64 not found" in html
    assert "tests/test_a.py::test_needs_qemu" in html
    assert "Nothing recorded yet" not in html
    # The latest run's instruction counts, and the stored calibration's rates beside the goals.
    assert "Counted instructions" in html
    assert "29,500,000" in html
    assert "run <code>20261121T120000Z-cccccc</code>: 2 runs" in html
    assert "<td>none (false alarms)</td>" in html
    assert '<td class="num">5.6 %</td>' in html  # the wall metric's 1 false alarm in 18
    assert "<strong>no</strong>" in html  # ... over its goal of 5 %


def test_strings_from_history_are_escaped(written: tuple[Path, str]) -> None:
    _, html = written
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#39;skip&#39;)&lt;/script&gt;" in html
    assert "2 failed &amp; more" in html
    assert "<script" not in html  # the page has no script at all


def test_an_empty_history_says_how_to_produce_one(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project")
    index = page.write_report(root)
    html = index.read_text()
    assert "Nothing recorded yet" in html
    assert "<code>gates run</code>" in html
    assert "No soak stored yet" in html
    assert "No calibration stored yet" in html
    assert "<img" not in html
    assert not list(index.parent.glob("*.svg"))


def test_the_grid_keeps_the_last_commits_and_the_latest_outcome(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project")
    write_history(root)
    records = list(History(root / ".gates" / "history.jsonl").records())
    grid = model.outcome_grid(records, ["deps/lock", "unit/serial", "gone/gate"], commits=2)
    assert [c.label for c in grid.columns] == ["2222222", "3333333", "3333333+"]
    assert grid.gates[:3] == ["deps/lock", "unit/serial", "gone/gate"]
    assert "unit/speedup" in grid.gates  # known to history, not declared: still shown
    serial = grid.cell("unit/serial", 0)
    assert serial is not None
    assert serial.outcome == "passed"
    assert grid.cell("gone/gate", 1) is None
    whole = model.outcome_grid(records, ["unit/serial"], commits=20)
    labels = ["1111111", "1111111+", "2222222", "3333333", "3333333+"]
    assert [c.label for c in whole.columns] == labels
    dirty = whole.cell("unit/serial", 1)
    assert dirty is not None
    assert (dirty.outcome, dirty.dirty) == ("failed", True)


@pytest.mark.usefixtures("placeholder_charts")
def test_malformed_metrics_are_left_out_not_fatal(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project")
    Recorder(root).run(
        "odd",
        C1,
        [
            ("bench", "compare", "passed", {"metrics": {"benchmarks": {"x": {"ratio": "1"}}}}),
            ("bench", "compare", "passed", {"metrics": {"benchmarks": ["not", "a", "map"]}}),
            ("unit", "speedup", "passed", {"metrics": {"speedup": True, "min_speedup": 1.2}}),
            ("unit", "serial", "passed", {"skips": ["not a mapping"]}),
        ],
    )
    index = page.write_report(root)
    html = index.read_text()
    assert "No benchmark comparison recorded yet" in html
    assert "No speedup measured yet" in html
    assert sorted(p.name for p in chart_files(index, html)) == [
        "chart-durations.svg",
        "chart-outcomes.svg",
    ]


def test_stored_soaks_skip_foreign_files_newest_first(tmp_path: Path) -> None:
    write_soaks(tmp_path)
    (tmp_path / soak.SOAK_DIR / "other.json").write_text(json.dumps({"tier": "e2e"}))
    soaks = soak.stored_soaks(tmp_path / soak.SOAK_DIR)
    assert [(s.tier, len(s.runs), len(s.failing)) for s in soaks] == [("unit", 3, 0), ("e2e", 3, 3)]
    assert soaks[1].failing[0].verdict == "always"
    assert soaks[1].failing[1].verdict == "flaky"


@pytest.mark.usefixtures("placeholder_charts")
def test_a_rewrite_removes_only_its_own_stale_charts(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project")
    out = tmp_path / "elsewhere"
    out.mkdir()
    (out / "chart-gone.svg").write_text("<svg/>")
    (out / "mine.svg").write_text("<svg/>")
    Recorder(root).run("r", C1, [("deps", "lock", "passed", {})])
    index = page.write_report(root, out)
    assert index == out / "index.html"
    assert sorted(p.name for p in out.iterdir()) == [
        "chart-durations.svg",
        "chart-outcomes.svg",
        "index.html",
        "mine.svg",
    ]


def phase_time(moment: datetime, phase: str = "unit", outcome: str = "passed") -> model.PhaseTime:
    return model.PhaseTime(moment, phase, 12.0, outcome)


def x_window(points: list[model.PhaseTime]) -> tuple[datetime, datetime]:
    """The time span the durations chart's x axis shows (the figure is built, not drawn)."""
    axes = charts.duration_figure(points, ["deps", "unit"]).axes[0]
    low, high = axes.get_xlim()
    return mdates.num2date(low), mdates.num2date(high)  # type: ignore[no-untyped-call]


def about(moment: datetime, expected: datetime) -> bool:
    """Equal up to the axis' float day numbers (well under a second)."""
    return abs(moment - expected) < timedelta(milliseconds=1)


def test_the_durations_axis_of_a_single_run_is_a_small_window() -> None:
    points = [phase_time(START, "deps"), phase_time(START, "unit", "failed")]
    low, high = x_window(points)
    # Not the four years matplotlib picks around a single date: an hour centred on the run.
    assert about(low, START - charts.MIN_TIME_WINDOW / 2)
    assert about(high, START + charts.MIN_TIME_WINDOW / 2)


def test_the_durations_axis_fits_the_runs_shown() -> None:
    times = [START, START + timedelta(hours=5), START + timedelta(days=3)]
    low, high = x_window([phase_time(t) for t in times])
    span = times[-1] - times[0]
    assert about(low, times[0] - span * 0.05)
    assert about(high, times[-1] + span * 0.05)
    burst = [START, START + timedelta(minutes=10)]  # runs close together: widened around them
    low, high = x_window([phase_time(t) for t in burst])
    assert about(low, START - timedelta(minutes=25))
    assert about(high, START + timedelta(minutes=35))
    with pytest.raises(ValueError, match="at least one time"):
        charts.time_window([])


# ---------------------------------------------------------------------------------- commands
def test_cli_report_prints_the_page_and_its_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".git").mkdir()  # tests may run inside a checkout; the search stops here
    root = write_project(tmp_path / "project")
    monkeypatch.chdir(root)
    assert cli.report(output="out") == 0
    assert capsys.readouterr().out.strip() == str(root / "out" / "index.html")
    assert (root / "out" / "index.html").is_file()
    assert cli.report(commits=0) == cli.EXIT_REFUSED
    assert "error: --commits must be at least 1, got 0" in capsys.readouterr().out
    (root / "a-file").write_text("")
    assert cli.report(output="a-file") == cli.EXIT_REFUSED
    assert "the report could not be written" in capsys.readouterr().out
    (root / "pyproject.toml").write_text("[tool.gates]\nphases = 3\n")
    assert cli.report() == cli.EXIT_REFUSED
    assert "needs [[tool.gates.phases]]" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    assert cli.report() == cli.EXIT_REFUSED
    assert "no pyproject.toml with a [tool.gates] table" in capsys.readouterr().out


@pytest.fixture
def gates_project(make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_project(pipeline_toml({"deps": [ok_gate("lock")]}))
    monkeypatch.chdir(root)
    for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_SHA"):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.mark.usefixtures("placeholder_charts")
def test_a_gates_run_ends_with_the_report(
    gates_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.gates() == 0
    index = gates_project / ".gates" / "report" / "index.html"
    assert f"report: {index}" in capsys.readouterr().out
    assert "deps/lock" in index.read_text()


def test_a_report_that_fails_warns_and_keeps_the_gates_status(
    gates_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(root: Path) -> Path:
        raise OSError(f"disk full under {root}")

    monkeypatch.setattr(page, "write_report", broken)
    assert cli.gates() == 0
    out = capsys.readouterr().out
    assert "warning: the report was not written: disk full under" in out
    assert "report: " not in out


def test_a_soak_of_all_tiers_shows_its_tiers_and_each_verdict(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project")
    result = soak.SoakResult("all", tiers=["unit", "e2e"])
    outcomes = [
        ("a1", {"t::flaky": "failed", "t::fixed": "failed"}),
        ("a1", {"t::flaky": "passed", "t::fixed": "failed"}),
        ("b2", {"t::flaky": "passed", "t::fixed": "passed"}),
    ]
    for number, (tree, tests) in enumerate(outcomes, start=1):
        report = TestReport(dict(tests))
        result.runs.append(soak.RunRecord(number, 1, 1.0, report, "unit", tree, number))
    soak.store(result, root / soak.SOAK_DIR, run_id="20261127T190000Z-cccccc", started=START)
    html = page.write_report(root).read_text()
    assert "Soak of all tiers (unit, e2e): 3 runs" in html
    assert '<span class="badge flaky">flaky</span>' in html
    assert '<span class="badge by-tree">by tree</span>' in html
    assert "the suite (every tier once): failed in 2 of 3 rounds" in html
