"""When a schedule fires: the due times of a cron expression in a time zone
(read by cronsim, which follows cron across daylight-saving changes: a
wall-clock time that does not exist fires at the first instant after it,
one that happens twice fires once), or of a fixed interval from an anchor.

Due times are whole seconds since the epoch on the service's clock.

Example::

    spec = Spec.parse(cron="0 9 * * MON-FRI", time_zone="Europe/Paris")
    spec.next_after(now)      # the first due time after now
    spec.latest_until(now)    # the last due time at or before now
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""cron's nicknames, which cronsim leaves to its callers."""

MIN_INTERVAL = 1.0


class SpecError(ValueError):
    """A schedule's spec cannot be used; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Spec:
    cron: str = ""
    interval: float = 0.0
    """Seconds between due times (when `cron` is empty)."""
    time_zone: str = ""
    anchor: float = 0.0
    """An interval's due times are anchor + k * interval."""

    @classmethod
    def parse(
        cls, *, cron: str = "", interval: float = 0.0, time_zone: str = "", anchor: float = 0.0
    ) -> Spec:
        """A checked spec; SpecError when it cannot be used."""
        if bool(cron) == bool(interval):
            raise SpecError("cron", "a schedule needs exactly one of cron and interval")
        spec = cls(cron.strip(), float(interval), time_zone, float(math.floor(anchor)))
        spec.zone()  # raises for an unknown zone
        if cron:
            try:
                next(CronSim(spec.expression(), datetime.now(UTC)))
            except (CronSimError, StopIteration) as error:
                raise SpecError("cron", f"cannot read cron expression {cron!r}: {error}") from None
        elif not (interval >= MIN_INTERVAL and float(interval).is_integer()):
            raise SpecError(
                "interval", f"interval must be whole seconds, at least 1; got {interval}"
            )
        return spec

    def expression(self) -> str:
        return NICKNAMES.get(self.cron.lower(), self.cron)

    def zone(self) -> ZoneInfo:
        name = self.time_zone or "UTC"
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SpecError("time_zone", f"unknown time zone {name!r}") from None

    def next_after(self, now: float) -> float:
        """The first due time strictly after `now`."""
        if not self.cron:
            steps = math.floor((now - self.anchor) / self.interval) + 1
            return self.anchor + max(steps, 1) * self.interval
        start = datetime.fromtimestamp(math.floor(now), self.zone())
        return next(CronSim(self.expression(), start)).timestamp()

    def latest_until(self, now: float) -> float | None:
        """The last due time at or before `now` (None: there is none)."""
        if not self.cron:
            steps = math.floor((now - self.anchor) / self.interval)
            return self.anchor + steps * self.interval if steps >= 1 else None
        start = datetime.fromtimestamp(math.floor(now), self.zone()) + timedelta(seconds=1)
        try:
            return next(CronSim(self.expression(), start, reverse=True)).timestamp()
        except StopIteration:
            return None
