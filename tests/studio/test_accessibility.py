"""axe-core finds no serious or critical violation on the main views, and the
main actions work with the keyboard alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from cairn import RunState, SyncClient
from tests.studio.conftest import AXE, css_string, open_page, thread_row
from tests.studio.harness import Studio

MAX_TABS = 80


@pytest.fixture
def axe_page(browser: Browser) -> Iterator[Page]:
    """A page that may run axe-core: the Studio's CSP (`default-src 'self'`)
    would refuse the injected script, so this context bypasses it."""
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: run `npm ci` in studio/ (it pins axe-core)")
    yield from open_page(browser, bypass_csp=True)


def serious_violations(page: Page) -> list[str]:
    """axe-core's violations of impact serious or critical on the page as it is."""
    page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['impact']} {v['id']}: {v['help']} at "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def focused(page: Page) -> dict[str, Any]:
    described: dict[str, Any] = page.evaluate(
        """() => {
            const e = document.activeElement;
            const row = e && e.closest('tr[data-testid="thread-row"]');
            return {tag: e ? e.tagName : '', text: e ? (e.textContent || '').trim() : '',
                    label: e ? e.getAttribute('aria-label') || '' : '',
                    thread: row ? row.dataset.threadId : null};
        }"""
    )
    return described


def tab_until(page: Page, wanted: Any) -> dict[str, Any]:
    """Press Tab until `wanted(focused element)`; at most MAX_TABS times."""
    seen = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        now = focused(page)
        if wanted(now):
            return now
        seen.append(now)
    raise AssertionError(f"not reached with Tab in {MAX_TABS} presses; focus went {seen}")


def test_accessibility(studio: Studio, client: SyncClient, axe_page: Page) -> None:
    page, thread = axe_page, "a11y-ticket-5"
    run = client.invoke("approval", {"topic": "a missing invoice"}, thread_id=thread)
    assert run.state is RunState.INTERRUPTED
    problems: dict[str, list[str]] = {}

    page.goto(f"{studio.url}#/threads")
    expect(thread_row(page, thread)).to_be_visible()
    problems["threads list"] = serious_violations(page)

    page.goto(studio.thread_url(thread))
    expect(page.locator('[data-testid="interrupt"]')).to_have_count(1)
    expect(page.locator('ol[data-testid="timeline"] > li').first).to_be_visible()
    problems["thread view"] = serious_violations(page)

    page.goto(f"{studio.url}#/workers")
    expect(page.locator('tr[data-testid="worker-row"]').first).to_be_visible()
    problems["workers"] = serious_violations(page)

    found = {view: lines for view, lines in problems.items() if lines}
    assert not found, "axe-core violations (serious or critical):\n" + "\n".join(
        f"[{view}] {line}" for view, lines in found.items() for line in lines
    )

    # The keyboard alone: Tab to the thread's link, Enter opens it; Tab to
    # the answer, type it, Tab to Resume, Enter resumes the run.
    page.goto(f"{studio.url}#/threads")
    expect(thread_row(page, thread)).to_be_visible()
    page.locator("body").focus()
    tab_until(page, lambda now: now["tag"] == "A" and now["thread"] == thread)
    page.keyboard.press("Enter")
    view = page.locator(f'main[data-testid="thread"][data-thread-id={css_string(thread)}]')
    expect(view).to_be_visible()
    interrupt = page.locator('[data-testid="interrupt"]')
    expect(interrupt).to_have_count(1)
    answer = interrupt.get_by_label("Answer (JSON)")
    tab_until(page, lambda now: now["tag"] == "TEXTAREA")
    expect(answer).to_be_focused()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type('{"approved": true}')
    resume = interrupt.get_by_role("button", name="Resume", exact=True)
    tab_until(page, lambda now: now["tag"] == "BUTTON" and now["text"] == "Resume")
    expect(resume).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator('tr[data-testid="run-row"][data-state="succeeded"]')).to_have_count(1)
    assert client.get_state(thread).values["answer"] == {"approved": True}
