"""Run ids, the reaper that ends a run's outside processes when it dies, and the sweeper that
removes what killed runs left behind — never a live run's.

**The convention.** Every pytest process has one run id, `<pid>-<6 hex>` (its own pid first, so
each xdist worker has its own), and whatever it starts or creates outside pytest's temp dir
carries the run's tag `hangar-test-<run id>`:

- every process the run starts carries it in its environment (`TESTKIT_RUN_TAG`, set when this
  module is imported, so it is inherited at the start itself, by grandchildren too: a QEMU that a
  live server daemonizes, a postmaster that `pg_ctl` starts, Chromium under Playwright's driver);
- a directory carries it in its name (`hangar-test-<run id>` or `hangar-test-<run id>-<label>…`,
  see `new_dir`), and a process that names a path in such a dir (`-D`, `--user-data-dir`,
  `-pidfile`, `HANGAR_DATA_DIR`, a QEMU key `-name …:hangar-test-<run id>-…`) carries it too.

A name that only starts with `hangar-test-` is no run's and is never touched. Nothing here knows
what a process is: a process belongs to a run when the run's tag appears in its command line or
its environment (`runs_of`). What the tag cannot say is written in the run's **journal**
(`register_pidfile`, `register_process`): the signal a process wants first (PostgreSQL's
immediate shutdown is SIGQUIT; a SIGKILL would leave its shared memory behind), and process
groups and pids that may carry no tag.

**The reaper** (`start_reaper`, `testkit.reaper`) is a small process per pytest process, in a
session of its own (a `kill -9` of the run's process group spares it), that reads a pipe from the
run until it closes — when the run ends, however it ends, even by `kill -9` — and then `reap`s the
run: the journal's processes get their signal, everything of the run that still runs gets
SIGKILL, and the run's tagged dirs in the temp roots are removed; then it exits.

**The sweeper** (`sweep`) is the second line of defence, at the start of a run: it reaps the runs
whose pytest process is gone (a reaper that was killed too, a machine that rebooted). A run whose
owner is alive (this one, a sibling xdist worker, a concurrent run) is never swept, nor a process
that also carries a live run's tag.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from testkit.waiting import wait_until

__all__ = [
    "ENV_TAG",
    "JOURNAL",
    "RUN_ID",
    "RUN_ID_PATTERN",
    "RUN_TAG",
    "SOCKET_ROOT",
    "TAG_IN_TEXT",
    "TEMP_ROOTS",
    "TEST_PREFIX",
    "Reaper",
    "TaggedProcess",
    "journal_dir",
    "new_dir",
    "owner_alive",
    "processes_of",
    "read_cmdline",
    "reap",
    "register_pidfile",
    "register_process",
    "run_id_of",
    "runs_of",
    "start_reaper",
    "sweep",
    "sweep_once",
    "tagged_dir_of",
    "tagged_processes",
    "wait_ended",
]

TEST_PREFIX = "hangar-test-"
RUN_ID = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
RUN_TAG = f"{TEST_PREFIX}{RUN_ID}"
# Inherited by every process this run starts: how the reaper finds what carries no tagged path.
ENV_TAG = "TESTKIT_RUN_TAG"
os.environ[ENV_TAG] = RUN_TAG
RUN_ID_PATTERN = r"\d+-[0-9a-f]{6}"
# A run's tag at the start of a name, alone or followed by `-…`; group 1 is the run id.
TAGGED = re.compile(rf"{TEST_PREFIX}({RUN_ID_PATTERN})(?:-|$)")
# A run's tag anywhere in a text (an argument, a path, a QEMU key, an environment value).
TAG_IN_TEXT = re.compile(rf"(?<![0-9A-Za-z-]){TEST_PREFIX}({RUN_ID_PATTERN})(?![0-9A-Za-z])")
# A Unix socket path must stay under 108 bytes: dirs that hold sockets (QEMU machines' data dirs,
# browser profiles, PostgreSQL clusters) live right in /tmp.
SOCKET_ROOT = Path("/tmp")  # noqa: S108 -- a short, fixed root is the point (socket paths)
# Where runs put their tagged dirs: the temp dir, and /tmp (see SOCKET_ROOT).
TEMP_ROOTS = tuple(dict.fromkeys((Path(tempfile.gettempdir()), SOCKET_ROOT)))
END_TIMEOUT_S = 10.0
# How long a process that asked for a gentler signal (a postmaster: SIGQUIT) gets before SIGKILL.
GRACE_S = 3.0
JOURNAL = "journal.jsonl"
PROC = Path("/proc")


# ------------------------------------------------------------------------------ run ids, dirs
def run_id_of(name: str) -> str | None:
    """`hangar-test-123-abcdef-web` -> `123-abcdef`; None for a name that is no run's tag."""
    match = TAGGED.match(name)
    return match.group(1) if match else None


