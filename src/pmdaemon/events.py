"""Typed events and the bus that fans them out: each subscriber has a bounded queue, and a
subscriber that falls behind is dropped rather than waited for."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any]
    timestamp: float = field(default_factory=time.time)
    # Encodings made once and shared by every subscriber (e.g. the WebSocket text).
    encoded: dict[str, str] = field(default_factory=dict, compare=False)


DEFAULT_METRICS_INTERVAL = 2.0
MIN_METRICS_INTERVAL = 0.5


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.dropped = False
        self.metrics_interval = DEFAULT_METRICS_INTERVAL  # what this subscriber asked for

    async def get(self) -> Event | None:
        """The next event, or None once this subscriber was dropped or closed."""
        if self.dropped and self.queue.empty():
            return None
        return await self.queue.get()

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._activity = asyncio.Event()

    def activity(self) -> asyncio.Event:
        """An event set at the next subscription or publication: what an idle loop waits
        for instead of waking up on a timer."""
        return self._activity

    def _poke(self) -> None:
        self._activity.set()
        self._activity = asyncio.Event()

    def subscribe(self, maxsize: int = 256) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subscribers.add(sub)
        self._poke()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def publish(self, type_: str, data: dict[str, Any]) -> None:
        self._poke()
        event = Event(type_, data)
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        sub.dropped = True
        # Make room for the end marker so a waiting reader wakes up and leaves.
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def metrics_interval(self) -> float:
        """Seconds between metrics broadcasts: the shortest any subscriber asked for."""
        return min(
            (s.metrics_interval for s in self._subscribers), default=DEFAULT_METRICS_INTERVAL
        )
