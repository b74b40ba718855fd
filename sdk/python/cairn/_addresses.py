"""Server addresses as clients and workers accept them: one address, several
separated by commas, or a sequence of addresses (the replicas of one service).

    Client("127.0.0.1:50051")
    Client("10.0.0.1:50051,10.0.0.2:50051")
    Worker(["10.0.0.1:50051", "10.0.0.2:50051"], functions=[...])

and how a client's call (and CairnSaver's) fails over among them when its
server is unavailable: `Failover` and `Attempts`, one mechanism for both.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cairn._errors import CairnError

Addresses = str | Sequence[str]


def parse_addresses(address: Addresses) -> tuple[str, ...]:
    """The distinct addresses in `address`, in the order given."""
    items = [address] if isinstance(address, str) else list(address)
    found: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"a server address is a string, not {item!r}")
        for part in item.split(","):
            if part.strip():
                found[part.strip()] = None
    if not found:
        raise ValueError(f"no server address in {address!r}")
    return tuple(found)


# A channel whose server went away fails calls at once until it tries again;
# keep that short, so that a restarted server is found quickly.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
NOT_CONNECTED = "failed to connect to all addresses"
"""How gRPC reports a call that never left the client: no connection was made."""

_FIRST_PAUSE = 0.05
_MAX_PAUSE = 1.0
WAITING_NOTICE = 1.0
"""Seconds of outage after which a waiting caller says what it waits for."""


class Failover:
    """The addresses of one service and the one calls go to now, shared by
    every call of a client (or saver): a call whose server is unavailable
    moves on to the next address, round robin, and gives up
    `timeout` seconds after its first failure (see `Attempts`)."""

    def __init__(
        self, addresses: tuple[str, ...], timeout: float, log: logging.Logger, *, hint: str = ""
    ) -> None:
        self.addresses = addresses
        self.hint = hint
        """Said with every "cannot reach" (ConnectionSettings.unreachable_hint)."""
        self.timeout = timeout
        self.current = 0
        self._log = log
        self._warned = False

    def attempts(self) -> Attempts:
        """The retries of one call (or one stream, across its reconnections)."""
        return Attempts(self)

    def move_on(self, index: int) -> None:
        # Concurrent calls that failed on the same address move on once.
        if self.current == index:
            self.current = (index + 1) % len(self.addresses)

    def reached(self) -> None:
        """A call got through after failures: the next outage is reported anew."""
        self._warned = False

    def _waiting(self) -> None:
        if not self._warned:
            self._warned = True
            self._log.warning(
                "cannot reach the Cairn server at %s; retrying for up to %g s"
                " (failover_timeout) in case it is restarting%s",
                ", ".join(self.addresses),
                self.timeout,
                self.hint,
            )

    def gave_up(self, error: CairnError) -> CairnError:
        """The error a call raises once its time is up, with the hint."""
        if self.hint:
            error.message += self.hint
            error.args = (error.message,)
        return error


class Attempts:
    """One call's way through the addresses: each other address at once, then
    a pause that doubles (up to a second) before every further round."""

    def __init__(self, failover: Failover) -> None:
        self._failover = failover
        self._start = time.monotonic()
        self._deadline = self._start + failover.timeout
        self._tries = 0
        self._pause = _FIRST_PAUSE

    def failed(self, index: int, reason: str) -> float | None:
        """Address `index` was unavailable (`reason`): move on to the next
        one. Returns how long to wait before trying it, or None when the
        time is up and the call should raise its error."""
        failover = self._failover
        now = time.monotonic()
        remaining = self._deadline - now
        if remaining <= 0:
            return None
        failover.move_on(index)
        if now - self._start >= WAITING_NOTICE:
            failover._waiting()
        failover._log.info(
            "server %s unavailable (%s); trying %s",
            failover.addresses[index],
            reason,
            failover.addresses[failover.current],
        )
        self._tries += 1
        if self._tries % len(failover.addresses) != 0:
            return 0.0
        pause = min(self._pause * (0.5 + random.random()), remaining)
        self._pause = min(self._pause * 2, _MAX_PAUSE)
        return pause
