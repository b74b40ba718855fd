"""Schedules (ScheduleService): runs started at the due times of a cron
expression or an interval, held by the service in the store's database,
fired exactly once per due time by whichever replica claims it first.

`open_schedules(store)` is their store; `SchedulePoller` the loop every
replica runs; `Spec` reads cron expressions and intervals. Example::

    schedules = open_schedules(store)
    poller = SchedulePoller(schedules, runs, clock=runs.timer_clock)
"""

from __future__ import annotations

from cairn_server.schedules.base import (
    CatchupPolicy,
    FiringRecord,
    FiringState,
    OverlapPolicy,
    ScheduleRecord,
    ThreadPolicy,
)
from cairn_server.schedules.poller import SchedulePoller
from cairn_server.schedules.spec import Spec, SpecError
from cairn_server.schedules.store import ScheduleStore, open_schedules

__all__ = [
    "CatchupPolicy",
    "FiringRecord",
    "FiringState",
    "OverlapPolicy",
    "SchedulePoller",
    "ScheduleRecord",
    "ScheduleStore",
    "Spec",
    "SpecError",
    "ThreadPolicy",
    "open_schedules",
]
