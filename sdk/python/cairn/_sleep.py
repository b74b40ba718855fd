"""Durable sleep: `sleep` and `sleep_until` inside an entrypoint.

The service holds the timer (TaskSleeping in the protocol). Calling `sleep`
the first time stops the entrypoint: the run sleeps with nothing held on any
worker or in the service's memory, survives restarts and takeovers, and when
the timer is due the entrypoint is replayed, finding the sleep in its journal,
so `sleep` returns at once and the code after it runs.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from datetime import datetime, timedelta

from cairn._context import current


class Slept:
    """What `sleep` returns once the timer fired: nothing to wait for. It
    may be awaited, so `await cairn.sleep(...)` reads as in async code."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


def sleep(duration: float | timedelta) -> Slept:
    """Sleep durably for `duration` (seconds or a timedelta) inside an
    entrypoint, as Temporal's `workflow.sleep`: the timer is the service's,
    measured on its clock from when it records the sleep, and a replay of a
    sleep that ended returns at once. Works the same in sync and async
    entrypoints (awaiting it is optional). Cancelling the run cancels it.

        @entrypoint()
        def remind(user: str) -> str:
            draft = write_reminder(user).result()
            cairn.sleep(timedelta(days=1))
            return send(draft).result()

    Only an entrypoint sleeps: in a task or a graph node it raises
    RuntimeError (call an entrypoint from there instead).
    """
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a sleep lasts a finite, non-negative time, got {duration!r}")
    current().sleep(duration=seconds)
    return Slept()


def sleep_until(when: datetime) -> Slept:
    """Sleep durably until `when`, an aware datetime (see `sleep`); a time
    already past returns at once after a round trip to the service."""
    if when.tzinfo is None:
        raise ValueError("sleep_until needs an aware datetime (with a tzinfo), e.g. in UTC")
    current().sleep(wake_time=when.timestamp())
    return Slept()
