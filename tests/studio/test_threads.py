"""Threads list, Inbox and answering an interrupt from the thread view."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from cairn import Command, RunState, SyncClient
from tests.studio.conftest import css_string, shoot, thread_row
from tests.studio.harness import Studio


def test_answer_interrupt(studio: Studio, client: SyncClient, page: Page) -> None:
    thread = "support-ticket-1042"
    # A neighbour that already finished, so the list shows more than one status.
    done = client.invoke("approval", {"topic": "a refund"}, thread_id="support-ticket-1041")
    client.invoke("approval", Command(resume={"approved": True}), thread_id=done.thread_id)
    # And one that stays in the Inbox after this test's answer.
    client.invoke("approval", {"topic": "a broken lid"}, thread_id="support-ticket-1043")
    run = client.invoke("approval", {"topic": "a late parcel"}, thread_id=thread, durability="sync")
    assert run.state is RunState.INTERRUPTED
    [asked] = run.interrupts
    history = client.get_state_history(thread)

    page.goto(f"{studio.url}#/threads")
    row = thread_row(page, thread)
    expect(row).to_have_attribute("data-status", "interrupted")
    expect(thread_row(page, "support-ticket-1041")).to_have_attribute("data-status", "idle")
    shoot(page, "threads-list")

    page.get_by_role("navigation", name="Studio").get_by_role("link", name="Inbox").click()
    waiting = page.locator(f'tr[data-testid="inbox-row"][data-thread-id={css_string(thread)}]')
    expect(waiting).to_contain_text("Send this reply?")

    page.get_by_role("navigation", name="Studio").get_by_role("link", name="Threads").click()
    row.get_by_role("link", name=thread).click()
    view = page.locator('main[data-testid="thread"]')
    expect(view).to_have_attribute("data-thread-id", thread)
    expect(view.get_by_role("heading", name=thread)).to_be_visible()
    timeline = page.locator('ol[data-testid="timeline"] > li[data-testid="checkpoint"]')
    expect(timeline).to_have_count(len(history))

    interrupt = page.locator('section[data-testid="interrupts"] [data-testid="interrupt"]')
    expect(interrupt).to_have_count(1)
    expect(interrupt).to_have_attribute("data-interrupt-id", asked.id)
    expect(interrupt).to_contain_text("Send this reply?")
    expect(interrupt).to_contain_text("a late parcel")

    answer = interrupt.get_by_label("Answer (JSON)")
    resume = interrupt.get_by_role("button", name="Resume", exact=True)
    answer.fill('{"approved": true, "note": ')
    expect(resume).to_be_disabled()
    # The parse error is shown, and tied to the field for screen readers.
    expect(answer).to_have_attribute("aria-invalid", "true")
    expect(answer).to_have_accessible_description(re.compile("JSON"))
    reply = {"approved": True, "note": "Sent with priority shipping."}
    answer.fill(json.dumps(reply))
    expect(resume).to_be_enabled()
    expect(answer).not_to_have_attribute("aria-invalid", "true")
    shoot(page, "thread-interrupt")
    resume.click()

    runs = page.locator('table[data-testid="runs"] tr[data-testid="run-row"]')
    expect(runs.and_(page.locator('[data-state="succeeded"]'))).to_have_count(1)
    expect(page.locator('[data-testid="interrupt"]')).to_have_count(0)
    values = page.locator('section[data-testid="state"] [data-testid="state-values"]')
    expect(values).to_contain_text("Sent with priority shipping.")
    expect(timeline).to_have_count(len(client.get_state_history(thread)))
    shoot(page, "thread-final")

    state = client.get_state(thread)
    assert state.values["answer"] == reply
    assert state.values["sent"].endswith("Sent with priority shipping.")
    newest = client.list_runs(thread)[0]
    assert newest.state is RunState.SUCCEEDED
    expect(
        page.locator(f'tr[data-testid="run-row"][data-run-id={css_string(newest.run_id)}]')
    ).to_have_attribute("data-state", "succeeded")

    page.get_by_role("navigation", name="Studio").get_by_role("link", name="Inbox").click()
    other = page.locator('tr[data-testid="inbox-row"][data-thread-id="support-ticket-1043"]')
    expect(other).to_contain_text("a broken lid")
    expect(waiting).to_have_count(0)


def test_data_from_the_server_is_shown_as_text_never_as_markup(
    studio: Studio, client: SyncClient, page: Page
) -> None:
    """Thread ids, metadata and interrupt values are the users' data: markup in
    them is shown as it is written and never runs."""
    markup = '<img src="x" onerror="window.pwned = 1"><b>bold</b>'
    thread = "markup-<b>1</b>"
    client.create_thread(thread, metadata={"note": markup})
    run = client.invoke("approval", {"topic": markup}, thread_id=thread)
    assert run.state is RunState.INTERRUPTED

    page.goto(f"{studio.url}#/threads")
    row = thread_row(page, thread)
    expect(row).to_contain_text(thread)
    expect(row).to_contain_text("<b>bold</b>")
    row.get_by_role("link", name=thread).click()
    interrupt = page.locator('section[data-testid="interrupts"] [data-testid="interrupt"]')
    expect(interrupt).to_contain_text('onerror=\\"window.pwned = 1\\"')

    assert page.evaluate("window.pwned") is None
    assert page.locator("main img, main b").count() == 0
