"""The guest's two consoles: the serial log (boot messages, the readiness line) and the control
shell on a virtio console (exec with framed output, poweroff).

Exec protocol (the guest side is `hangar/images/guest/control`): the host sends one line
`ID TIMEOUT BASE64(script)`; the guest answers `HANGAR-BEGIN ID`, the base64 of the script's
stdout+stderr, `HANGAR-END ID STATUS`. Output is base64 so no byte it contains can end a frame
early, and frames carry the request id so a late answer to an abandoned request is skipped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hangar.providers.base import ExecResult
from hangar.providers.qemu.errors import GuestError

BEGIN = "HANGAR-BEGIN"
END = "HANGAR-END"


def encode_request(request_id: str, command: str, timeout: float) -> bytes:
    script = base64.b64encode(command.encode()).decode()
    return f"{request_id} {max(1, int(timeout))} {script}\n".encode()


def new_request_id() -> str:
    return secrets.token_hex(6)


class FrameError(GuestError):
    """The guest's answer is not a well-formed frame."""


class FrameParser:
    """Feed lines as they arrive; `result` is set once the frame of `request_id` is complete."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._inside = False
        self._chunks: list[str] = []
        self.result: ExecResult | None = None

    def feed(self, raw: str) -> ExecResult | None:
        line = raw.strip()
        words = line.split()
        if words[:2] == [BEGIN, self.request_id]:
            self._inside, self._chunks = True, []
        elif words[:2] == [END, self.request_id] and self._inside:
            if len(words) != 3 or not words[2].lstrip("-").isdigit():
                raise FrameError(f"malformed end of frame: {line!r}")
            try:
                output = base64.b64decode("".join(self._chunks), validate=True)
            except binascii.Error as exc:
                raise FrameError(f"frame {self.request_id} is not valid base64: {exc}") from exc
            self.result = ExecResult(int(words[2]), output.decode(errors="replace"))
            self._inside = False
        elif self._inside and line:
            self._chunks.append(line)
        return self.result


async def exec_command(socket: Path, command: str, limit: float) -> ExecResult:
    """Run `command` with /bin/sh in the guest; GuestError if no answer within limit + slack."""
    request_id = new_request_id()
    parser = FrameParser(request_id)
    # The guest kills the script at `limit`; the slack covers framing and a slow TCG guest.
    deadline = limit + 10.0
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(socket)), 5.0)
    except (OSError, TimeoutError) as exc:
        raise GuestError(f"control console {socket} is not reachable: {exc}") from exc
    try:
        writer.write(encode_request(request_id, command, limit))
        await writer.drain()
        async with asyncio.timeout(deadline):
            while parser.result is None:
                line = await reader.readline()
                if not line:
                    raise GuestError("the control console closed before the command finished")
                parser.feed(line.decode(errors="replace"))
    except TimeoutError:
        raise GuestError(f"the guest did not answer within {deadline:.0f}s: {command!r}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return parser.result


async def send_only(socket: Path, command: str) -> bool:
    """Send a command without waiting for its answer (poweroff never answers).

    False when the control console is unreachable."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(socket)), 2.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(encode_request(new_request_id(), command, 30))
        await writer.drain()
        # Give QEMU a moment to pass the line on before we hang up.
        await asyncio.sleep(0.2)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return True


@dataclass(frozen=True, slots=True)
class ConsoleMatch:
    ready: bool
    line: str


async def wait_for_console(
    log: Path,
    ready: re.Pattern[str],
    failure: re.Pattern[str],
    within: float,
    alive: Callable[[], bool],
) -> ConsoleMatch:
    """Follow the serial log until `ready` or `failure` matches, the process dies or time is up.

    Returns ConsoleMatch(ready=False, line=reason) instead of raising, so the caller can tear
    down and raise one error carrying the log.
    """
    deadline = time.monotonic() + within
    position = 0
    pending = ""
    while True:
        with contextlib.suppress(FileNotFoundError), log.open("rb") as handle:
            handle.seek(position)
            chunk = handle.read()
            position += len(chunk)
            pending += chunk.decode(errors="replace")
        *lines, pending = pending.split("\n")
        for line in lines:
            if failure.search(line):
                return ConsoleMatch(False, f"the guest failed: {line.strip()}")
            if ready.search(line):
                return ConsoleMatch(True, line.strip())
        if not alive():
            return ConsoleMatch(False, "QEMU exited before the guest was ready")
        if time.monotonic() > deadline:
            return ConsoleMatch(False, f"the guest was not ready within {within:.0f}s")
        await asyncio.sleep(0.05)


def tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log file ('' when there is none yet)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ""
    text = data[-lines * 400 :].decode(errors="replace")  # bounded read for huge logs
    return "\n".join(text.splitlines()[-lines:])
