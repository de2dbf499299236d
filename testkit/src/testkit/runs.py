"""Run ids, and the sweeper that removes what killed runs left behind — never a live run's.

**The convention.** Every pytest process has one run id, `<pid>-<6 hex>` (its own pid first, so
each xdist worker has its own), and whatever it starts or creates outside pytest's temp dir
carries the run's tag `hangar-test-<run id>`: in a directory's name (`hangar-test-<run id>` or
`hangar-test-<run id>-<label>…`, see `new_dir`), in a QEMU machine's key (`-name
hangar:hangar-test-<run id>-…`), or as the directory that holds a process's files. A name that
only starts with `hangar-test-` is no run's and is never touched.

**The sweeper** (`sweep`) ends the processes of runs whose pytest process is gone and removes
their tagged dirs in the temp roots. It recognises a run's

- QEMU VMs: by their key, or by their pidfile in a tagged dir (VMs created through the API are
  keyed by the service's ids);
- live servers (`hangar serve`, see `testkit.server`): by `HANGAR_DATA_DIR` in their
  environment, a tagged dir anywhere (pytest's own temp dirs too);
- PostgreSQL clusters: by the postmaster's `-D` in a tagged dir (ended as `pg_ctl stop -m
  immediate` would: SIGQUIT, then SIGKILL);
- browsers: by Chromium's `--user-data-dir` in a tagged dir (the e2e tier gives Playwright a
  tagged TMPDIR, where it makes its profiles).

A run whose owner is alive (this one, a sibling xdist worker, a concurrent run) is never swept.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hangar.providers.qemu import process
from testkit.waiting import wait_until

__all__ = [
    "RUN_ID",
    "RUN_TAG",
    "SOCKET_ROOT",
    "TEMP_ROOTS",
    "TEST_PREFIX",
    "TaggedProcess",
    "new_dir",
    "owner_alive",
    "processes_of",
    "run_id_of",
    "sweep",
    "sweep_once",
    "tagged_dir_of",
    "tagged_processes",
    "wait_ended",
]

TEST_PREFIX = "hangar-test-"
RUN_ID = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
RUN_TAG = f"{TEST_PREFIX}{RUN_ID}"
# A run's tag at the start of a name, alone or followed by `-…`; group 1 is the run id.
TAGGED = re.compile(rf"{TEST_PREFIX}(\d+-[0-9a-f]{{6}})(?:-|$)")
# A Unix socket path must stay under 108 bytes: dirs that hold sockets (QEMU machines' data dirs,
# browser profiles) live right in /tmp.
SOCKET_ROOT = Path("/tmp")  # noqa: S108 -- a short, fixed root is the point (socket paths)
# Where runs put their tagged dirs: the temp dir, and /tmp (see SOCKET_ROOT).
TEMP_ROOTS = tuple(dict.fromkeys((Path(tempfile.gettempdir()), SOCKET_ROOT)))
END_TIMEOUT_S = 10.0


def run_id_of(name: str) -> str | None:
    """`hangar-test-123-abcdef-web` -> `123-abcdef`; None for a name that is no run's tag."""
    match = TAGGED.match(name)
    return match.group(1) if match else None


def owner_alive(run_id: str) -> bool:
    """Whether the pytest process that owns `run_id` (its leading pid) still runs."""
    pid = run_id.split("-", 1)[0]
    if not pid.isdigit():
        return False
    argv = process.read_cmdline(int(pid))
    return argv is not None and any("pytest" in part or "python" in part for part in argv)


def new_dir(label: str, root: Path | None = None) -> Path:
    """A new, unique dir `<root>/hangar-test-<run id>-<label><random>` (root: the temp dir)."""
    return Path(tempfile.mkdtemp(prefix=f"{RUN_TAG}-{label}", dir=root))


def tagged_dir_of(path: Path, roots: tuple[Path, ...] | None = TEMP_ROOTS) -> Path | None:
    """The tagged dir that is or holds `path`: right in one of `roots`, or anywhere for None."""
    for candidate in (path, *path.parents):
        if run_id_of(candidate.name) and (roots is None or candidate.parent in roots):
            return candidate
    return None


@dataclass(frozen=True)
class TaggedProcess:
    """A process that belongs to a run: `what` it is (`QEMU <key>`, `server`, `PostgreSQL`,
    `browser`) and the run id it carries."""

    pid: int
    what: str
    run_id: str

    def __str__(self) -> str:
        return f"{self.what} pid {self.pid}"


