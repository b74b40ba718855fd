"""The workers page: connected workers with what they serve, and the runs
that wait for a worker."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from cairn import RunState, SyncClient, WaitReason
from tests.studio.conftest import shoot
from tests.studio.harness import Studio, start_app_worker, stream_until


def test_workers(studio: Studio, client: SyncClient, page: Page) -> None:
    # A worker that served `nightly_digest` has gone: a run of it waits.
    retired, _ = start_app_worker(studio, "--retired")
    retired.stop()
    thread = "digest-2024-06-01"
    read = stream_until(
        studio.address,
        "nightly_digest",
        "2024-06-01",
        thread_id=thread,
        until=lambda event: event.run is not None and bool(event.run.waiting),
    )
    waiting = read[-1].run
    assert waiting is not None
    assert [(w.reason, w.task_name) for w in waiting.waiting] == [
        (WaitReason.NO_WORKER, "nightly_digest")
    ]
    [connected] = client.list_workers()
    assert connected.worker_id == studio.worker_id
    # A run that sleeps waits on its timer, holding no worker.
    slept = stream_until(
        studio.address,
        "snooze",
        "water the plants",
        thread_id="snooze-1",
        until=lambda event: event.run is not None and bool(event.run.waiting),
    )[-1].run
    assert slept is not None
    assert [w.reason for w in slept.waiting] == [WaitReason.TIMER]

    try:
        page.goto(f"{studio.url}#/workers")
        rows = page.locator('table[data-testid="workers"] tr[data-testid="worker-row"]')
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text("python")
        for name in ("approval", "live", "triage", "draft_reply", "wait_for_gate"):
            expect(rows).to_contain_text(name)
        expect(rows).not_to_contain_text("nightly_digest")

        runs = page.locator('table[data-testid="waiting-runs"] tr[data-testid="waiting-run"]')
        row = runs.filter(has_text=thread)
        expect(row).to_have_count(1)
        expect(row).to_contain_text("nightly_digest")
        sleeping = runs.filter(has_text="snooze-1")
        expect(sleeping).to_contain_text("snooze: sleeps until")
        shoot(page, "workers")
    finally:
        assert client.cancel_run(waiting.run_id).state is RunState.CANCELLED
        assert client.cancel_run(slept.run_id).state is RunState.CANCELLED