def new_dir(label: str, root: Path | None = None) -> Path:
    """A new, unique dir `<root>/hangar-test-<run id>-<label><random>` (root: the temp dir).
    The reaper is started first: in a temp root, the dir goes when the run dies."""
    start_reaper()
    return Path(tempfile.mkdtemp(prefix=f"{RUN_TAG}-{label}", dir=root))


def tagged_dir_of(path: Path, roots: tuple[Path, ...] | None = TEMP_ROOTS) -> Path | None:
    """The tagged dir that is or holds `path`: right in one of `roots`, or anywhere for None."""
    for candidate in (path, *path.parents):
        if run_id_of(candidate.name) and (roots is None or candidate.parent in roots):
            return candidate
    return None


def journal_dir(run_id: str) -> Path:
    """Where run `run_id` keeps its journal: a tagged dir in /tmp, so it goes with the run."""
    return SOCKET_ROOT / f"{TEST_PREFIX}{run_id}-reaper"


# ------------------------------------------------------------------------------ /proc
def read_cmdline(pid: int) -> tuple[str, ...] | None:
    """The argv of a live (non-zombie) process, or None."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
        state = _stat(pid)[0]
    except (OSError, IndexError):
        return None
    if state in {"Z", "X"} or not raw:
        return None  # a zombie waits for a reaper that is not us; it no longer runs
    return tuple(part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0"))


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, …]."""
    return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def _start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the pid, who it is."""
    try:
        return int(_stat(pid)[19])
    except (OSError, IndexError, ValueError):
        return None


def _group_of(pid: int) -> int | None:
    try:
        return int(_stat(pid)[2])
    except (OSError, IndexError, ValueError):
        return None


def _environment(pid: int) -> list[str]:
    """The values of a process's environment as it started (empty if we may not read it)."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return []
    return [entry.split(b"=", 1)[-1].decode(errors="replace") for entry in raw.split(b"\0")]


def _pids() -> list[int]:
    return sorted(int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit())


def runs_of(pid: int) -> frozenset[str]:
    """The ids of the runs whose tag process `pid` carries (command line or environment)."""
    argv = read_cmdline(pid)
    if argv is None:
        return frozenset()
    texts = [*argv, *_environment(pid)]
    return frozenset(match.group(1) for text in texts for match in TAG_IN_TEXT.finditer(text))


def owner_alive(run_id: str) -> bool:
    """Whether the pytest process that owns `run_id` (its leading pid) still runs."""
    pid = run_id.split("-", 1)[0]
    if run_id == RUN_ID:
        return True
    if not pid.isdigit():
        return False
    argv = read_cmdline(int(pid))
    return argv is not None and any("pytest" in part or "python" in part for part in argv)


@dataclass(frozen=True)
class TaggedProcess:
    """A process that carries run tags: `what` it runs (its program's name) and whose it is."""

    pid: int
    what: str
    runs: frozenset[str]
    argv: tuple[str, ...]
    start: int | None = None

    def __str__(self) -> str:
        return f"{self.what} pid {self.pid}"


def _tagged(pid: int) -> TaggedProcess | None:
    found = runs_of(pid)
    argv = read_cmdline(pid)
    if not found or argv is None:
        return None
    return TaggedProcess(pid, Path(argv[0]).name, found, argv, _start_time(pid))


def tagged_processes() -> list[TaggedProcess]:
    """Every running process that carries some run's tag (but this process itself)."""
    found = (_tagged(pid) for pid in _pids() if pid != os.getpid())
    return [tagged for tagged in found if tagged is not None]


def processes_of(run_id: str) -> list[TaggedProcess]:
    """The running processes of one run."""
    return [tagged for tagged in tagged_processes() if run_id in tagged.runs]


def wait_ended(pid: int, timeout: float = END_TIMEOUT_S) -> None:
    """Return once process `pid` has ended (or is a zombie); WaitTimeoutError past `timeout`."""
    wait_until(
        lambda: read_cmdline(pid),
        until=lambda argv: argv is None,
        what=f"pid {pid} to end",
        timeout=timeout,
        interval=0.05,
    )


