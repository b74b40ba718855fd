"""A running run's events appear on the thread page as they happen, and a
reload shows each of them exactly once."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from cairn import RunState, SyncClient
from tests.studio.conftest import css_string, shoot
from tests.studio.harness import Studio, stream_until

BEFORE, AFTER = 3, 2


def event_ids(page: Page) -> list[int]:
    ids = page.locator('ol[data-testid="events"] > li[data-testid="event"]').evaluate_all(
        "items => items.map(item => item.dataset.eventId)"
    )
    return [int(value) for value in ids]


def test_live_events(studio: Studio, client: SyncClient, page: Page) -> None:
    thread, gate = "nightly-import-7", "live-events"
    read = stream_until(
        studio.address,
        "live",
        {"before": BEFORE, "after": AFTER, "gate": gate},
        thread_id=thread,
        until=lambda event: event.mode == "custom" and event.data["index"] == BEFORE - 1,
    )
    run_id = read[0].run_id

    page.goto(studio.thread_url(thread))
    events = page.locator('ol[data-testid="events"] > li[data-testid="event"]')
    custom = events.and_(page.locator('[data-kind="custom"]'))
    expect(custom).to_have_count(BEFORE)
    run_row = page.locator(f'tr[data-testid="run-row"][data-run-id={css_string(run_id)}]')
    expect(run_row).to_have_attribute("data-state", "running")
    # The gate is closed: the run is still going on while the page shows its events.
    assert client.get_run(run_id).state is RunState.RUNNING
    expect(custom.last).to_contain_text('"before"')
    shoot(page, "live-events")

    # A reload while it runs follows the run again: each event once.
    page.reload()
    expect(run_row).to_have_attribute("data-state", "running")
    expect(custom).to_have_count(BEFORE)
    assert client.get_run(run_id).state is RunState.RUNNING

    studio.open_gate(gate)
    expect(run_row).to_have_attribute("data-state", "succeeded")
    expect(custom).to_have_count(BEFORE + AFTER)
    expect(custom.last).to_contain_text('"after"')
    final = client.get_run(run_id)
    assert final.state is RunState.SUCCEEDED
    assert final.output == {"gate": f"gate {gate} opened", "events": BEFORE + AFTER}
    live_ids = event_ids(page)
    assert live_ids == sorted(set(live_ids)), f"event ids not strictly increasing: {live_ids}"

    # A reload after the end: following the run reads its log again, each event once.
    page.reload()
    expect(run_row).to_have_attribute("data-state", "succeeded")
    run_row.get_by_role("button", name="Follow").click()
    expect(custom).to_have_count(BEFORE + AFTER)
    ids = event_ids(page)
    assert ids == sorted(set(ids)), f"event ids not strictly increasing: {ids}"
    assert set(live_ids) <= set(ids), (live_ids, ids)
    chunks = [e.event_id for e in client.join(run_id) if e.mode != "lifecycle"]
    assert set(chunks) <= set(ids), (chunks, ids)
