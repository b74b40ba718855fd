"""The per-caller token bucket, on a clock the test moves."""

from __future__ import annotations

import pytest

from cairn_server.auth import AuthConfig, RateLimiter
from cairn_server.auth.options import rate_limiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_gets_its_burst_then_waits_for_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("a") == pytest.approx(0.5)  # a refused call is not counted
    clock.now = 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now = 10.0  # a long pause refills only up to the burst
    assert [limiter.take("a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_callers_have_buckets_of_their_own() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_idle_callers_are_forgotten_and_memory_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=2, clock=clock, max_callers=100)
    for i in range(50):
        limiter.take(f"caller-{i}")
    assert len(limiter) == 50
    clock.now = 2.0  # every bucket has refilled: they are all like new ones
    limiter.take("late")
    assert len(limiter) == 1
    for i in range(500):
        limiter.take(f"flood-{i}")
    assert len(limiter) <= 100
    # The most recent callers are remembered: flood-499 has one call left of two.
    assert limiter.take("flood-499") == 0.0
    assert limiter.take("flood-499") > 0


def test_the_config_gives_a_limiter_only_with_a_rate() -> None:
    assert rate_limiter(AuthConfig()) is None
    limiter = rate_limiter(AuthConfig(rate_limit=2.5))
    assert limiter is not None and (limiter.rate, limiter.burst) == (2.5, 3)
    limiter = rate_limiter(AuthConfig(rate_limit=0.2, rate_burst=5))
    assert limiter is not None and limiter.burst == 5
    limiter = rate_limiter(AuthConfig(rate_limit=0.2))
    assert limiter is not None and limiter.burst == 1
