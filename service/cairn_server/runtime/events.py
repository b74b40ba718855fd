"""A run's event log while the run is active: appended in memory, handed to
live followers at once, and stored with the run's writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cairn_server.domain import Durability, EventRecord, Json

LEASE_EVENT_RANGE = 2**32
"""Event ids each lease of a run may use, when followers see events before
the store does."""


def first_event_id(last_stored: int, lease_token: int, durability: Durability) -> int:
    """Where a resumed run numbers its events. With sync durability an event
    is published only once stored, so numbering goes on after the last one
    stored. Otherwise the previous owner may have published ids it never
    stored, and a client that saw them skips ids it has seen: each lease then
    numbers from its own range, above any id an earlier lease could use."""
    if durability is Durability.SYNC:
        return last_stored + 1
    return max(last_stored + 1, (lease_token - 1) * LEASE_EVENT_RANGE + 1)


class EventLog:
    """Events of the current execution of one run, numbered densely from
    `first_id` (events of earlier executions are already stored).

    Followers see an event once it is published. A run with sync durability
    publishes events only after they are stored, so an event id a client has
    seen is never reused by a recovered run."""

    def __init__(
        self,
        run_id: str,
        first_id: int,
        *,
        publish_on_append: bool = True,
        appended: Callable[[], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self._appended = appended
        """Called per event (cairn_event_log_appends_total)."""
        self.first_id = first_id
        self.events: list[EventRecord] = []
        self.closed = False
        self._published = first_id - 1
        self._publish_on_append = publish_on_append
        self._changed = asyncio.Event()

    @property
    def next_id(self) -> int:
        return self.first_id + len(self.events)

    def append(self, kind: str, payload: dict[str, Json], now: float) -> EventRecord:
        event = EventRecord(self.run_id, self.next_id, now, kind, payload)
        self.events.append(event)
        if self._appended is not None:
            self._appended()
        if self._publish_on_append:
            self.publish(event.event_id)
        return event

    def publish_when_stored(self) -> None:
        """From now on, publish events only once the run's commit stored them
        (as sync durability does): for what a client must be able to rely on,
        such as a run saying it sleeps."""
        self._publish_on_append = False

    def publish(self, up_to: int) -> None:
        """Let followers see the events up to id `up_to`."""
        if up_to > self._published:
            self._published = up_to
            self._wake()

    def close(self) -> None:
        self.publish(self.next_id - 1)
        self.closed = True
        self._wake()

    def since(self, after_id: int) -> list[EventRecord]:
        """Published events after `after_id`."""
        start = max(0, after_id + 1 - self.first_id)
        return self.events[start : self._published + 1 - self.first_id]

    async def wait(self) -> None:
        await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
