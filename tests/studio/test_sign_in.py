"""A server that needs identity: the page asks for a token, shows what the
namespace of a reader key holds and nothing else, and refuses a wrong key
with a visible message."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from cairn import SyncClient, UnauthenticatedError
from tests.studio.conftest import thread_row
from tests.studio.harness import Studio, cairn_keys_create, start_studio

TEAM_THREAD, DEFAULT_THREAD = "team-a-onboarding", "default-onboarding"
WRONG_KEY = "cairn_" + "0" * 43


@pytest.fixture
def secured(tmp_path: pathlib.Path) -> Iterator[tuple[Studio, str]]:
    """`cairn serve --access-file` with an admin key (to set up) and a reader
    key of team-a; a thread in team-a and one in default. Yields the server
    and the reader key."""
    admin, admin_entry = cairn_keys_create("setup", "*:admin")
    reader, reader_entry = cairn_keys_create("reader-a", "team-a:reader")
    access = tmp_path / "access.json"
    access.write_text(json.dumps({"api_keys": [admin_entry, reader_entry]}))
    studio = start_studio(tmp_path, "--access-file", str(access))
    try:
        with SyncClient(studio.address, api_key=admin, namespace="team-a") as client:
            client.create_thread(TEAM_THREAD, metadata={"team": "a"})
        with SyncClient(studio.address, api_key=admin) as client:
            client.create_thread(DEFAULT_THREAD, metadata={"team": "default"})
        yield studio, reader
    finally:
        studio.server.stop()


def sign_in_form(page: Page) -> Locator:
    return (
        page.locator("dialog, form")
        .filter(has=page.get_by_role("button", name="Sign in", exact=True))
        .first
    )


def sign_in(page: Page, token: str, namespace: str) -> None:
    form = sign_in_form(page)
    form.get_by_label("Token").fill(token)
    form.get_by_label("Namespace").fill(namespace)
    form.get_by_role("button", name="Sign in", exact=True).click()


def test_sign_in_with_a_reader_key(secured: tuple[Studio, str], page: Page) -> None:
    studio, reader = secured
    with (
        SyncClient(studio.address, api_key=WRONG_KEY) as client,
        pytest.raises(UnauthenticatedError) as refused,
    ):
        client.list_threads()

    page.goto(f"{studio.url}#/threads")
    form = sign_in_form(page)
    expect(form).to_be_visible()
    expect(form.get_by_label("Token")).to_be_visible()

    sign_in(page, WRONG_KEY, "team-a")
    expect(page.get_by_text(refused.value.message).first).to_be_visible()
    expect(thread_row(page, TEAM_THREAD)).to_have_count(0)

    # Signed out, the page asks again (its list needs a token).
    page.get_by_role("banner").get_by_role("button", name="Sign out").click()
    expect(form).to_be_visible()
    sign_in(page, reader, "team-a")
    expect(form).to_be_hidden()
    expect(thread_row(page, TEAM_THREAD)).to_be_visible()
    expect(page.locator("header")).to_contain_text("team-a")
    expect(page.locator('tr[data-testid="thread-row"]')).to_have_count(1)
    expect(thread_row(page, DEFAULT_THREAD)).to_have_count(0)
