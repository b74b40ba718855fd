"""Argument checks shared by the backends' retention methods."""

from __future__ import annotations

from collections.abc import Sequence

from cairn_server.store.base import PruneResult


def unique_ids(thread_ids: Sequence[str]) -> list[str]:
    """The ids in their first order, each once."""
    if isinstance(thread_ids, str):
        raise TypeError("thread_ids must be a sequence of ids, not one string")
    return list(dict.fromkeys(thread_ids))


def check_keep_latest(keep_latest: int) -> None:
    if keep_latest < 1:
        raise ValueError(f"keep_latest must be at least 1, got {keep_latest}")


def prune_result(result: object) -> PruneResult:
    assert isinstance(result, PruneResult)
    return result
