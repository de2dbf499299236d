"""An httpx transport that streams an ASGI app's response as it is produced.

httpx's own ASGITransport waits for the whole body, which never ends for an SSE stream. This one
runs the app in a task, hands chunks over as they come, and tells the app the client disconnected
when the response is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

CLOSE_TIMEOUT = 5.0


class _QueueStream(httpx.AsyncByteStream):
    def __init__(
        self,
        chunks: asyncio.Queue[bytes | None],
        disconnect: asyncio.Event,
        task: asyncio.Task[None],
    ) -> None:
        self._chunks = chunks
        self._disconnect = disconnect
        self._task = task

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self._disconnect.set()
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await self._task


class StreamingASGITransport(httpx.AsyncBaseTransport):
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": ("127.0.0.1", 50000),
            "server": (request.url.host, request.url.port or 80),
            "state": {},
        }
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        disconnect = asyncio.Event()
        started: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        body_sent = False

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.set_result(message)
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    chunks.put_nowait(message["body"])
                if not message.get("more_body", False):
                    chunks.put_nowait(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                chunks.put_nowait(None)

        task = asyncio.get_running_loop().create_task(run())
        async with asyncio.timeout(CLOSE_TIMEOUT):
            start = await started
        return httpx.Response(
            status_code=start["status"],
            headers=[(k, v) for k, v in start.get("headers", [])],
            stream=_QueueStream(chunks, disconnect, task),
            request=request,
        )


Events = list[dict[str, str]]


class SseReader:
    """Reads one SSE response incrementally: events (fields id/event/data) and comment lines."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()
        self.comments: list[str] = []

    async def read_until(
        self, until: Callable[[Events, list[str]], bool], seconds: float = 10.0
    ) -> Events:
        """Events read until `until(events_so_far, comments)` holds; None-terminated streams
        end the read early (the server closed the stream)."""
        events: Events = []
        current: dict[str, str] = {}
        async with asyncio.timeout(seconds):
            while not until(events, self.comments):
                try:
                    line = await anext(self._lines)
                except StopAsyncIteration:
                    break
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line == "" and current:
                    events.append(current)
                    current = {}
                elif line:
                    field, _, value = line.partition(":")
                    current[field] = value.removeprefix(" ")
        return events

    async def events(self, count: int) -> Events:
        return await self.read_until(lambda events, _comments: len(events) >= count)
