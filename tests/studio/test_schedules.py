"""The schedules page: the namespace's schedules with when they fire next,
their policies and their latest firing (a link to its run's thread); the
schedules of another namespace are not shown."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from cairn import RunState, ScheduleFiringState, SyncClient
from tests.studio.conftest import shoot
from tests.studio.harness import Studio


def test_schedules(studio: Studio, client: SyncClient, page: Page) -> None:
    client.schedules.create(
        "approval",
        {"topic": "the weekly invoice run"},
        cron="0 8 * * MON",
        time_zone="Europe/Paris",
        schedule_id="weekly-invoices",
        overlap_policy="queue",
    )
    client.schedules.create("approval", {"topic": "x"}, interval=3600, schedule_id="hourly-check")
    client.schedules.pause("hourly-check")
    fired = client.schedules.trigger("weekly-invoices")
    assert fired.state is ScheduleFiringState.STARTED
    with SyncClient(studio.address, namespace="team-other") as other:
        other.schedules.create("approval", {"topic": "y"}, interval=60, schedule_id="not-yours")

    try:
        page.goto(f"{studio.url}#/schedules")
        rows = page.locator('table[data-testid="schedules"] tr[data-testid="schedule-row"]')
        expect(rows).to_have_count(2)
        weekly = rows.filter(has_text="weekly-invoices")
        expect(weekly).to_contain_text("0 8 * * MON (Europe/Paris)")
        expect(weekly).to_contain_text("overlap: queue")
        expect(weekly).to_contain_text("started")
        link = weekly.get_by_role("link", name=fired.thread_id)
        expect(link).to_have_attribute("href", f"#/threads/{fired.thread_id}")
        hourly = rows.filter(has_text="hourly-check")
        expect(hourly).to_contain_text("paused")
        expect(hourly).to_contain_text("every 3600s")
        expect(hourly).to_contain_text("none yet")
        expect(page.locator("table[data-testid=schedules]")).not_to_contain_text("not-yours")
        shoot(page, "schedules")
        link.click()
        expect(page.locator(f'main[data-thread-id="{fired.thread_id}"]')).to_be_visible()
    finally:
        for schedule_id in ("weekly-invoices", "hourly-check"):
            client.schedules.delete(schedule_id)
        # The firing's run waits for an answer (approval interrupts): drop it
        # with its thread, so that other tests see only their own threads.
        for _ in client.join(fired.run_id):
            pass
        assert client.get_run(fired.run_id).state is RunState.INTERRUPTED
        client.delete_thread(fired.thread_id)
