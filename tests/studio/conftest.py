"""The harness of Cairn Studio's browser tests.

One real `cairn serve --ui-address` process (SQLite in a temporary folder)
and one real worker process serving tests/studio/studio_app.py are shared by
the whole session; each test sets up its own threads (with ids no other test
uses) through a `SyncClient`, and drives the page in headless Debian chromium
through Playwright's sync API (one browser per test module), in a fresh
browser context of 1280x800 per test. tests/studio/harness.py starts the
processes.

A test fails when its page raised an uncaught error; the page's console
errors are printed with it. `shoot(page, name)` saves a full-page screenshot
to build/screenshots/studio/<name>.png (or $CAIRN_SCREENSHOTS/<name>.png),
which the README links.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from cairn import SyncClient
from tests.e2e.processes import ROOT
from tests.studio.harness import Studio, start_app_worker, start_studio

CHROMIUM = pathlib.Path("/usr/bin/chromium")
AXE = ROOT / "studio" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = pathlib.Path(
    os.environ.get("CAIRN_SCREENSHOTS") or ROOT / "build" / "screenshots" / "studio"
)
VIEWPORT = {"width": 1280, "height": 800}
# Playwright's auto-waiting assertions: long enough for a run through two
# processes on a loaded 2-core machine.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    instance = start_studio(tmp_path_factory.mktemp("studio"))
    try:
        worker, instance.worker_id = start_app_worker(instance)
        instance.worker = worker
        try:
            yield instance
        finally:
            worker.stop()
    finally:
        instance.server.stop()


@pytest.fixture(scope="session")
def client(studio: Studio) -> Iterator[SyncClient]:
    with SyncClient(studio.address) as instance:
        yield instance


# --- the browser ----------------------------------------------------------------------------


# Per module, not per session: Playwright's sync API keeps an event loop
# running in the tests' thread while it is started, and pytest-asyncio's
# tests in other modules of this folder need that thread free.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); CI installs it")
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    try:
        yield instance
    finally:
        instance.close()


@dataclass
class PageErrors:
    """What the page reported: uncaught errors fail the test; console errors
    are printed with it."""

    uncaught: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def on_page_error(self, error: Error) -> None:
        self.uncaught.append(f"{error.name}: {error.message}\n{error.stack}")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location
            self.console.append(f"{message.text} ({where.get('url')}:{where.get('lineNumber')})")


def open_page(browser: Browser, **context_options: Any) -> Iterator[Page]:
    """A page in a fresh context (own sessionStorage) that fails the test on
    an uncaught page error."""
    context = browser.new_context(viewport=VIEWPORT, **context_options)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = PageErrors()
    page.on("pageerror", errors.on_page_error)
    page.on("console", errors.on_console)
    try:
        yield page
    finally:
        context.close()
        for line in errors.console:
            print("console error:", line)
    if errors.uncaught:
        pytest.fail("uncaught errors in the page:\n" + "\n".join(errors.uncaught))


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from open_page(browser)


def shoot(page: Page, name: str) -> pathlib.Path:
    """A full-page screenshot, build/screenshots/studio/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name.removesuffix('.png')}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


# --- selectors of the contract's hooks --------------------------------------------------------


def css_string(value: str) -> str:
    """`value` quoted for a CSS attribute selector."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def thread_row(page: Page, thread_id: str) -> Locator:
    return page.locator(f'tr[data-testid="thread-row"][data-thread-id={css_string(thread_id)}]')


def checkpoint_item(page: Page, checkpoint_id: str) -> Locator:
    return page.locator(
        f'li[data-testid="checkpoint"][data-checkpoint-id={css_string(checkpoint_id)}]'
    )


def select_checkpoint(page: Page, checkpoint_id: str) -> None:
    """Click the checkpoint's button in the timeline and wait until it is the
    selected one (aria-current on the item or on its button)."""
    item = checkpoint_item(page, checkpoint_id)
    item.get_by_role("button").first.click()
    expect(
        page.locator(
            f'li[data-testid="checkpoint"][data-checkpoint-id={css_string(checkpoint_id)}]'
            '[aria-current="true"], '
            f'li[data-testid="checkpoint"][data-checkpoint-id={css_string(checkpoint_id)}]'
            ' [aria-current="true"]'
        )
    ).to_have_count(1)


def checkpoint_id(snapshot: Any) -> str:
    return str(snapshot.config["configurable"]["checkpoint_id"])


def parent_id(snapshot: Any) -> str:
    parent = snapshot.parent_config
    return str(parent["configurable"]["checkpoint_id"]) if parent else ""
