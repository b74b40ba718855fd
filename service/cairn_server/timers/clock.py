"""The clock that timers and schedules read.

Due times are absolute seconds since the epoch on this clock, stored with
the run or schedule, so they mean the same on every replica and after any
restart. In production it is the wall clock. Tests inject their own: in
process, any `() -> float`; for `cairn serve` processes (which tests kill and
restart), an `OffsetClock` named by the CAIRN_CLOCK_FILE variable, whose
file holds seconds to add to the wall clock. A test moves time forward by
rewriting the file, and every replica reading it jumps together.

Leases, timestamps and rate limits keep reading the wall clock: moving a test
clock forward must not make live replicas look expired.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

CLOCK_FILE_ENV = "CAIRN_CLOCK_FILE"


class OffsetClock:
    """The wall clock plus the offset (seconds, a decimal number) written in
    `path`; an absent or empty file is an offset of 0. Meant for tests."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def offset(self) -> float:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return 0.0
        return float(text) if text else 0.0

    def __call__(self) -> float:
        return time.time() + self.offset()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (for the test that owns the file)."""
        temporary = self.path.with_name(self.path.name + ".new")
        temporary.write_text(repr(self.offset() + seconds))
        temporary.replace(self.path)  # readers never see a half-written file


def service_clock(environ: dict[str, str] | None = None) -> Callable[[], float]:
    """The clock `cairn serve` gives timers: an OffsetClock when
    CAIRN_CLOCK_FILE names a file, else the wall clock."""
    path = (os.environ if environ is None else environ).get(CLOCK_FILE_ENV, "")
    return OffsetClock(path) if path else time.time
