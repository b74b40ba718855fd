"""Graph threads: the picture of the graph with the current step marked, and
time travel from an older checkpoint."""

from __future__ import annotations

import re

import grpc
from playwright.sync_api import Page, expect

from cairn import RunState, SyncClient
from cairn.v1 import graph_service_pb2, graph_service_pb2_grpc
from tests.studio.conftest import (
    checkpoint_id,
    checkpoint_item,
    css_string,
    parent_id,
    select_checkpoint,
    shoot,
)
from tests.studio.harness import Studio


def spec_nodes(studio: Studio, name: str) -> set[str]:
    """The node names of the graph `name` as the service knows it."""
    with grpc.insecure_channel(studio.address) as channel:
        stub = graph_service_pb2_grpc.GraphServiceStub(channel)
        response = stub.GetGraph(graph_service_pb2.GetGraphRequest(name=name), timeout=10)
    return {node.name for node in response.graph.nodes}


def test_graph_picture(studio: Studio, client: SyncClient, page: Page) -> None:
    thread = "ticket-question-88"
    run = client.invoke(
        "triage", {"text": "How do I change my address?", "notes": []}, thread_id=thread
    )
    assert run.state is RunState.INTERRUPTED
    assert client.get_state(thread).next == ("review",)
    nodes = spec_nodes(studio, "triage")
    assert {"classify", "refund", "answer", "review"} <= nodes

    page.goto(studio.thread_url(thread))
    graph = page.locator('svg[data-testid="graph"]')
    expect(graph).to_be_visible()
    drawn = graph.locator('g[data-testid="graph-node"]')
    expect(drawn.first).to_be_visible()
    names = drawn.evaluate_all("nodes => nodes.map(node => node.dataset.node)")
    assert len(names) == len(set(names)), f"a node drawn twice: {names}"
    assert nodes <= set(names), f"nodes of the spec not drawn: {nodes - set(names)}"
    assert set(names) <= nodes | {"__start__", "__end__"}, names
    current = graph.locator('g[data-testid="graph-node"][data-current="true"]')
    expect(current).to_have_count(1)
    expect(current).to_have_attribute("data-node", "review")
    expect(current).to_have_class(re.compile(r"(^|\s)current(\s|$)"))
    expect(graph.locator("g.current")).to_have_count(1)
    shoot(page, "graph")


def test_fork_from_older_checkpoint(studio: Studio, client: SyncClient, page: Page) -> None:
    thread = "ticket-refund-17"
    run = client.invoke("triage", {"text": "Please refund order 17", "notes": []}, thread_id=thread)
    assert run.state is RunState.INTERRUPTED
    before = client.get_state_history(thread)
    # The checkpoint after `classify`, before `refund` ran: fork from there.
    older = next(s for s in before if s.next == ("refund",))
    original_child = next(s for s in before if parent_id(s) == checkpoint_id(older))

    page.goto(studio.thread_url(thread))
    timeline = page.locator('ol[data-testid="timeline"] > li[data-testid="checkpoint"]')
    expect(timeline).to_have_count(len(before))
    select_checkpoint(page, checkpoint_id(older))
    expect(page.locator('[data-testid="next-nodes"]')).to_contain_text("refund")
    page.get_by_role("button", name="Run again from here").click()

    expect(timeline).to_have_count(len(before) + 1)
    siblings = page.locator(
        f'li[data-testid="checkpoint"][data-parent-id={css_string(checkpoint_id(older))}]'
    )
    expect(siblings).to_have_count(2)
    expect(siblings.nth(0)).to_be_visible()
    expect(siblings.nth(1)).to_be_visible()
    expect(checkpoint_item(page, checkpoint_id(original_child))).to_be_visible()
    runs = page.locator('table[data-testid="runs"] tr[data-testid="run-row"]')
    expect(runs).to_have_count(2)
    expect(runs.and_(page.locator('[data-state="running"]'))).to_have_count(0)
    shoot(page, "time-travel")

    after = client.get_state_history(thread)
    assert len(after) == len(before) + 1
    by_id = {checkpoint_id(s): s for s in after}
    for snapshot in before:  # the old branch is intact
        kept = by_id[checkpoint_id(snapshot)]
        assert (kept.values, kept.next, parent_id(kept)) == (
            snapshot.values,
            snapshot.next,
            parent_id(snapshot),
        )
    [new] = [s for s in after if checkpoint_id(s) not in {checkpoint_id(b) for b in before}]
    assert parent_id(new) == checkpoint_id(older)
    assert new.next == ("review",)
    assert new.values["notes"] == ["classified as refund", "refund drafted"]
