"""GitHub reporting against the real API: commit statuses and the sticky PR comment.

Runs only with GITHUB_TOKEN and HANGAR_TEST_GITHUB_REPO (owner/name of a scratch repository the
token may write statuses to); HANGAR_TEST_GITHUB_PR (a pull request number there) adds the sticky
comment check. Statuses use a context unique to this run; the comment is deleted afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from github import Auth, Github
from github.Repository import Repository

from gates.reporting.github import GitHubReporter, Target

REQUIRED = ("GITHUB_TOKEN", "HANGAR_TEST_GITHUB_REPO")
missing = [name for name in REQUIRED if not os.environ.get(name)]
pytestmark = pytest.mark.skipif(
    bool(missing), reason=f"set {' and '.join(REQUIRED)} to run (missing: {', '.join(missing)})"
)


@pytest.fixture
def repository() -> Iterator[Repository]:
    client = Github(auth=Auth.Token(os.environ["GITHUB_TOKEN"]))
    yield client.get_repo(os.environ["HANGAR_TEST_GITHUB_REPO"])
    client.close()


def reporter(repository: Repository, sha: str, marker: str, pull: int | None) -> GitHubReporter:
    target = Target(
        token=os.environ["GITHUB_TOKEN"],
        repository=repository.full_name,
        sha=sha,
        pull_request=pull,
    )
    return GitHubReporter(target, pytest.fail, marker=marker)  # any reporting failure fails


def test_commit_status_per_phase(repository: Repository) -> None:
    sha = repository.get_branch(repository.default_branch).commit.sha
    phase = f"hangar-test-{secrets.token_hex(4)}"
    github = reporter(repository, sha, "<!-- unused -->", None)
    github.set_status(phase, "pending", "running 1 gates")
    github.set_status(phase, "success", "serial: 3 passed, 0 failed, 0 skipped")
    statuses = [
        s for s in repository.get_commit(sha).get_statuses() if s.context == f"gates/{phase}"
    ]
    assert [s.state for s in statuses][:2] == ["success", "pending"]  # newest first
    assert statuses[0].description == "serial: 3 passed, 0 failed, 0 skipped"


@pytest.mark.skipif(
    not os.environ.get("HANGAR_TEST_GITHUB_PR"),
    reason="set HANGAR_TEST_GITHUB_PR to check the comment",
)
def test_sticky_comment_is_updated_in_place(repository: Repository) -> None:
    number = int(os.environ["HANGAR_TEST_GITHUB_PR"])
    issue = repository.get_issue(number)
    marker = f"<!-- gates:test-{secrets.token_hex(4)} -->"
    github = reporter(repository, repository.get_pull(number).head.sha, marker, number)
    try:
        github.upsert_comment(f"{marker}\nfirst")
        github.upsert_comment(f"{marker}\nsecond")
        mine = [c for c in issue.get_comments() if marker in (c.body or "")]
        assert [c.body for c in mine] == [f"{marker}\nsecond"]
    finally:
        for comment in issue.get_comments():
            if marker in (comment.body or ""):
                comment.delete()
