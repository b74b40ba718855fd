"""Where a resumed run numbers its events (runtime/events.py)."""

from __future__ import annotations

from cairn_server.domain import Durability
from cairn_server.runtime.events import LEASE_EVENT_RANGE, first_event_id


def test_sync_runs_number_on_after_the_last_stored_event() -> None:
    # An event is published only once stored: no client saw a later id.
    assert first_event_id(7, 1, Durability.SYNC) == 8
    assert first_event_id(7, 3, Durability.SYNC) == 8


def test_other_runs_start_a_range_per_lease_above_what_was_published() -> None:
    for durability in (Durability.ASYNC, Durability.EXIT):
        # The first lease numbers from 1, as a started run does.
        assert first_event_id(0, 1, durability) == 1
        # A later lease skips ids the old owner may have published unstored.
        assert first_event_id(7, 2, durability) == LEASE_EVENT_RANGE + 1
        assert first_event_id(7, 3, durability) == 2 * LEASE_EVENT_RANGE + 1
        # Ids already stored in the range are never used again.
        stored = LEASE_EVENT_RANGE + 40
        assert first_event_id(stored, 2, durability) == stored + 1
