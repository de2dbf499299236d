"""Publishing events to live subscribers (the SSE streams). Persisting them is the service's job."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from hangar.db.models import Event


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as stored, detached from the database session."""

    id: int
    machine_id: str | None
    kind: str
    state: str | None
    message: str
    created_at: datetime

    @classmethod
    def of(cls, row: Event) -> EventRecord:
        return cls(row.id, row.machine_id, row.kind, row.state, row.message, row.created_at)


class Subscription:
    """A live feed of events. `get()` returns None once the bus closed (server shutting down)."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[EventRecord | None] = asyncio.Queue()

    def put(self, item: EventRecord | None) -> None:
        self._queue.put_nowait(item)

    async def get(self) -> EventRecord | None:
        return await self._queue.get()

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EventBus:
    """In-process fan-out. Events are published in id order (the service guarantees it)."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self.closed = False

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        if self.closed:
            subscription.put(None)
        else:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: EventRecord) -> None:
        for subscription in list(self._subscribers):
            subscription.put(event)

    def close(self) -> None:
        """End every subscription (each gets None), so streams finish and shutdown can proceed."""
        self.closed = True
        for subscription in list(self._subscribers):
            subscription.put(None)
        self._subscribers.clear()
