"""A LangGraph app interrupted in one process and resumed in another, with
CairnSaver against a real `cairn serve` process, and with LangGraph's own
SQLite savers: both must give the same interrupts, outputs, state and
history, and neither may run finished work again.

The app is tests/langgraph/lg_app.py (a StateGraph and a functional
entrypoint, each sync and async)."""

from __future__ import annotations

import collections
import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.sqlite")

from tests.e2e.processes import free_port, start_server

APP = pathlib.Path(__file__).with_name("lg_app.py")
SCENARIOS = ("graph", "graph_async", "functional", "functional_async")
SAVERS = ("cairn", "sqlite")

Result = dict[str, Any]


def run_app(saver: str, phase: str, log: pathlib.Path) -> Result:
    """One process of the app; returns what it printed."""
    done = subprocess.run(
        [sys.executable, str(APP), "--saver", saver, "--phase", phase, "--log", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{phase} with {saver} failed:\n{done.stdout}\n{done.stderr}"
    result: Result = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def interrupt_then_resume(saver: str, log: pathlib.Path) -> Result:
    start = run_app(saver, "start", log)
    resume = run_app(saver, "resume", log)
    assert start["pid"] != resume["pid"]
    executions = collections.Counter(log.read_text().splitlines())
    return {"start": start["scenarios"], "resume": resume["scenarios"], "executions": executions}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    tmp = tmp_path_factory.mktemp("cross_process")
    port = free_port()
    server = start_server(tmp / "cairn.db", port)
    try:
        cairn = interrupt_then_resume(f"cairn:127.0.0.1:{port}", tmp / "cairn.log")
    finally:
        assert server.stop() == 0, "\n".join(server.lines)
    sqlite = interrupt_then_resume(f"sqlite:{tmp / 'langgraph.db'}", tmp / "sqlite.log")
    return {"cairn": cairn, "sqlite": sqlite}


GRAPH_QUESTION = {"question": "approve the plan?", "topic": "otters"}
WORKFLOW_QUESTION = {"question": "publish?", "draft": "a draft about otters"}
NOTES = ["plan for otters", "facts about otters"]
GRAPH_FINAL = {
    "topic": "otters",
    "notes": NOTES,
    "verdict": "approved",
    "report": "approved: plan for otters; facts about otters",
}
WORKFLOW_FINAL = {
    "draft": "a draft about otters",
    "answer": "publish it",
    "published": "A DRAFT ABOUT OTTERS",
}


def question(scenario: str) -> dict[str, str]:
    return GRAPH_QUESTION if scenario.startswith("graph") else WORKFLOW_QUESTION


def final(scenario: str) -> dict[str, Any]:
    return GRAPH_FINAL if scenario.startswith("graph") else WORKFLOW_FINAL


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_first_process_stops_at_the_interrupt(results: dict[str, Result], scenario: str) -> None:
    cairn, sqlite = (results[s]["start"][scenario] for s in SAVERS)
    assert cairn["interrupts"] == [question(scenario)]
    assert cairn["output"]["__interrupt__"] == [{"interrupt": question(scenario)}]
    if scenario.startswith("graph"):
        assert cairn["next"] == ["review"]
        assert cairn["values"] == {"topic": "otters", "notes": NOTES}
    else:
        assert cairn["next"] == ["workflow"]
    assert cairn == sqlite


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_second_process_resumes_to_the_end(results: dict[str, Result], scenario: str) -> None:
    cairn, sqlite = (results[s]["resume"][scenario] for s in SAVERS)
    assert cairn["output"] == final(scenario)
    assert cairn["values"] == final(scenario)
    assert cairn["next"] == []
    assert cairn["interrupts"] == []
    assert cairn == sqlite


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_history_is_the_same_as_with_langgraphs_saver(
    results: dict[str, Result], scenario: str
) -> None:
    cairn, sqlite = (results[s]["resume"][scenario]["history"] for s in SAVERS)
    steps = [(h["step"], h["source"]) for h in cairn]
    if scenario.startswith("graph"):
        assert steps == [(3, "loop"), (2, "loop"), (1, "loop"), (0, "loop"), (-1, "input")]
        assert [h["next"] for h in cairn] == [
            [],
            ["write"],
            ["research", "review"],
            ["plan"],
            ["__start__"],
        ]
    else:
        assert steps == [(0, "loop"), (-1, "input")]
    assert len(cairn) == len(sqlite)
    assert cairn == sqlite


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_finished_work_is_not_run_again(results: dict[str, Result], scenario: str) -> None:
    """`research` finished in the step where `review` was interrupted, and
    `draft` before the workflow's interrupt: the resumed process takes their
    results from the checkpointer. The interrupted node (and the entrypoint)
    runs again, as LangGraph specifies."""
    counts = {
        saver: {
            line.split()[1]: n
            for line, n in results[saver]["executions"].items()
            if line.split()[0] == scenario
        }
        for saver in SAVERS
    }
    if scenario.startswith("graph"):
        assert counts["cairn"] == {"plan": 1, "research": 1, "review": 2, "write": 1}
    else:
        assert counts["cairn"] == {"workflow": 2, "draft": 1, "publish": 1}
    assert counts["cairn"] == counts["sqlite"]
