"""QMP through the `qemu.qmp` library: one short session per operation, every call under a
deadline. Sessions are short because QEMU's QMP socket takes one client at a time and the VM
outlives the API server (which must not hold the monitor between operations).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from qemu.qmp import EventListener, QMPClient, QMPError

from hangar.providers.qemu.errors import MonitorError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
_USERNET_FORWARD = re.compile(
    r"^\s*TCP\[HOST_FORWARD\]\s+\d+\s+(?P<host>\S+)\s+(?P<port>\d+)\s+(?P<guest>\S+)\s+(?P<guest_port>\d+)",
    re.MULTILINE,
)


def parse_usernet(text: str, guest_port: int = 80) -> int | None:
    """The host port that `info usernet` shows forwarded to `guest_port`, or None."""
    for match in _USERNET_FORWARD.finditer(text):
        if int(match["guest_port"]) == guest_port and int(match["port"]) != 0:
            return int(match["port"])
    return None


class Monitor:
    """A connected QMP session to one VM."""

    def __init__(self, client: QMPClient, timeout: float) -> None:
        self._client = client
        self.timeout = timeout

    async def execute(
        self,
        command: str,
        arguments: Mapping[str, object] | None = None,
        within: float | None = None,
    ) -> Any:
        limit = self.timeout if within is None else within
        try:
            return await asyncio.wait_for(self._client.execute(command, arguments), limit)
        except TimeoutError:
            raise MonitorError(f"QMP {command} got no answer within {limit:.0f}s") from None
        except QMPError as exc:
            raise MonitorError(f"QMP {command} failed: {exc}") from exc

    async def hmp(self, command_line: str) -> str:
        result = await self.execute("human-monitor-command", {"command-line": command_line})
        return str(result)

    def listen(self, names: str | tuple[str, ...]) -> EventListener:
        """A listener registered now (before the command that triggers the event)."""
        listener = EventListener(names)
        self._client.register_listener(listener)
        return listener

    def forget(self, listener: EventListener) -> None:
        self._client.remove_listener(listener)

    async def wait_event(
        self, listener: EventListener, within: float, match: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """The next event on `listener` whose data contains `match`, or None after `within`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (left := deadline - loop.time()) > 0:
            try:
                event = await asyncio.wait_for(listener.get(), left)
            except TimeoutError:
                return None
            data = event.get("data")
            if not isinstance(data, dict):
                data = {}
            if all(data.get(key) == value for key, value in (match or {}).items()):
                return dict(event)
        return None


@asynccontextmanager
async def session(socket: Path, within: float = DEFAULT_TIMEOUT) -> AsyncIterator[Monitor]:
    """Connect (with a deadline), yield a Monitor, always disconnect."""
    client = QMPClient(socket.parent.name)
    try:
        await asyncio.wait_for(client.connect(str(socket)), within)
    except TimeoutError:
        await _disconnect(client)
        raise MonitorError(f"QMP socket {socket} did not answer within {within:.0f}s") from None
    except (QMPError, OSError) as exc:
        await _disconnect(client)
        raise MonitorError(f"cannot connect to QMP socket {socket}: {exc}") from exc
    try:
        yield Monitor(client, within)
    finally:
        await _disconnect(client)


async def _disconnect(client: QMPClient) -> None:
    # After `quit` the server hangs up first; disconnect() re-raises that, which is expected.
    try:
        await client.disconnect()
    except (QMPError, OSError, EOFError) as exc:
        log.debug("QMP disconnect from %s: %s", client.name, exc)
