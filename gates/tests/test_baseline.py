"""The bench gate's baseline is never the candidate: the rules, in real git repositories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gates_testing import git

from gates.bench.baseline import BaselineError, choose
from gates.engine.history import History, Record
from gates.git.repository import Repository

REQUIRED = [("unit", "ok")]


def commit(root: Path, name: str) -> str:
    (root / name).write_text(f"{name}\n")
    git(root, "add", name)
    git(root, "commit", "-qm", name)
    return git(root, "rev-parse", "HEAD").strip()


def green(history: History, sha: str, *, outcome: str = "passed") -> None:
    history.append(Record("r", "t", sha, False, "", "unit", "ok", outcome, 0.1))  # type: ignore[arg-type]


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    root = make_repo()
    (root / ".git" / "info" / "exclude").write_text("/.gates/\n")  # history is no change
    return root


def choose_in(repo: Path, explicit: str | None = None, **environ: str) -> tuple[str | None, str]:
    chosen = choose(
        Repository(repo),
        history=History(repo / ".gates" / "history.jsonl"),
        required=REQUIRED,
        environ=environ,
        explicit=explicit,
    )
    return chosen.commit, chosen.describe(Repository(repo))


def test_the_newest_green_strict_ancestor_is_chosen(repo: Path) -> None:
    history = History(repo / ".gates" / "history.jsonl")
    a = git(repo, "rev-parse", "HEAD").strip()
    b = commit(repo, "b")
    git(repo, "switch", "-qc", "elsewhere")
    elsewhere = commit(repo, "elsewhere")
    git(repo, "switch", "-q", "main")
    c = commit(repo, "c")
    for sha in (elsewhere, c, a, b):  # verified in any order; ancestry decides
        green(history, sha)
    found, words = choose_in(repo)
    assert found == b
    assert words == f"candidate {c[:12]} against {b[:12]} (newest green ancestor)"


def test_a_commit_with_a_failed_gate_is_not_green(repo: Path) -> None:
    history = History(repo / ".gates" / "history.jsonl")
    a = git(repo, "rev-parse", "HEAD").strip()
    b = commit(repo, "b")
    commit(repo, "c")
    green(history, a)
    green(history, b)
    green(history, b, outcome="failed")
    assert choose_in(repo)[0] == a


def test_head_is_the_baseline_only_when_the_tree_has_uncommitted_changes(repo: Path) -> None:
    history = History(repo / ".gates" / "history.jsonl")
    head = git(repo, "rev-parse", "HEAD").strip()
    green(history, head)
    found, words = choose_in(repo)
    assert found is None
    assert words == (
        f"candidate {head[:12]}: no green commit before {head[:12]} in history.jsonl to compare "
        "with (the candidate is never its own baseline); name one: "
        "gates run --only bench --baseline REV"
    )
    (repo / "README.md").write_text("changed\n")
    found, words = choose_in(repo)
    assert found == head
    assert words.startswith(f"candidate {head[:12]} (+ uncommitted changes) against {head[:12]}")


def test_an_empty_history_gives_no_baseline_and_names_the_command(repo: Path) -> None:
    commit(repo, "b")
    found, words = choose_in(repo)
    assert found is None
    assert "--baseline REV" in words


def test_an_explicit_baseline_wins_but_never_as_the_candidate(repo: Path) -> None:
    a = git(repo, "rev-parse", "HEAD").strip()
    commit(repo, "b")
    assert choose_in(repo, "HEAD~1")[0] == a
    found, words = choose_in(repo, "HEAD")
    assert found is None
    assert "is the candidate itself" in words
    with pytest.raises(BaselineError, match="--baseline 'nope' names no commit here"):
        choose_in(repo, "nope")


def test_a_pull_request_compares_with_its_merge_base_fetched_into_a_shallow_clone(
    repo: Path, tmp_path: Path
) -> None:
    commit(repo, "b")
    base = commit(repo, "c")
    git(repo, "switch", "-qc", "feature")
    commit(repo, "d")
    commit(repo, "e")
    git(repo, "switch", "-q", "main")
    commit(repo, "main-moved-on")  # the target branch advanced after the fork
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "--depth=1", "--branch=feature", f"file://{repo}", str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository").strip() == "true"
    found, words = choose_in(clone, GITHUB_BASE_REF="main")
    assert found == base
    assert words.endswith(f"against {base[:12]} (merge-base with origin/main)")


def test_a_target_branch_that_cannot_be_fetched_is_an_error_naming_it(repo: Path) -> None:
    with pytest.raises(BaselineError, match="cannot fetch the pull request's target branch 'x'"):
        choose_in(repo, GITHUB_BASE_REF="x")


def test_a_repository_without_commits_has_no_baseline(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / ".git" / "info" / "exclude").write_text("/.gates/\n")
    found, words = choose_in(tmp_path)
    assert found is None
    assert "no commit yet" in words
