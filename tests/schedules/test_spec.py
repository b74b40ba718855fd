"""Due times of cron expressions (in time zones, across daylight-saving
changes) and of intervals; specs the service refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cairn_server.schedules import Spec, SpecError

PARIS = ZoneInfo("Europe/Paris")


def at(*parts: int, tz: ZoneInfo | None = None) -> float:
    return datetime(*parts, tzinfo=tz or UTC).timestamp()  # type: ignore[misc]


def test_cron_due_times_are_read_in_the_time_zone() -> None:
    spec = Spec.parse(cron="0 9 * * MON-FRI", time_zone="Europe/Paris")
    friday_noon = at(2026, 12, 4, 12, 0, tz=PARIS)

    assert spec.next_after(friday_noon) == at(2026, 12, 7, 9, 0, tz=PARIS)  # Monday
    assert spec.latest_until(friday_noon) == at(2026, 12, 4, 9, 0, tz=PARIS)
    # A due time is "at or before" itself and strictly "after" nothing equal.
    assert spec.latest_until(at(2026, 12, 4, 9, 0, tz=PARIS)) == at(2026, 12, 4, 9, 0, tz=PARIS)
    assert spec.next_after(at(2026, 12, 4, 9, 0, tz=PARIS)) == at(2026, 12, 7, 9, 0, tz=PARIS)


def test_daylight_saving_changes_skip_to_after_a_gap_and_fire_once_in_an_overlap() -> None:
    spec = Spec.parse(cron="30 2 * * *", time_zone="Europe/Paris")
    # 2026-03-29 has no 02:30 in Paris: it fires at 03:00 (CEST), the first instant after.
    spring = spec.next_after(at(2026, 3, 28, 12, 0, tz=PARIS))
    assert spring == at(2026, 3, 29, 1, 0)  # 03:00 CEST is 01:00 UTC
    # 2026-10-25 has 02:30 twice: it fires once, then the next day.
    autumn = spec.next_after(at(2026, 10, 24, 12, 0, tz=PARIS))
    assert spec.next_after(autumn) - autumn == 25 * 3600


def test_nicknames_are_cron_expressions() -> None:
    assert Spec.parse(cron="@hourly").next_after(at(2026, 1, 1, 9, 10)) == at(2026, 1, 1, 10, 0)
    assert Spec.parse(cron="@daily").next_after(at(2026, 1, 1, 9, 10)) == at(2026, 1, 2, 0, 0)


def test_interval_due_times_count_from_the_anchor() -> None:
    anchor = at(2026, 1, 1, 0, 0)
    spec = Spec.parse(interval=600, anchor=anchor + 0.75)  # whole seconds: the anchor is floored

    assert spec.latest_until(anchor + 599) is None
    assert spec.next_after(anchor) == anchor + 600
    assert spec.next_after(anchor + 600) == anchor + 1200
    assert spec.latest_until(anchor + 3599) == anchor + 3000


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "every day"}, "cron"),
        ({}, "cron"),
        ({"cron": "* * * * *", "interval": 60}, "cron"),
        ({"interval": 0.5}, "interval"),
        ({"interval": 90.5}, "interval"),
        ({"interval": -60}, "interval"),
        ({"cron": "0 9 * * *", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"cron": "0 9 * * *", "time_zone": "../etc/passwd"}, "time_zone"),
    ],
)
def test_bad_specs_name_their_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as raised:
        Spec.parse(**fields)  # type: ignore[arg-type]
    assert raised.value.field == field
