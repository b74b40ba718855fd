"""A run's event log while the run is active: appended in memory, handed to
live followers at once, and stored with the run's writes."""

from __future__ import annotations

import asyncio

from cairn_server.domain import EventRecord, Json


class EventLog:
    """Events of the current execution of one run, numbered densely from
    `first_id` (events of earlier executions are already stored)."""

    def __init__(self, run_id: str, first_id: int) -> None:
        self.run_id = run_id
        self.first_id = first_id
        self.events: list[EventRecord] = []
        self.closed = False
        self._changed = asyncio.Event()

    @property
    def next_id(self) -> int:
        return self.first_id + len(self.events)

    def append(self, kind: str, payload: dict[str, Json], now: float) -> EventRecord:
        event = EventRecord(self.run_id, self.next_id, now, kind, payload)
        self.events.append(event)
        self._wake()
        return event

    def close(self) -> None:
        self.closed = True
        self._wake()

    def since(self, after_id: int) -> list[EventRecord]:
        return self.events[max(0, after_id + 1 - self.first_id) :]

    async def wait(self) -> None:
        await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
