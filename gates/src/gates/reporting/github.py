"""GitHub reporting: one commit status per phase and one sticky pull-request comment.

Reporting is a side channel: any failure to reach GitHub is printed as a warning and never
changes a gate's outcome.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from github import Auth, Github, GithubException
from github.GithubObject import NotSet
from github.Repository import Repository as GitHubRepository

from gates.engine.execution import GateResult
from gates.engine.pipeline import Gate, Phase
from gates.engine.runner import Run

MARKER = "<!-- gates:summary -->"
DESCRIPTION_LIMIT = 140  # GitHub rejects longer status descriptions
Warn = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """Where to report: repository, commit, pull request (if any), and a link to the run."""

    token: str
    repository: str
    sha: str
    pull_request: int | None = None
    target_url: str | None = None
    api_url: str = "https://api.github.com"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Target | None:
        """Read what GitHub Actions provides; None when token, repository or sha is missing."""
        token = environ.get("GITHUB_TOKEN", "")
        repository = environ.get("GITHUB_REPOSITORY", "")
        event = _event(environ.get("GITHUB_EVENT_PATH"))
        pull = event.get("pull_request") or {}
        # On pull_request events GITHUB_SHA is a merge commit; the status belongs on the head.
        sha = str((pull.get("head") or {}).get("sha") or environ.get("GITHUB_SHA", ""))
        if not (token and repository and sha):
            return None
        number = pull.get("number")
        if number is None:
            match = re.fullmatch(r"refs/pull/(\d+)/merge", environ.get("GITHUB_REF", ""))
            number = int(match.group(1)) if match else None
        run_id = environ.get("GITHUB_RUN_ID")
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        return cls(
            token=token,
            repository=repository,
            sha=sha,
            pull_request=int(number) if number is not None else None,
            target_url=f"{server}/{repository}/actions/runs/{run_id}" if run_id else None,
            api_url=environ.get("GITHUB_API_URL", "https://api.github.com"),
        )


def _event(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def phase_description(results: Sequence[tuple[Gate, GateResult]]) -> str:
    """The key metric of a phase: the failing gate's summary, else every gate's, shortened."""
    failed = [(g, r) for g, r in results if r.outcome == "failed"]
    chosen = failed[:1] or results
    text = "; ".join(f"{g.name}: {r.summary or r.outcome}" for g, r in chosen) or "no gates"
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


def summary_markdown(run: Run, sha: str, marker: str = MARKER) -> str:
    """The sticky comment: a marker line, a verdict and a table of every gate."""
    verdict = "✅ all gates passed" if run.passed else f"❌ {run.failed[0][0].key} failed"
    rows = ["| phase | gate | outcome | time | summary |", "|---|---|---|---|---|"]
    for phase in run.phases:
        ran = {g.name: r for g, r in run.results if g.phase == phase.name}
        for gate in phase.gates:
            result = ran.get(gate.name)
            outcome = result.outcome if result else "not run"
            seconds = f"{result.duration_s:.1f} s" if result else ""
            summary = (result.summary if result else "").replace("|", "\\|")
            rows.append(f"| {phase.name} | {gate.name} | {outcome} | {seconds} | {summary} |")
    return (
        f"{marker}\n### Gates: {verdict} (commit `{sha[:12]}`, run {run.run_id})\n\n"
        + "\n".join(rows)
    )


def make_client(target: Target, *, paced: bool = True) -> Github:
    """A lazy client (no request until one is needed) without retries: a report is best effort.

    `paced` keeps PyGithub's pauses between requests, which GitHub asks integrations to make;
    replay tests turn them off.
    """
    if paced:
        return Github(
            auth=Auth.Token(target.token),
            base_url=target.api_url,
            lazy=True,
            retry=None,
            timeout=15,
        )
    return Github(
        auth=Auth.Token(target.token),
        base_url=target.api_url,
        lazy=True,
        retry=None,
        timeout=15,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


class GitHubReporter:
    """A run reporter that mirrors phases to commit statuses and the summary to a PR comment."""

    def __init__(
        self, target: Target, warn: Warn, *, client: Github | None = None, marker: str = MARKER
    ) -> None:
        self.target = target
        self.marker = marker  # finds the sticky comment among all comments of the PR
        self._warn = warn
        self._client = client or make_client(target)
        self._repo: GitHubRepository | None = None

    def _repository(self) -> GitHubRepository:
        if self._repo is None:
            self._repo = self._client.get_repo(self.target.repository)
        return self._repo

    def _guard(self, what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except (GithubException, OSError, ValueError) as error:
            self._warn(f"GitHub reporting failed ({what}): {error}; gate outcomes are unaffected")

    def set_status(self, phase: str, state: str, description: str) -> None:
        """Set commit status `gates/<phase>` on the target commit."""

        def post() -> None:
            commit = self._repository().get_commit(self.target.sha)
            commit.create_status(
                state=state,
                target_url=self.target.target_url or NotSet,
                description=description[:DESCRIPTION_LIMIT],
                context=f"gates/{phase}",
            )

        self._guard(f"status gates/{phase}", post)

    def upsert_comment(self, body: str) -> None:
        """Edit the comment carrying the marker, or create it: one sticky comment per PR."""
        number = self.target.pull_request
        if number is None:
            return

        def upsert() -> None:
            issue = self._repository().get_issue(number)
            for comment in issue.get_comments():
                if self.marker in (comment.body or ""):
                    comment.edit(body)
                    return
            issue.create_comment(body)

        self._guard(f"comment on pull request #{number}", upsert)

    # Reporter protocol
    def run_started(self, run: Run) -> None:
        return None

    def phase_started(self, phase: Phase) -> None:
        self.set_status(phase.name, "pending", f"running {len(phase.gates)} gates")

    def gate_started(self, gate: Gate) -> None:
        return None

    def gate_finished(self, gate: Gate, result: GateResult) -> None:
        return None

    def phase_finished(self, phase: Phase, results: Sequence[tuple[Gate, GateResult]]) -> None:
        failed = any(r.outcome == "failed" for _, r in results)
        self.set_status(phase.name, "failure" if failed else "success", phase_description(results))

    def run_finished(self, run: Run) -> None:
        self.upsert_comment(summary_markdown(run, self.target.sha, self.marker))
