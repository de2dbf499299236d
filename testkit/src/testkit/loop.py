"""One asyncio event loop in a thread, so tests stay plain functions while async code runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """One event loop for a whole session, in a daemon thread: tests stay plain functions, VMs
    can boot concurrently, and whatever keeps per-loop state (the provider's per-machine locks,
    an app's lifespan) lives on a single loop."""

    def __init__(self, name: str = "testkit-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule `coro` on the loop; its result or error arrives in the future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        """Run `coro` on the loop and return its result (TimeoutError past `timeout`)."""
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        """Stop the loop, join its thread, close it."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
