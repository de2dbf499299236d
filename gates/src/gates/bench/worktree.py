"""The baseline's side of a comparison: a temporary git worktree that never outlives its run.

Each scratch dir is locked by the process that made it; the kernel drops the lock when that
process dies, so `sweep` removes only what killed runs left behind, never a running comparison's.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from gates.bench.settings import BenchSettings
from gates.engine.execution import Shell
from gates.errors import GatesError, GitError


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit here (as Ctrl-C raises KeyboardInterrupt), so `finally` blocks
    run; other threads cannot install handlers and keep the default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _git(root: Path, shell: Shell, log: Path, environ: Mapping[str, str], *args: str) -> None:
    status = shell(["git", *args], cwd=root, log=log, env=environ, timeout=600)
    if status != 0:
        raise GitError(f"`git {' '.join(args)}` failed in {root} (exit status {status}); see {log}")


SCRATCH_PREFIX = "gates-bench-"
LOCK_NAME = ".owner.lock"
# A scratch dir without its lock file is another run's for this long (mkdtemp, then the lock).
UNLOCKED_GRACE_S = 60.0


def _hold_lock(scratch: Path) -> int:
    """Lock `scratch` for this process: the kernel drops the lock when the process dies, even by
    SIGKILL, which is how a later run tells a leftover from a comparison still running."""
    # Locked before it gets its name, so no sweeper ever sees it unlocked.
    unnamed = scratch / f"{LOCK_NAME}.{os.getpid()}"
    fd = os.open(unnamed, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\n".encode())
    unnamed.rename(scratch / LOCK_NAME)
    return fd


def _abandoned(scratch: Path) -> bool:
    lock = scratch / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        try:
            return time.time() - scratch.stat().st_mtime > UNLOCKED_GRACE_S
        except FileNotFoundError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its owner is alive
    finally:
        os.close(fd)
    return True


def sweep(
    root: Path,
    *,
    shell: Shell,
    log: Path,
    environ: Mapping[str, str],
    temp_dir: Path | None = None,
) -> list[Path]:
    """Remove the scratch dirs (worktree and environment) of comparisons that were killed, of
    any run and any repository, then prune this repository's worktree list. Returns them."""
    removed = []
    for scratch in sorted(Path(temp_dir or tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*")):
        if scratch.is_dir() and not scratch.is_symlink() and _abandoned(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
            removed.append(scratch)
    if removed:
        shell(["git", "worktree", "prune"], cwd=root, log=log, env=environ, timeout=600)
    return removed


@contextmanager
def worktree(
    root: Path,
    commit: str,
    *,
    shell: Shell,
    log: Path,
    environ: Mapping[str, str],
    prefix: str = SCRATCH_PREFIX,
) -> Iterator[Path]:
    """Check `commit` out into a temporary worktree; it is removed (and pruned) on every exit:
    success, failure, exception, Ctrl-C or SIGTERM. A SIGKILL leaves it behind, unlocked, for
    `sweep` to remove."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    lock = _hold_lock(scratch)
    path = scratch / "tree"
    with _terminate_as_exit():
        try:
            _git(root, shell, log, environ, "worktree", "add", "--detach", str(path), commit)
            yield path
        finally:
            if path.exists():
                shell(
                    ["git", "worktree", "remove", "--force", str(path)],
                    cwd=root,
                    log=log,
                    env=environ,
                    timeout=600,
                )
            shutil.rmtree(scratch, ignore_errors=True)
            os.close(lock)
            shell(["git", "worktree", "prune"], cwd=root, log=log, env=environ, timeout=600)


def copy_caches(root: Path, tree: Path, paths: Sequence[str]) -> list[str]:
    """Copy each existing path of `paths` from the working tree into the worktree (files and
    dirs; symlinks stay links); returns the ones copied."""
    copied = []
    for relative in paths:
        source, target = root / relative, tree / relative
        if not source.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        copied.append(relative)
    return copied


@contextmanager
def synced_baseline(
    root: Path,
    commit: str,
    *,
    settings: BenchSettings,
    shell: Shell,
    log: Path,
    environ: Mapping[str, str],
    prefix: str,
    timeout: float,
    error: type[GatesError] = GatesError,
    check: Callable[[Path], None] = lambda _tree: None,
) -> Iterator[tuple[Path, dict[str, str]]]:
    """`commit` in a scratch worktree with an environment of its own (`uv sync --locked` of the
    tier's groups into `<scratch>/venv`, the caches of `copy_to_baseline` copied in first):
    yields the tree and the environment to run it with, which never holds the test-only
    slowdown switch. `check(tree)` runs before anything is copied or synced; a failed sync
    raises `error`."""
    dropped = {"VIRTUAL_ENV", settings.slowdown_env}
    with worktree(root, commit, shell=shell, log=log, environ=environ, prefix=prefix) as tree:
        env = {k: v for k, v in environ.items() if k not in dropped}
        env["UV_PROJECT_ENVIRONMENT"] = str(tree.parent / "venv")
        check(tree)
        copy_caches(root, tree, settings.copy_to_baseline)
        sync = ["uv", "sync", "--locked", *(f"--group={g}" for g in settings.groups), "--quiet"]
        if shell(sync, cwd=tree, log=log, env=env, timeout=timeout) != 0:
            raise error(f"syncing the baseline's environment failed; see {log}")
        yield tree, env
