"""A thread of 10,000 checkpoints opens with one page of its timeline, pages
on with "Older checkpoints", and shows a selected checkpoint's state and diff."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import Page, Request, expect

from cairn import SyncClient
from tests.studio.conftest import checkpoint_id, select_checkpoint
from tests.studio.harness import Studio, fill_history

CHECKPOINTS, PAGE = 10_000, 50


def test_long_history(studio: Studio, client: SyncClient, page: Page) -> None:
    thread = "long-conversation"
    ids = fill_history(studio.address, thread, CHECKPOINTS)
    newest = client.get_state_history(thread, limit=2)
    assert [checkpoint_id(s) for s in newest] == [ids[-1], ids[-2]]

    asked: list[dict[str, Any]] = []

    def record(request: Request) -> None:
        if request.url.endswith("/api/ThreadService/GetStateHistory"):
            asked.append(json.loads(request.post_data or "{}"))

    page.on("request", record)
    page.goto(studio.thread_url(thread))
    timeline = page.locator('ol[data-testid="timeline"] > li[data-testid="checkpoint"]')
    expect(timeline).to_have_count(PAGE)
    expect(timeline.first).to_have_attribute("data-checkpoint-id", ids[-1])
    expect(timeline.last).to_have_attribute("data-checkpoint-id", ids[-PAGE])

    page.get_by_role("button", name="Older checkpoints").click()
    expect(timeline).to_have_count(2 * PAGE)
    expect(timeline.last).to_have_attribute("data-checkpoint-id", ids[-2 * PAGE])
    shown = timeline.evaluate_all("items => items.map(item => item.dataset.checkpointId)")
    assert shown == ids[::-1][: 2 * PAGE]

    # The 61st newest: count 9939, its parent 9938.
    index = CHECKPOINTS - 61
    select_checkpoint(page, ids[index])
    values = page.locator('section[data-testid="state"] [data-testid="state-values"]')
    expect(values).to_contain_text(f"step {index}")
    expect(values).to_contain_text(str(index))
    diff = page.locator('[data-testid="state-diff"] [data-testid="diff-row"]')
    expect(diff).to_have_count(2)
    rows = diff.evaluate_all(
        "rows => rows.map(row => [row.dataset.path, row.dataset.change, row.textContent])"
    )
    paths = sorted(re.sub(r"[^a-z]", "", path) for path, _, _ in rows)
    assert paths == ["count", "note"], rows
    assert {change for _, change, _ in rows} == {"changed"}, rows
    assert any(str(index - 1) in text and str(index) in text for _, _, text in rows), rows

    assert asked, "the timeline never called GetStateHistory"
    assert all(0 < int(body.get("limit", 0)) <= 2 * PAGE for body in asked), asked
    assert len(asked) <= 8, f"GetStateHistory called {len(asked)} times: {asked}"