# ------------------------------------------------------------------------------ the journal
def _write_journal(entry: dict[str, Any]) -> None:
    """Append one entry to this run's journal (one write: whole lines, even under kill -9)."""
    start_reaper()
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    descriptor = os.open(
        journal_dir(RUN_ID) / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
    )
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


def register_pidfile(path: Path, stop: signal.Signals = signal.SIGKILL) -> None:
    """The process that `path` will name (its first word) belongs to this run and is ended with
    `stop` first. Register before the start: the pidfile is read when the run is reaped. The
    process must carry the run's tag too (a pid alone may be reused)."""
    _write_journal({"pidfile": str(path), "stop": stop.name})


def register_process(
    pid: int, *, group: bool = False, stop: signal.Signals = signal.SIGKILL
) -> None:
    """Process `pid` (with `group`: its process group too) belongs to this run and is ended with
    `stop` first. Its start time is kept, so a reused pid is never hit."""
    start = _start_time(pid)
    if start is None:
        return  # already gone
    _write_journal({"pid": pid, "start": start, "group": group, "stop": stop.name})


def _journal(run_id: str) -> list[dict[str, Any]]:
    try:
        lines = (journal_dir(run_id) / JOURNAL).read_text().splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entries.append(json.loads(line))
    return entries


# ------------------------------------------------------------------------------ reaping
@dataclass(frozen=True)
class _Target:
    process: TaggedProcess
    stop: signal.Signals


def _signal_of(name: object) -> signal.Signals:
    try:
        return signal.Signals[str(name)]
    except KeyError:
        return signal.SIGKILL


def _registered(run_id: str, entry: dict[str, Any]) -> list[tuple[int, signal.Signals]]:
    """The live processes a journal entry names, with the signal they want first."""
    stop = _signal_of(entry.get("stop"))
    if "pidfile" in entry:
        try:
            pid = int(Path(entry["pidfile"]).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [(pid, stop)] if run_id in runs_of(pid) else []
    pid = int(entry.get("pid", 0))
    leader = pid > 1 and _start_time(pid) == entry.get("start")
    found = [(pid, stop)] if leader else []
    if entry.get("group") and pid > 1:
        found += [
            (member, stop)
            for member in _pids()
            if member != pid and _group_of(member) == pid and (leader or run_id in runs_of(member))
        ]
    return found


def _targets(run_id: str, spare: Callable[[frozenset[str]], bool]) -> dict[int, _Target]:
    """What of run `run_id` still runs: tagged processes (SIGKILL) and the journal's (their own
    signal); never this process, the reaper itself, or the run's owner pid."""
    never = {os.getpid(), 1, int(run_id.split("-", 1)[0])}
    targets: dict[int, _Target] = {}
    for entry in _journal(run_id):
        for pid, stop in _registered(run_id, entry):
            argv = read_cmdline(pid)
            if argv is not None and pid not in never:
                found = TaggedProcess(pid, Path(argv[0]).name, runs_of(pid), argv, _start_time(pid))
                targets[pid] = _Target(found, stop)
    for tagged in processes_of(run_id):
        if tagged.pid not in never and tagged.pid not in targets:
            targets[tagged.pid] = _Target(tagged, signal.SIGKILL)
    return {pid: target for pid, target in targets.items() if not spare(target.process.runs)}


def _send(target: _Target, sig: signal.Signals) -> None:
    """Signal the target if it is still the process that was found (same start time)."""
    if _start_time(target.process.pid) == target.process.start:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target.process.pid, sig)


def _wait_all(targets: Iterable[_Target], timeout: float) -> None:
    """Wait until every target has ended, at most `timeout` seconds (never raises)."""
    deadline = time.monotonic() + timeout
    for target in targets:
        with contextlib.suppress(AssertionError):
            wait_ended(target.process.pid, max(0.0, deadline - time.monotonic()))


def _end(targets: dict[int, _Target], grace: float) -> None:
    """The gentler signals first (waiting up to `grace`), then SIGKILL for whatever remains."""
    gentle = [t for t in targets.values() if t.stop != signal.SIGKILL]
    for target in gentle:
        _send(target, target.stop)
    _wait_all(gentle, grace)
    for target in targets.values():
        _send(target, signal.SIGKILL)
    _wait_all(targets.values(), END_TIMEOUT_S)