def _environment_data_dir(pid: int) -> Path | None:
    """HANGAR_DATA_DIR of a process (a hangar server, or what it launched), if we may read it."""
    try:
        environ = (process.PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    for entry in environ.split(b"\0"):
        if entry.startswith(b"HANGAR_DATA_DIR="):
            return Path(entry.split(b"=", 1)[1].decode(errors="replace"))
    return None


def _run_of_dir(path: Path | None, roots: tuple[Path, ...] | None) -> str | None:
    tagged = tagged_dir_of(path, roots) if path is not None else None
    return run_id_of(tagged.name) if tagged is not None else None


def _option(argv: tuple[str, ...], flag: str) -> Path | None:
    """The value of `flag VALUE` or `flag=VALUE` in `argv`, as a path."""
    for index, part in enumerate(argv):
        if part == flag and index + 1 < len(argv):
            return Path(argv[index + 1])
        if part.startswith(f"{flag}="):
            return Path(part.split("=", 1)[1])
    return None


def tagged_processes(roots: tuple[Path, ...] = TEMP_ROOTS) -> list[TaggedProcess]:
    """Every running process that carries some run's tag (see the module's docstring)."""
    found: dict[int, TaggedProcess] = {}
    for qemu in process.scan():
        run = run_id_of(qemu.key) or _run_of_dir(qemu.pidfile, roots)
        if run is not None:
            found[qemu.pid] = TaggedProcess(qemu.pid, f"QEMU {qemu.key}", run)
    for entry in process.PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in found:
            continue
        pid = int(entry.name)
        argv = process.read_cmdline(pid)
        if argv is None:
            continue
        for what, run in (
            ("server", _run_of_dir(_environment_data_dir(pid), None)),
            ("PostgreSQL", _run_of_dir(_option(argv, "-D"), roots)),
            ("browser", _run_of_dir(_option(argv, "--user-data-dir"), roots)),
        ):
            if run is not None:
                found[pid] = TaggedProcess(pid, what, run)
                break
    return sorted(found.values(), key=lambda tagged: tagged.pid)


def processes_of(run_id: str, roots: tuple[Path, ...] = TEMP_ROOTS) -> list[TaggedProcess]:
    """The running processes of one run."""
    return [tagged for tagged in tagged_processes(roots) if tagged.run_id == run_id]


def wait_ended(pid: int, timeout: float = END_TIMEOUT_S) -> None:
    """Return once process `pid` has ended (or is a zombie); WaitTimeoutError past `timeout`."""
    wait_until(
        lambda: process.read_cmdline(pid),
        until=lambda argv: argv is None,
        what=f"pid {pid} to end",
        timeout=timeout,
        interval=0.05,
    )


def _end(tagged: TaggedProcess) -> None:
    """SIGKILL; a postmaster first gets SIGQUIT (immediate shutdown), which ends its backends."""
    if tagged.what == "PostgreSQL":
        with contextlib.suppress(ProcessLookupError):
            os.kill(tagged.pid, signal.SIGQUIT)
        with contextlib.suppress(AssertionError):
            wait_ended(tagged.pid)
            return
    with contextlib.suppress(ProcessLookupError):
        os.kill(tagged.pid, signal.SIGKILL)


def sweep(roots: tuple[Path, ...] = TEMP_ROOTS) -> list[str]:
    """End the processes of killed runs, then remove their tagged dirs right in `roots` (pytest
    rotates its own temp dirs). Returns what went (`QEMU <key> pid N`, `server pid N`, a dir).
    A run whose owner is alive is never touched."""
    verdicts: dict[str, bool] = {}

    def dead(run_id: str) -> bool:
        if run_id not in verdicts:
            verdicts[run_id] = run_id != RUN_ID and not owner_alive(run_id)
        return verdicts[run_id]

    removed: list[str] = []
    for tagged in tagged_processes(roots):
        if tagged.pid != os.getpid() and dead(tagged.run_id):
            _end(tagged)
            removed.append(str(tagged))
    for root in roots:
        for stale in sorted(root.glob(f"{TEST_PREFIX}*")):
            run = run_id_of(stale.name)
            if run and stale.is_dir() and not stale.is_symlink() and dead(run):
                shutil.rmtree(stale, ignore_errors=True)
                removed.append(str(stale))
    return removed


@cache
def sweep_once() -> tuple[str, ...]:
    """`sweep()` the first time in this process; later calls return that first result."""
    return tuple(sweep())
