"""The memory sweep: expired items (put with a ttl, not read since) are
invisible at once and deleted, with their vectors, by a sweep that runs in
the background of the server every `interval` seconds.

Example::

    sweeper = MemorySweeper(memory, clock=time.time)
    task = asyncio.create_task(sweeper.run())  # cancel it to stop
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cairn_server.memory.base import MemoryStore
from cairn_server.store.retention import sweep_every

log = logging.getLogger(__name__)

_MAX_PAGES = 100
"""Pages per sweep; the rest waits for the next sweep."""


class MemorySweeper:
    """Deletes the memory items expired at the clock's time."""

    def __init__(
        self,
        memory: MemoryStore,
        *,
        clock: Callable[[], float] = time.time,
        interval: float = 60.0,
        page_size: int = 500,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if page_size < 1:
            raise ValueError(f"page_size must be positive, got {page_size}")
        self.interval = interval
        self._memory = memory
        self._clock = clock
        self._page_size = page_size

    async def sweep(self, now: float | None = None) -> int:
        """Delete the items expired at `now` (the clock's time when None), a
        page per transaction; returns how many were deleted."""
        at = self._clock() if now is None else now
        total = 0
        for _ in range(_MAX_PAGES):
            deleted = await self._memory.delete_expired(now=at, limit=self._page_size)
            total += deleted
            if deleted < self._page_size:
                break
        if total:
            log.info("memory store: deleted %d expired items", total)
        return total

    async def run(self) -> None:
        """Sweep every `interval` seconds until cancelled (see sweep_every)."""
        await sweep_every(self.interval, self.sweep, "memory sweep")
