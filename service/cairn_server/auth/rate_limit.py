"""A per-caller rate limit: one token bucket per caller name.

Each caller may make `rate` calls per second on average and `burst` at once
after a pause. A refused call learns how long to wait (RESOURCE_EXHAUSTED
RATE_LIMITED with `retry_after_ms`), so a well-behaved client backs off
rather than retrying at once.

Memory stays bounded: a caller idle long enough for its bucket to refill is
forgotten (a full bucket and a new one are the same), and past `max_callers`
the longest idle is forgotten even if not full.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CALLERS = 100_000


class RateLimiter:
    """Token buckets by caller name, on an injected monotonic clock.

    >>> limiter = RateLimiter(rate=10, burst=2, clock=lambda: 0.0)
    >>> limiter.take("key:ci"), limiter.take("key:ci"), limiter.take("key:ci")
    (0.0, 0.0, 0.1)
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = MAX_CALLERS,
    ) -> None:
        if not rate > 0 or burst < 1 or max_callers < 1:
            raise ValueError("a rate limit needs rate > 0, burst >= 1 and max_callers >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_callers = max_callers
        # caller -> (tokens, when they were counted); oldest update first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, caller: str) -> float:
        """0.0 when `caller` may make a call now (it is counted); otherwise the
        seconds until it may (nothing is counted)."""
        now = self._clock()
        tokens, then = self._buckets.pop(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[caller] = (tokens, now)
        self._forget_idle(now)
        return wait

    def __len__(self) -> int:
        """How many callers are remembered."""
        return len(self._buckets)

    def _forget_idle(self, now: float) -> None:
        while self._buckets:
            caller, (tokens, then) = next(iter(self._buckets.items()))
            full = tokens + (now - then) * self.rate >= self.burst
            if not full and len(self._buckets) <= self._max_callers:
                return
            del self._buckets[caller]
