"""Which commit the bench gate compares the candidate with: never the candidate itself.

The candidate is HEAD plus whatever the working tree changes. The baseline is, in order:

1. `--baseline REV`, as given;
2. on a pull request in CI (`GITHUB_BASE_REF` set), the merge-base of HEAD with the target
   branch, fetched from `origin` (and the history deepened) when the checkout lacks it;
3. the newest green commit of the history that is a strict ancestor of HEAD — or HEAD itself
   when the working tree differs from it, since then the uncommitted change is the candidate.

Whichever rule applies, a baseline equal to the candidate is no baseline: the gate is skipped
with the reason and the command that names one, never passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gates.engine.history import History
from gates.errors import GatesError
from gates.git.repository import Repository

REMOTE = "origin"
BASELINE_COMMAND = "gates run --only bench --baseline REV"


class BaselineError(GatesError):
    """A baseline was asked for but cannot be had (an unknown revision, a failed fetch)."""


@dataclass(frozen=True)
class Baseline:
    """What the bench gate compares: the candidate's label, the baseline (None: skip) and why."""

    candidate: str  # e.g. "abc123def456 (+ uncommitted changes)"
    commit: str | None  # the baseline's full sha; None when there is none to compare with
    source: str  # which rule chose it, e.g. "--baseline", "merge-base with origin/main"
    reason: str = ""  # when `commit` is None: one line saying why, and what to run instead

    def describe(self, repository: Repository) -> str:
        """`candidate abc123 (+ uncommitted changes) against def456 (newest green ancestor)`."""
        if self.commit is None:
            return f"candidate {self.candidate}: {self.reason}"
        return f"candidate {self.candidate} against {repository.short(self.commit)} ({self.source})"


def choose(
    repository: Repository,
    *,
    history: History,
    required: Iterable[tuple[str, str]],
    environ: Mapping[str, str],
    explicit: str | None = None,
) -> Baseline:
    """Choose the bench gate's baseline by the rules of this module's docstring.

    Raises BaselineError when `explicit` names no commit or the target branch cannot be fetched.
    """
    state = repository.state()
    head = state.commit
    candidate = repository.short(head) + (" (+ uncommitted changes)" if state.dirty else "")
    if not head:
        return Baseline("(no commit)", None, "", "the repository has no commit yet")

    def is_candidate(commit: str) -> bool:
        return commit == head and not state.dirty

    def pick(source: str, commit: str) -> Baseline:
        if not is_candidate(commit):
            return Baseline(candidate, commit, source)
        return Baseline(
            candidate,
            None,
            source,
            f"the baseline {repository.short(commit)} ({source}) is the candidate itself and "
            f"the tree has no uncommitted changes: nothing to compare; name an earlier commit: "
            f"{BASELINE_COMMAND}",
        )

    if explicit:
        commit = repository.resolve(explicit)
        if commit is None:
            raise BaselineError(f"--baseline {explicit!r} names no commit here")
        return pick("--baseline", commit)
    target = environ.get("GITHUB_BASE_REF", "").strip()
    if target:
        return pick(f"merge-base with {REMOTE}/{target}", merge_base(repository, target))
    green = set(history.green_commits(required))
    for commit in repository.git("rev-list", "--topo-order", "HEAD").split():
        if commit in green and not is_candidate(commit):
            return Baseline(candidate, commit, "newest green ancestor")
    before = "at or before" if state.dirty else "before"
    return Baseline(
        candidate,
        None,
        "newest green ancestor",
        f"no green commit {before} {repository.short(head)} in {history.path.name} to compare "
        f"with (the candidate is never its own baseline); name one: {BASELINE_COMMAND}",
    )


def merge_base(repository: Repository, branch: str) -> str:
    """The merge-base of HEAD with `origin/<branch>`, fetching the branch — and deepening a
    shallow checkout — when the merge-base is not in the local history yet."""
    ref = f"refs/remotes/{REMOTE}/{branch}"

    def found() -> str:
        if repository.resolve(ref) is None:
            return ""
        return repository.git("merge-base", "HEAD", ref, check=False).strip()

    commit = found()
    if not commit:
        shallow = repository.git("rev-parse", "--is-shallow-repository").strip() == "true"
        refspec = f"+refs/heads/{branch}:{ref}"
        try:
            repository.git("fetch", "--no-tags", "--quiet", REMOTE, refspec)
            commit = found()
            if not commit and shallow:
                repository.git("fetch", "--no-tags", "--quiet", "--unshallow", REMOTE, refspec)
                commit = found()
        except GatesError as error:
            raise BaselineError(
                f"cannot fetch the pull request's target branch {branch!r} from {REMOTE}: "
                f"{error}; name a baseline instead: {BASELINE_COMMAND}"
            ) from error
    if not commit:
        raise BaselineError(
            f"HEAD and {REMOTE}/{branch} have no merge-base; name a baseline: {BASELINE_COMMAND}"
        )
    return commit
