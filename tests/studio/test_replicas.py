"""The Studio of one replica steers runs that another replica drives: two
`cairn serve` processes on one Postgres schema, the worker connected to the
first only, the page served by the second (DESIGN.md 8.5: "it works against
any replica")."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from cairn import RunState, SyncClient
from tests import postgres
from tests.e2e.processes import Process, free_port, serve
from tests.studio.harness import STUDIO_LINE, Studio, start_app_worker


@pytest.fixture
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Studio, Studio]]:
    """Replica r0 with the worker, replica r1 with the Studio (the resume the
    page starts on r1 runs its tasks on r0's worker through a relay)."""
    postgres.require_postgres()
    gates = tmp_path_factory.mktemp("gates")
    with postgres.fresh_schema() as url:
        running: list[Process] = []
        try:
            first_port = free_port()
            first = serve(url, first_port, "--replica-id", "r0")
            running.append(first)
            second_port = free_port()
            second = serve(url, second_port, "--replica-id", "r1", "--ui-address", "127.0.0.1:0")
            running.append(second)
            line = STUDIO_LINE.search(second.wait_for_line("cairn studio on"))
            assert line is not None
            worked = Studio(f"127.0.0.1:{first_port}", "", first, gates)
            worker, worked.worker_id = start_app_worker(worked)
            running.append(worker)
            yield worked, Studio(f"127.0.0.1:{second_port}", line.group(1), second, gates)
        finally:
            for process in reversed(running):
                process.stop()


def test_an_interrupt_answered_on_one_replica_resumes_a_run_of_another(
    replicas: tuple[Studio, Studio], page: Page
) -> None:
    worked, shown = replicas
    thread = "replicated-ticket-7"
    with SyncClient(worked.address) as client:
        run = client.invoke("approval", {"topic": "a lost key"}, thread_id=thread)
        assert run.state is RunState.INTERRUPTED

    page.goto(shown.thread_url(thread))
    interrupt = page.locator('section[data-testid="interrupts"] [data-testid="interrupt"]')
    expect(interrupt).to_contain_text("a lost key")
    interrupt.get_by_label("Answer (JSON)").fill(json.dumps({"approved": True}))
    interrupt.get_by_role("button", name="Resume", exact=True).click()

    runs = page.locator('table[data-testid="runs"] tr[data-testid="run-row"]')
    expect(runs.and_(page.locator('[data-state="succeeded"]'))).to_have_count(1)
    events = page.locator('ol[data-testid="events"] li[data-testid="event"]')
    expect(events.and_(page.locator('[data-kind="run"]')).last).to_contain_text("succeeded")
    with SyncClient(worked.address) as client:
        assert client.get_state(thread).values["answer"] == {"approved": True}
        assert client.list_runs(thread)[0].state is RunState.SUCCEEDED
