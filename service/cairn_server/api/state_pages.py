"""Page tokens of GetState's tasks and of GetStateHistory's snapshots, and
the byte budget that keeps their responses within the message limit.

A tasks token names the checkpoint and the index of the next task, so that
later pages read the same checkpoint even when the thread moved on; a
history token names how many snapshots were returned and the last one's
checkpoint id (the next page lists the checkpoints before it).
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn_server.api.message_sizes import max_message_bytes
from cairn_server.errors import ServiceError, error_for

_MARGIN = 64 * 1024
"""Room for the response around the snapshots and for estimates' slack."""


def response_budget(max_payload_bytes: int) -> int:
    """The most bytes of snapshots one GetState or GetStateHistory sends."""
    return max_message_bytes(max_payload_bytes) - _MARGIN


@dataclass(frozen=True, slots=True)
class TasksPage:
    checkpoint_id: str
    first_task: int


def tasks_token(checkpoint_id: str, first_task: int) -> str:
    return f"tasks:{first_task}:{checkpoint_id}"


def parse_tasks_token(token: str, checkpoint_id: str) -> TasksPage:
    """The page a tasks_page_token asks for; INVALID_ARGUMENT when this
    service did not issue it for `checkpoint_id` (empty: any)."""
    kind, _, rest = token.partition(":")
    index, _, token_checkpoint = rest.partition(":")
    if kind != "tasks" or not index.isdigit() or not token_checkpoint:
        raise _invalid("tasks_page_token")
    if checkpoint_id and checkpoint_id != token_checkpoint:
        raise _invalid("tasks_page_token", "it was issued for another checkpoint_id")
    return TasksPage(token_checkpoint, int(index))


@dataclass(frozen=True, slots=True)
class HistoryPage:
    returned: int
    before: str


def history_token(returned: int, last_checkpoint_id: str) -> str:
    return f"history:{returned}:{last_checkpoint_id}"


def parse_history_token(token: str) -> HistoryPage:
    kind, _, rest = token.partition(":")
    returned, _, before = rest.partition(":")
    if kind != "history" or not returned.isdigit() or not before:
        raise _invalid("page_token")
    return HistoryPage(int(returned), before)


def _invalid(field: str, why: str = "this service did not issue it") -> ServiceError:
    return error_for("INVALID_ARGUMENT", f"{field} is not valid: {why}", field=field)
