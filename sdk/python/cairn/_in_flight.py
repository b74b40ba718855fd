"""A cap on the unary calls one store or saver has open at once.

The server accepts a bounded number of calls open at once on a connection
(1,000) and refuses the streams beyond it (HTTP/2 REFUSED_STREAM, which
gRPC reports as UNAVAILABLE): the failover would take that for a server
that is down, and a flood of calls (thousands of `aget`s gathered at once)
would end in UnavailableError. Calls beyond the cap wait here for a free
slot instead, in the order they came.

    in_flight = InFlight()
    async with in_flight.slot():
        response = await stub.GetItem(request)
"""

from __future__ import annotations

import asyncio

MAX_IN_FLIGHT = 500
"""Half the server's limit per connection, leaving room for the calls other
parts of the same process make on it."""


class InFlight:
    """At most `limit` holders of a slot at once, per event loop (an
    asyncio semaphore belongs to the loop that first waits on it)."""

    def __init__(self, limit: int = MAX_IN_FLIGHT) -> None:
        self._limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    def slot(self) -> asyncio.Semaphore:
        """The running loop's semaphore, to hold with `async with`."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots = asyncio.Semaphore(self._limit)
            self._loop = loop
        return self._slots