def reap(
    run_id: str,
    roots: tuple[Path, ...] = TEMP_ROOTS,
    *,
    grace: float = GRACE_S,
    spare: Callable[[frozenset[str]], bool] = lambda runs: False,
) -> list[str]:
    """End every process of run `run_id` (the journal's with their signal, then SIGKILL) and
    remove its tagged dirs right in `roots` (pytest rotates its own temp dirs), the journal last.
    `spare(runs)` keeps a process that carries those runs' tags. Returns what went."""
    removed: list[str] = []
    for _ in range(3):  # a process may fork while its parent is ended: look again
        targets = _targets(run_id, spare)
        if not targets:
            break
        _end(targets, grace)
        removed += [str(target.process) for target in targets.values()]
    journal = journal_dir(run_id)
    for root in roots:
        for stale in sorted(root.glob(f"{TEST_PREFIX}{run_id}*")):
            ours = run_id_of(stale.name) == run_id and stale != journal
            if ours and stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
                removed.append(str(stale))
    shutil.rmtree(journal, ignore_errors=True)
    return removed


# ------------------------------------------------------------------------------ the reaper
@dataclass
class Reaper:
    """This process's reaper: `python -m testkit.reaper <run id>`, reading a pipe from us."""

    process: subprocess.Popen[bytes]
    owner: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self, timeout: float = 60.0) -> list[str]:
        """Close the pipe (as our death would) and wait for the reaper; what it ended."""
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return [f"the reaper pid {self.pid} did not finish within {timeout:g} s"]
        return output.decode(errors="replace").splitlines()


_reaper: Reaper | None = None
_reaper_lock = threading.Lock()


def start_reaper() -> Reaper:
    """This process's reaper, started on first use (once per pytest process: an xdist worker
    has its own run id and its own reaper). It runs in a session of its own, so a kill -9 of our
    process group spares it; at a normal exit it is closed and waited for (atexit)."""
    global _reaper
    with _reaper_lock:
        if _reaper is not None and _reaper.owner == os.getpid():
            return _reaper
        journal_dir(RUN_ID).mkdir(exist_ok=True)
        environment = {key: value for key, value in os.environ.items() if key != ENV_TAG}
        # Our temp dir as we found it (the e2e tier points TMPDIR elsewhere later): the reaper
        # must look in the same roots.
        environment["TMPDIR"] = str(TEMP_ROOTS[0])
        process = subprocess.Popen(
            [sys.executable, "-m", "testkit.reaper", RUN_ID],
            stdin=subprocess.PIPE,  # its write end is ours alone (not inherited across exec)
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
            cwd="/",  # holds no dir of ours open
            start_new_session=True,
        )
        _reaper = Reaper(process, os.getpid())
        atexit.register(_close_at_exit, _reaper)
        return _reaper


def _stop_resource_tracker() -> None:
    """multiprocessing's resource tracker (started when a test used multiprocessing) is this
    process's own helper, not something teardown left: it ends when its pipe from us closes,
    at our exit, which comes after this. Stop it now (multiprocessing's `_stop`: close the pipe,
    wait for it) so the reaper neither ends nor reports it."""
    module = sys.modules.get("multiprocessing.resource_tracker")
    stop = getattr(getattr(module, "_resource_tracker", None), "_stop", None)
    if callable(stop):
        with contextlib.suppress(Exception):
            stop()


def _close_at_exit(reaper: Reaper) -> None:
    if reaper.owner != os.getpid():
        return  # a forked child: the pipe is its parent's
    _stop_resource_tracker()
    ended = reaper.close()
    if ended:
        sys.stderr.write(f"\nthe reaper of run {RUN_ID} ended what teardown left: {ended}\n")


# ------------------------------------------------------------------------------ the sweeper
def sweep(roots: tuple[Path, ...] = TEMP_ROOTS) -> list[str]:
    """Reap every killed run that left something behind: processes that carry its tag, tagged
    dirs right in `roots`. Returns what went (`<program> pid N`, a dir). A run whose owner is
    alive is never touched, nor a process that also carries a live run's tag."""
    verdicts: dict[str, bool] = {}

    def alive(run_id: str) -> bool:
        if run_id not in verdicts:
            verdicts[run_id] = owner_alive(run_id)
        return verdicts[run_id]

    candidates = {run for tagged in tagged_processes() for run in tagged.runs}
    for root in roots:
        candidates |= {run_id_of(path.name) or "" for path in root.glob(f"{TEST_PREFIX}*")}
    removed: list[str] = []
    for run in sorted(candidates - {"", RUN_ID}):
        if not alive(run):
            removed += reap(run, roots, spare=lambda runs: any(alive(r) for r in runs))
    return removed


@cache
def sweep_once() -> tuple[str, ...]:
    """`sweep()` the first time in this process; later calls return that first result."""
    return tuple(sweep())
