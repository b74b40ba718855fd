"""Durable time: the service's clock for timers, and the loop that wakes
sleeping runs when they are due (DESIGN.md: a timer is held by the service,
with an absolute due time, and survives crashes, takeovers and restarts)."""

from cairn_server.timers.clock import CLOCK_FILE_ENV, OffsetClock, service_clock

__all__ = ["CLOCK_FILE_ENV", "OffsetClock", "service_clock"]
