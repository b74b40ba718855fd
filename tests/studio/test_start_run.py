"""Starting a run from the threads list's "Start a run" form."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from cairn import RunState, SyncClient, ThreadNotFoundError
from tests.studio.conftest import AXE, css_string, open_page, shoot
from tests.studio.harness import Studio
from tests.studio.test_accessibility import serious_violations

UUID = re.compile(
    r"#/threads/([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$"
)


@pytest.fixture
def axe_page(browser: Browser) -> Iterator[Page]:
    """A page that may run axe-core (its context bypasses the Studio's CSP)."""
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: run `npm ci` in studio/ (it pins axe-core)")
    yield from open_page(browser, bypass_csp=True)


def open_form(page: Page, studio: Studio) -> Locator:
    """The threads list with the folded "Start a run" form opened with the
    keyboard (Enter on its summary)."""
    page.goto(f"{studio.url}#/threads")
    form = page.locator('form[data-testid="start-run"]')
    summary = page.locator("details > summary", has_text="Start a run")
    expect(summary).to_be_visible()
    expect(form).to_be_hidden()
    summary.focus()
    page.keyboard.press("Enter")
    expect(form).to_be_visible()
    return form


def test_start_a_run_from_the_form(studio: Studio, client: SyncClient, page: Page) -> None:
    form = open_form(page, studio)
    # The suggestions: the entrypoints and the graph the worker serves, not
    # its plain tasks nor the graph's node tasks.
    expect(form.locator('datalist option[value="approval"]')).to_have_attribute(
        "label", "entrypoint"
    )
    expect(form.locator('datalist option[value="triage"]')).to_have_attribute("label", "graph")
    expect(form.locator('datalist option[value="live"]')).to_have_count(1)
    expect(form.locator('datalist option[value="draft_reply"]')).to_have_count(0)
    expect(form.locator('datalist option[value^="triage:"]')).to_have_count(0)

    target = form.get_by_label("Target")
    answer = form.get_by_label("Input (JSON)")
    start = form.get_by_role("button", name="Start run")
    expect(form.get_by_label("Thread id")).to_have_value("")
    expect(start).to_be_disabled()
    target.fill("approval")
    answer.fill('{"topic": "a dented ')
    expect(start).to_be_disabled()
    expect(answer).to_have_attribute("aria-invalid", "true")
    expect(answer).to_have_accessible_description(re.compile("Not valid JSON"))
    answer.fill('{"topic": "a dented kettle"}')
    expect(start).to_be_enabled()
    expect(answer).not_to_have_attribute("aria-invalid", "true")
    expect(answer).to_have_accessible_description("Valid JSON.")
    shoot(page, "threads-start-run")
    start.click()

    # No thread id given: the page made one up (a UUID) and opened the thread.
    expect(page).to_have_url(UUID)
    found = UUID.search(page.url)
    assert found is not None
    thread = unquote(found.group(1))
    view = page.locator(f'main[data-testid="thread"][data-thread-id={css_string(thread)}]')
    expect(view).to_be_visible()
    interrupt = page.locator('section[data-testid="interrupts"] [data-testid="interrupt"]')
    expect(interrupt).to_have_count(1)
    expect(interrupt).to_contain_text("Send this reply?")
    expect(interrupt).to_contain_text("a dented kettle")

    assert client.get_thread(thread).thread_id == thread
    [run] = client.list_runs(thread)
    assert run.target == "approval"
    assert run.state is RunState.INTERRUPTED
    assert [i.value["question"] for i in run.interrupts] == ["Send this reply?"]
    expect(
        page.locator(f'tr[data-testid="run-row"][data-run-id={css_string(run.run_id)}]')
    ).to_have_attribute("data-state", "interrupted")
    # The run recorded the stream modes the form asked for: its log, shown
    # once the run is followed, holds tasks chunks (UPDATES alone is the default).
    row = page.locator(f'tr[data-testid="run-row"][data-run-id={css_string(run.run_id)}]')
    row.get_by_role("button", name="Follow").click()
    expect(page.locator('li[data-testid="event"][data-kind="tasks"]').first).to_be_attached()


def test_a_target_nobody_serves_is_refused_next_to_the_form(
    studio: Studio, client: SyncClient, axe_page: Page
) -> None:
    page, thread = axe_page, "start-form-nobody-1"
    form = open_form(page, studio)
    form.get_by_label("Target").fill("nobody_serves_this")
    form.get_by_label("Thread id").fill(thread)
    form.get_by_label("Input (JSON)").fill("null")
    start = form.get_by_role("button", name="Start run")
    start.click()

    error = form.locator('[data-testid="error"]')
    expect(error).to_contain_text("TARGET_NOT_FOUND")
    expect(error).to_contain_text("nobody_serves_this")
    expect(start).to_be_enabled()
    expect(page).to_have_url(re.compile(r"#/threads$"))
    with pytest.raises(ThreadNotFoundError):
        client.get_thread(thread)
    # The open form, its suggestions and the error pass axe-core too.
    expect(form.locator('datalist option[value="approval"]')).to_have_count(1)
    assert serious_violations(page) == []


def test_the_thread_view_follows_the_started_run_and_a_busy_thread_is_refused(
    studio: Studio, client: SyncClient, page: Page
) -> None:
    thread, gate = "start-form-live-1", "start-form-live"
    job = json.dumps({"before": 2, "after": 1, "gate": gate})
    try:
        form = open_form(page, studio)
        form.get_by_label("Target").fill("live")
        form.get_by_label("Thread id").fill(thread)
        form.get_by_label("Input (JSON)").fill(job)
        form.get_by_label("Input (JSON)").press("Tab")
        expect(page.get_by_role("button", name="Start run")).to_be_focused()
        page.keyboard.press("Enter")

        # The run waits on its gate: the thread view follows it as it goes on.
        view = page.locator(f'main[data-testid="thread"][data-thread-id={css_string(thread)}]')
        expect(view).to_be_visible()
        [run] = client.list_runs(thread)
        row = page.locator(f'tr[data-testid="run-row"][data-run-id={css_string(run.run_id)}]')
        expect(row).to_have_attribute("data-state", "running")
        events = page.locator('ol[data-testid="events"] > li[data-testid="event"]')
        expect(events.and_(page.locator('[data-kind="custom"]'))).to_have_count(2)

        # Another run on the busy thread is refused, next to the form.
        page.go_back()
        form = open_form(page, studio)
        form.get_by_label("Target").fill("live")
        form.get_by_label("Thread id").fill(thread)
        form.get_by_label("Input (JSON)").fill(job)
        form.get_by_role("button", name="Start run").click()
        expect(form.locator('[data-testid="error"]')).to_contain_text("THREAD_BUSY")
        expect(page).to_have_url(re.compile(r"#/threads$"))
        assert [r.run_id for r in client.list_runs(thread)] == [run.run_id]
    finally:
        studio.open_gate(gate)
    page.goto(studio.thread_url(thread))
    expect(row).to_have_attribute("data-state", "succeeded")
    assert client.get_run(run.run_id).state is RunState.SUCCEEDED
