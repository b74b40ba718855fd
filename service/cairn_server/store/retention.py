"""The thread TTL: threads not updated for `ttl` seconds are deleted, with
their runs, checkpoints, writes and events, by a sweep that runs in the
background of the server (`cairn serve --thread-ttl SECONDS`).

A thread is spared while a run is active on it (the server's own view, passed
in as `is_busy`) or while its stored status is busy (a run elsewhere), and the
store checks "not updated since" again when it applies the deletion, so a
thread touched meanwhile survives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from cairn_server.store.base import Store

log = logging.getLogger(__name__)

_MAX_PAGES = 1_000
"""Pages per sweep; the rest waits for the next sweep."""


class ThreadTtlSweeper:
    """Deletes the threads last updated more than `ttl` seconds ago.

    Example::

        sweeper = ThreadTtlSweeper(store, ttl=7 * 86400, is_busy=runs.thread_is_busy)
        task = asyncio.create_task(sweeper.run())  # cancel it to stop
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl: float,
        is_busy: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
        page_size: int = 100,
        interval: float | None = None,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"the thread TTL must be positive, got {ttl}")
        if page_size < 1:
            raise ValueError(f"page_size must be positive, got {page_size}")
        self.ttl = ttl
        # Often enough that a thread outlives its TTL by a small fraction of it.
        self.interval = interval if interval is not None else min(max(ttl / 10, 1.0), 60.0)
        self._store = store
        self._is_busy = is_busy
        self._clock = clock
        self._page_size = page_size

    async def sweep(self, *, now: float | None = None) -> list[str]:
        """Delete every thread expired at `now` (the clock's time when None);
        returns their ids."""
        cutoff = (self._clock() if now is None else now) - self.ttl
        deleted: list[str] = []
        spared: set[str] = set()
        for _ in range(_MAX_PAGES):
            limit = self._page_size + len(spared)
            listed = await self._store.expired_threads(cutoff, limit=limit)
            fresh = [thread_id for thread_id in listed if thread_id not in spared]
            doomed = [thread_id for thread_id in fresh if not self._is_busy(thread_id)]
            if doomed:
                result = await self._store.delete_threads(doomed, updated_before=cutoff)
                deleted.extend(result.thread_ids)
                spared.update(set(fresh) - set(result.thread_ids))
            else:
                spared.update(fresh)
            if not fresh or len(listed) < limit:
                break
        if deleted:
            log.info("thread TTL: deleted %d threads not updated for %gs", len(deleted), self.ttl)
        return deleted

    async def run(self) -> None:
        """Sweep every `interval` seconds until cancelled (see sweep_every)."""
        await sweep_every(self.interval, self.sweep, "thread TTL sweep")


async def sweep_every(interval: float, sweep: Callable[[], Awaitable[object]], what: str) -> None:
    """`await sweep()` every `interval` seconds until cancelled; a failed
    sweep is logged and tried again at the next interval."""
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep()
        except Exception:
            log.exception("%s failed", what)
