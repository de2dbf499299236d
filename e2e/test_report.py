"""The gate report (`invoke report`) in a real Chromium: every chart loads and has a size.

The report is a static page opened from disk (`file://`), so these tests need the browser but
not the app's live server: they use their own context of the tier's `browser`, watched by a page
guard whose origin is `file://` (a console error or a failed file load fails the test), and any
request that leaves the disk fails them too: the report must work offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from e2e.guards import PageGuard
from gates.engine.history import History, Outcome, Record
from gates.engine.junit import TestReport
from gates.git.repository import TreeState
from gates.reporting.html.page import write_report
from gates.soak import SOAK_DIR, RunRecord, SoakResult, store

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PIPELINE = """
[project]
name = "report-e2e"
version = "0"

[tool.gates]
history = ".gates/history.jsonl"
green_phases = ["deps", "unit"]

[[tool.gates.phases]]
name = "deps"
gates = [{ name = "lock", run = ["true"] }]

[[tool.gates.phases]]
name = "unit"
gates = [
  { name = "serial", run = ["true"], junit = true },
  { name = "isolation", run = ["true"], junit = true },
  { name = "speedup", check = "speedup" },
]

[[tool.gates.phases]]
name = "e2e"
gates = [{ name = "e2e", run = ["true"] }]

[[tool.gates.phases]]
name = "bench"
gates = [{ name = "compare", check = "bench" }]
"""


def _bench(factor: float) -> dict[str, Any]:
    benchmarks = {}
    for number, name in enumerate(["test_list_machines_page", "test_event_fan_out"], start=1):
        ratio = factor if name.endswith("fan_out") else 1.0 + 0.01 * number
        benchmarks[f"bench/test_service.py::{name}"] = {
            "name": f"bench/test_service.py::{name}",
            "baseline_s": 0.01 * number,
            "candidate_s": 0.01 * number * ratio,
            "ratio": ratio,
            "low": ratio - 0.04,
            "high": ratio + 0.06,
            "threshold": 0.1,
            "verdict": "slower" if ratio - 0.04 > 1.1 else "same",
        }
    return {"baseline": "a" * 40, "rounds": 3, "benchmarks": benchmarks, "only_one_side": []}


def _speedup(speedup: float) -> dict[str, Any]:
    return {
        "cores": 2,
        "serial_s": 40.0,
        "parallel_s": {"2": 40.0 / speedup},
        "speedup": speedup,
        "best_workers": 2,
        "min_speedup": 1.2,
    }


def write_history(root: Path) -> None:
    """Every section of the report has data: outcomes on clean and dirty trees, durations,
    benchmarks, speedups, skips with reasons, and a soak that found flaky tests."""
    history = History(root / ".gates" / "history.jsonl")
    minutes = 0
    skip = {"test": "tests/test_vm.py::test_boot", "reason": "qemu-system-x86_64 not found"}
    runs: list[tuple[str, bool, list[tuple[str, str, Outcome, dict[str, Any]]]]] = [
        ("1" * 40, False, [
            ("deps", "lock", "passed", {}),
            ("unit", "serial", "passed", {}),
            ("unit", "speedup", "passed", {"metrics": _speedup(1.4)}),
            ("e2e", "e2e", "failed", {}),
            ("bench", "compare", "passed", {"metrics": _bench(1.01)}),
        ]),
        ("1" * 40, True, [("deps", "lock", "passed", {}), ("unit", "serial", "failed", {})]),
        ("2" * 40, False, [
            ("deps", "lock", "passed", {}),
            ("unit", "serial", "passed", {"skips": [skip]}),
            ("unit", "speedup", "passed", {"metrics": _speedup(1.3)}),
            ("e2e", "e2e", "skipped", {}),
            ("bench", "compare", "failed", {"metrics": _bench(1.25)}),
        ]),
    ]  # fmt: skip
    for number, (commit, dirty, gates) in enumerate(runs):
        for phase, gate, outcome, extra in gates:
            minutes += 4
            history.append(
                Record(
                    run_id=f"run-{number}",
                    time=(START + timedelta(minutes=minutes)).isoformat(),
                    commit=commit,
                    dirty=dirty,
                    diff_hash="d1ff" if dirty else "",
                    phase=phase,
                    gate=gate,
                    outcome=outcome,
                    duration_s=3.0 + minutes / 4,
                    metrics=extra.get("metrics", {}),
                    skips=extra.get("skips", []),
                    summary=f"{gate} {outcome}",
                )
            )
    soak = SoakResult("e2e")
    for number in (1, 2, 3, 4):
        outcomes = {
            "e2e.test_auth::test_login": "failed" if number == 3 else "passed",
            "e2e.test_auth::test_logout": "passed",
        }
        messages = {"e2e.test_auth::test_login": "Timeout 10000ms exceeded"}
        soak.runs.append(RunRecord(number, 0, 12.0, TestReport(outcomes, messages)))
    state = TreeState("2" * 40, False, "")
    store(soak, root / SOAK_DIR, run_id="20261120T100000Z-e2e001", started=START, state=state)


@pytest.fixture
def guard() -> PageGuard:
    """The page guard of these tests: the report's files are their own origin."""
    return PageGuard(origin="file://")


@pytest.fixture
def report_page(browser: Browser, guard: PageGuard) -> Iterator[Page]:
    """A plain page of the tier's browser, no live server; any request off the disk fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    guard.watch_context(context)

    def refuse(route: Route) -> None:
        guard.problems.append(f"the report requested {route.request.url}")
        route.abort()

    context.route("http*://**/*", refuse)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_every_chart_of_the_report_renders(
    report_page: Page, tmp_path: Path, output_path: str
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text(PIPELINE)
    write_history(root)
    index = write_report(root)

    page = report_page
    page.goto(index.as_uri())
    expect(page.get_by_role("heading", name="Gate report: report-e2e")).to_be_visible()
    for section in ("Gate outcomes", "Tier durations", "Benchmark trends", "Parallel speedup"):
        expect(page.get_by_role("heading", name=section)).to_be_visible()
    expect(page.get_by_text("qemu-system-x86_64 not found")).to_be_visible()
    expect(page.get_by_role("cell", name="e2e.test_auth::test_login")).to_be_visible()

    images: list[dict[str, Any]] = page.locator("img").evaluate_all(
        """images => images.map(image => {
            image.scrollIntoView();
            const box = image.getBoundingClientRect();
            return {src: image.getAttribute("src"), complete: image.complete,
                    width: image.naturalWidth, height: image.naturalHeight,
                    shownWidth: box.width, shownHeight: box.height};
        })"""
    )
    assert sorted(image["src"] for image in images) == [
        "chart-bench.svg",
        "chart-durations.svg",
        "chart-outcomes.svg",
        "chart-soak-20261120T100000Z-e2e001.svg",
        "chart-speedup.svg",
    ]
    for image in images:
        assert image["complete"], f"{image['src']} did not load"
        assert image["width"] > 300, f"{image['src']}: natural size {image}"
        assert image["height"] > 100, f"{image['src']}: natural size {image}"
        assert image["shownWidth"] > 300, f"{image['src']}: shown at {image}"
        assert image["shownHeight"] > 100, f"{image['src']}: shown at {image}"

    shot = Path(output_path) / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    height = int.from_bytes(data[20:24], "big")  # the IHDR chunk: width, then height
    assert height > 800, "a full-page screenshot is taller than the viewport"
