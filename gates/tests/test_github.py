"""GitHub reporting against replayed API exchanges: the exact requests, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import responses
from responses import registries

from gates.engine.execution import GateResult
from gates.engine.pipeline import Gate, Phase
from gates.engine.runner import Run
from gates.git.repository import TreeState
from gates.reporting.github import (
    GitHubReporter,
    Target,
    make_client,
    phase_description,
    summary_markdown,
)

FIXTURES = Path(__file__).parent / "fixtures" / "github"
API = "https://api.github.com:443"  # PyGithub spells the port out
DEPS = Phase(0, "deps", (Gate("deps", "lock", "run", ("uv", "lock", "--check")),))
UNIT = Phase(1, "unit", (Gate("unit", "serial", "session", "unit-3.11", junit=True),))


def scenario(name: str) -> tuple[str, list[dict[str, Any]]]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    return data["sha"], data["exchanges"]


def target(sha: str, pull_request: int | None = 7) -> Target:
    return Target(
        token="t0k3n",
        repository="acme/hangar",
        sha=sha,
        pull_request=pull_request,
        target_url="https://github.com/acme/hangar/actions/runs/42",
    )


def reporter(where: Target, warn: Any) -> GitHubReporter:
    return GitHubReporter(where, warn, client=make_client(where, paced=False))


def fill(value: Any, summary: str) -> Any:
    """Put the computed comment body where a fixture says __SUMMARY__."""
    if value == "__SUMMARY__":
        return summary
    if isinstance(value, dict):
        return {k: fill(v, summary) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, summary) for v in value]
    return value


def replay(
    exchanges: list[dict[str, Any]], summary: str
) -> tuple[responses.RequestsMock, list[dict[str, Any]]]:
    mock = responses.RequestsMock(registry=registries.OrderedRegistry)
    expected = []
    for exchange in exchanges:
        request, response = exchange["request"], exchange["response"]
        body = fill(response["body"], summary)
        mock.add(request["method"], API + request["path"], json=body, status=response["status"])
        expected.append(
            {
                "method": request["method"],
                "path": request["path"],
                "body": fill(request["body"], summary),
            }
        )
    return mock, expected


def sent(mock: responses.RequestsMock) -> list[dict[str, Any]]:
    calls = []
    for call in mock.calls:
        request = call.request
        assert request.headers["Authorization"] == "token t0k3n"
        path = (request.url or "").removeprefix(API)
        raw = request.body
        body = json.loads(raw) if isinstance(raw, str | bytes) and raw else None
        calls.append({"method": request.method, "path": path, "body": body})
    return calls


def play(reporter: GitHubReporter, run: Run) -> None:
    reporter.run_started(run)
    for phase in run.phases:
        results = [(g, r) for g, r in run.results if g.phase == phase.name]
        if not results:
            continue
        reporter.phase_started(phase)
        for gate, result in results:
            reporter.gate_started(gate)
            reporter.gate_finished(gate, result)
        reporter.phase_finished(phase, results)
    reporter.run_finished(run)


def test_passing_run_sets_statuses_and_edits_the_sticky_comment() -> None:
    sha, exchanges = scenario("passing_run_updates_sticky_comment")
    run = Run(
        "run-1",
        TreeState(sha, False, ""),
        [DEPS, UNIT],
        [
            (DEPS.gates[0], GateResult("passed", 1.0, "exit status 0")),
            (UNIT.gates[0], GateResult("passed", 9.5, "5 passed, 0 failed, 1 skipped")),
        ],
    )
    summary = summary_markdown(run, sha)
    mock, expected = replay(exchanges, summary)
    warnings: list[str] = []
    with mock:
        play(reporter(target(sha), warnings.append), run)
        assert sent(mock) == expected
    assert warnings == []
    assert "| unit | serial | passed | 9.5 s | 5 passed, 0 failed, 1 skipped |" in summary
    assert summary.startswith("<!-- gates:summary -->\n### Gates: ✅ all gates passed")


def test_failing_run_reports_failure_and_creates_the_comment() -> None:
    sha, exchanges = scenario("failing_run_creates_sticky_comment")
    run = Run(
        "run-2",
        TreeState(sha, False, ""),
        [DEPS, UNIT],
        [(DEPS.gates[0], GateResult("failed", 0.5, "exit status 1"))],
    )
    summary = summary_markdown(run, sha)
    mock, expected = replay(exchanges, summary)
    with mock:
        play(reporter(target(sha), pytest.fail), run)
        assert sent(mock) == expected
    assert "❌ deps/lock failed" in summary
    assert "| unit | serial | not run |  |  |" in summary


def test_github_errors_only_warn() -> None:
    sha, exchanges = scenario("github_errors")
    run = Run(
        "run-3",
        TreeState(sha, False, ""),
        [DEPS],
        [(DEPS.gates[0], GateResult("passed", 1.0, "exit status 0"))],
    )
    mock, expected = replay(exchanges, summary_markdown(run, sha))
    warnings: list[str] = []
    with mock:
        play(reporter(target(sha), warnings.append), run)
        assert sent(mock) == expected
    assert len(warnings) == 3
    assert warnings[0].startswith(
        "GitHub reporting failed (status gates/deps): Resource not accessible by integration: 403"
    )
    assert warnings[1].startswith("GitHub reporting failed (status gates/deps): Server Error: 500")
    assert warnings[2].startswith("GitHub reporting failed (comment on pull request #7): 404")
    assert all(w.endswith("gate outcomes are unaffected") for w in warnings)
    assert run.passed  # reporting never changes an outcome


def test_without_a_pull_request_there_is_no_comment() -> None:
    run = Run("r", TreeState("s", False, ""), [], [])
    with responses.RequestsMock() as mock:
        reporter(target("s", pull_request=None), pytest.fail).run_finished(run)
        assert len(mock.calls) == 0


def test_description_is_the_key_metric_within_githubs_limit() -> None:
    gate = Gate("u", "g", "run", ("x",))
    other = Gate("u", "h", "run", ("x",))
    assert phase_description([]) == "no gates"
    assert (
        phase_description(
            [
                (gate, GateResult("passed", summary="ok")),
                (other, GateResult("failed", summary="bad")),
            ]
        )
        == "h: bad"
    )
    long = phase_description([(gate, GateResult("passed", summary="x" * 300))])
    assert len(long) == 140
    assert long.endswith("…")


def test_target_comes_from_the_actions_environment(tmp_path: Path) -> None:
    assert Target.from_environment({"GITHUB_TOKEN": "t"}) is None
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": "head-sha"}}}))
    pull = Target.from_environment(
        {
            "GITHUB_TOKEN": "t",
            "GITHUB_REPOSITORY": "acme/hangar",
            "GITHUB_SHA": "merge-sha",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_RUN_ID": "42",
        }
    )
    assert pull == Target(
        "t", "acme/hangar", "head-sha", 7, "https://github.com/acme/hangar/actions/runs/42"
    )
    push = Target.from_environment(
        {
            "GITHUB_TOKEN": "t",
            "GITHUB_REPOSITORY": "acme/hangar",
            "GITHUB_SHA": "push-sha",
            "GITHUB_REF": "refs/pull/9/merge",
            "GITHUB_EVENT_PATH": str(tmp_path / "absent.json"),
            "GITHUB_API_URL": "https://ghe.example/api/v3",
        }
    )
    assert push is not None
    assert (push.sha, push.pull_request, push.target_url) == ("push-sha", 9, None)
    assert push.api_url == "https://ghe.example/api/v3"
    event.write_text("[]")
    odd = Target.from_environment(
        {
            "GITHUB_TOKEN": "t",
            "GITHUB_REPOSITORY": "a/b",
            "GITHUB_SHA": "s",
            "GITHUB_EVENT_PATH": str(event),
        }
    )
    assert odd is not None
    assert odd.pull_request is None
