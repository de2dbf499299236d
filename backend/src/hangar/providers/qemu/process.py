"""QEMU processes: launch daemonized, find by pidfile, recognise by tag, end them.

A VM is a daemon of its own (`-daemonize`), not a child of the API server, so it survives a
server restart. Whether a pid is still *our* QEMU is decided from /proc/<pid>/cmdline (the
`-name hangar:<key>` tag and the machine's pidfile path), never from the pid alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hangar.providers.qemu.cmdline import TAG_PREFIX
from hangar.providers.qemu.errors import LaunchError

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class QemuProcess:
    pid: int
    key: str
    argv: tuple[str, ...]

    @property
    def pidfile(self) -> Path | None:
        for flag, value in itertools.pairwise(self.argv):
            if flag == "-pidfile":
                return Path(value.replace(",,", ","))
        return None


def tag_of(argv: Sequence[str]) -> str | None:
    """The machine key in `-name hangar:<key>[,...]`, or None for a QEMU that is not ours."""
    for flag, value in itertools.pairwise(argv):
        if flag == "-name" and value.startswith(TAG_PREFIX):
            return value[len(TAG_PREFIX) :].split(",", 1)[0]
    return None


def read_cmdline(pid: int) -> tuple[str, ...] | None:
    """The argv of a live (non-zombie) process, or None."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
        state = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return None
    if state in {"Z", "X"} or not raw:
        return None  # a zombie waits for a reaper that is not us; it no longer runs
    return tuple(part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0"))


def scan() -> list[QemuProcess]:
    """Every running process tagged as a hangar machine."""
    found: list[QemuProcess] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        argv = read_cmdline(int(entry.name))
        key = tag_of(argv) if argv else None
        if argv and key is not None:
            found.append(QemuProcess(int(entry.name), key, argv))
    return found


def running(pidfile: Path, key: str) -> QemuProcess | None:
    """The QEMU of machine `key` if its pidfile names a live process that carries our tag."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    argv = read_cmdline(pid)
    if argv is None or tag_of(argv) != key or str(pidfile) not in " ".join(argv).replace(",,", ","):
        return None
    return QemuProcess(pid, key, argv)


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int
    stdout: bytes
    stderr: bytes


async def run(argv: Sequence[str], within: float) -> Finished:
    """Run a short-lived command to its end; past `within` it is killed and TimeoutError raised."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return Finished(process.returncode if process.returncode is not None else -1, stdout, stderr)


async def launch(argv: Sequence[str], within: float, log: Path) -> None:
    """Run a daemonizing QEMU; returns once the daemon has initialised (its parent exited 0).

    QEMU's output goes to the file `log`, not to a pipe: the daemon inherits the parent's
    descriptors, and waiting for EOF on a pipe it holds hangs under some event loops (uvloop).
    """
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # not in our process group: a Ctrl-C to the server spares VMs
        )
    try:
        await asyncio.wait_for(process.wait(), within)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise LaunchError(
            f"QEMU did not daemonize within {within:.0f}s", argv, _read(log)
        ) from None
    if process.returncode != 0:
        raise LaunchError(f"QEMU exited with status {process.returncode}", argv, _read(log))


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


def signal_process(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


async def wait_gone(process: QemuProcess, within: float) -> bool:
    """True once the process has ended (or become a zombie) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if read_cmdline(process.pid) is None:
            return True
        await asyncio.sleep(0.05)
    return read_cmdline(process.pid) is None


async def kill(process: QemuProcess, within: float = 10.0) -> None:
    """SIGTERM, then SIGKILL; returns when the process is gone."""
    signal_process(process.pid, signal.SIGTERM)
    if await wait_gone(process, min(3.0, within)):
        return
    signal_process(process.pid, signal.SIGKILL)
    if not await wait_gone(process, within):
        raise LaunchError(f"QEMU pid {process.pid} survived SIGKILL", process.argv, "")
