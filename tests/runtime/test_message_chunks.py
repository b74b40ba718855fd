"""The service's part of a `messages` chunk's metadata (runtime/message_chunks.py)."""

from __future__ import annotations

from cairn_server.runtime.message_chunks import placed


def test_a_node_gets_its_step_triggers_and_path() -> None:
    data = {"message": {"content": "hi"}, "metadata": {"langgraph_node": "chat"}}
    started = {"id": "t1", "name": "chat", "input": {}, "triggers": ["branch:to:chat"]}
    assert placed(data, 3, started) == {
        "message": {"content": "hi"},
        "metadata": {
            "langgraph_node": "chat",
            "langgraph_step": 3,
            "langgraph_triggers": ["branch:to:chat"],
            "langgraph_path": ["__pregel_pull", "chat"],
        },
    }
    assert data["metadata"] == {"langgraph_node": "chat"}  # the worker's data is left alone


def test_a_called_task_has_no_path_and_what_the_worker_set_stays() -> None:
    data = {"message": {}, "metadata": {"langgraph_triggers": ["__start__"], "langgraph_step": 9}}
    started = {"id": "t2", "name": "ep", "triggers": ["__pregel_push"]}
    assert placed(data, 0, started)["metadata"] == {
        "langgraph_triggers": ["__start__"],
        "langgraph_step": 9,
    }
    pushed = placed({"message": {}, "metadata": {}}, 1, started)["metadata"]
    assert pushed == {"langgraph_step": 1, "langgraph_triggers": ["__pregel_push"]}


def test_a_router_or_other_data_passes_as_it_came() -> None:
    assert placed({"message": {}, "metadata": {}}, 2, None) == {
        "message": {},
        "metadata": {"langgraph_step": 2},
    }
    assert placed(["not", "a", "chunk"], 2, None) == ["not", "a", "chunk"]
    assert placed({"message": {}, "metadata": "odd"}, 2, None) == {"message": {}, "metadata": "odd"}
