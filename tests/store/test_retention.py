"""Retention on every backend: pruning old checkpoints, deleting threads in
bulk, and the thread TTL sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from cairn_server.domain import PendingWrite, ThreadStatus
from cairn_server.ids import new_id
from cairn_server.store import Store, ThreadStatusChange, WriteBatch, WriteSet
from cairn_server.store.retention import ThreadTtlSweeper
from tests.store.test_conformance import make_checkpoint, make_event, make_run, make_thread

if TYPE_CHECKING:
    from conftest import Backend


async def grow_thread(store: Store, thread_id: str, steps: int, *, ns: str = "") -> list[str]:
    """A thread whose checkpoints change "count" every step and "history" only
    at steps 0 and 3, each with a pending write; returns the checkpoint ids."""
    await store.commit(WriteBatch(threads=[make_thread(thread_id)]))
    ids = [new_id() for _ in range(steps)]
    history_version = "1"
    for i, cp_id in enumerate(ids):
        values: dict[str, object] = {"count": i}
        if i in (0, 3):
            history_version = cp_id
            values["history"] = [f"message {i}"]
        checkpoint = make_checkpoint(
            thread_id,
            cp_id,
            ns=ns,
            values=values,
            versions={"count": cp_id, "history": history_version},
            metadata={"step": i},
            parent=ids[i - 1] if i else None,
        )
        await store.commit(
            WriteBatch(
                checkpoints=[checkpoint],
                writes=[WriteSet(thread_id, ns, cp_id, [PendingWrite("task", 0, "count", i)])],
            )
        )
    return ids


async def test_prune_keeps_the_latest_checkpoints_and_the_values_they_use(
    store: Store, store_url: str, backend: Backend
) -> None:
    ids = await grow_thread(store, "t", 6)
    child = await grow_thread(store, "t", 3, ns="child")
    kept_other = await grow_thread(store, "other", 4)
    run = make_run("t")
    await store.commit(WriteBatch(runs=[run], events=[make_event(run.run_id, 1)]))

    result = await store.prune_checkpoints(["t", "missing"], keep_latest=2)

    assert result.thread_ids == ["t"]
    assert result.deleted_checkpoints == 4 + 1  # 6 - 2 in "", 3 - 2 in "child"
    assert [c.checkpoint_id for c in await store.list_checkpoints("t")] == ids[:-3:-1]
    assert [c.checkpoint_id for c in await store.list_checkpoints("t", "child")] == child[:-3:-1]
    for i, cp_id in enumerate(ids):
        checkpoint = await store.get_checkpoint("t", "", cp_id)
        writes = await store.get_writes("t", "", cp_id)
        if i < 4:
            assert checkpoint is None and writes == []
        else:
            # "history" was last written at step 3 (pruned): its value stays.
            assert checkpoint is not None
            assert checkpoint.channel_values == {"count": i, "history": ["message 3"]}
            assert [w.value for w in writes] == [i]
    # Only the values a kept checkpoint points at are left.
    for ns in ("", "child"):  # two of "count", one of "history"
        assert (
            backend.count_rows(store_url, "checkpoint_blobs", thread_id="t", checkpoint_ns=ns) == 3
        )
    # Runs, events and other threads are untouched.
    assert await store.get_run(run.run_id) is not None
    assert await store.last_event_id(run.run_id) == 1
    assert len(await store.list_checkpoints("other")) == len(kept_other)

    again = await store.prune_checkpoints(["t"], keep_latest=2)
    assert (again.thread_ids, again.deleted_checkpoints) == (["t"], 0)


async def test_a_pruned_thread_keeps_growing_from_its_latest_checkpoint(store: Store) -> None:
    ids = await grow_thread(store, "t", 5)
    await store.prune_checkpoints(["t"], keep_latest=1)

    # The next step leaves "history" unchanged: it still points at a stored value.
    next_id = new_id()
    latest = await store.get_checkpoint("t")
    assert latest is not None and latest.checkpoint_id == ids[-1]
    versions = {**latest.channel_versions, "count": next_id}
    step = make_checkpoint("t", next_id, values={"count": 99}, versions=versions)
    await store.commit(WriteBatch(checkpoints=[step]))

    stored = await store.get_checkpoint("t")
    assert stored is not None
    assert stored.channel_values == {"count": 99, "history": ["message 3"]}


@pytest.mark.parametrize("keep", [0, -1])
async def test_prune_keeps_at_least_one_checkpoint(store: Store, keep: int) -> None:
    await grow_thread(store, "t", 2)

    with pytest.raises(ValueError):
        await store.prune_checkpoints(["t"], keep_latest=keep)

    assert len(await store.list_checkpoints("t")) == 2


async def test_delete_threads_deletes_each_thread_with_everything_it_has(
    store: Store, store_url: str, backend: Backend
) -> None:
    await grow_thread(store, "a", 3)
    await grow_thread(store, "b", 2)
    await grow_thread(store, "kept", 2)
    run = make_run("a")
    await store.commit(WriteBatch(runs=[run], events=[make_event(run.run_id, 1)]))

    result = await store.delete_threads(["b", "missing", "a", "b"])

    assert result.thread_ids == ["b", "a"]
    assert result.deleted_checkpoints == 5
    for thread_id in ("a", "b"):
        assert await store.get_thread(thread_id) is None
        assert await store.list_checkpoints(thread_id) == []
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "runs"):
            assert backend.count_rows(store_url, table, thread_id=thread_id) == 0
    assert await store.last_event_id(run.run_id) == 0
    assert await store.get_thread("kept") is not None
    assert len(await store.list_checkpoints("kept")) == 2
    assert (await store.delete_threads(["a"])).thread_ids == []


async def test_expired_threads_are_the_least_recently_updated_and_not_busy(
    store: Store,
) -> None:
    for i, status in enumerate(
        [ThreadStatus.IDLE, ThreadStatus.BUSY, ThreadStatus.INTERRUPTED, ThreadStatus.ERROR]
    ):
        await store.create_thread(make_thread(f"t{i}", created_at=float(10 - i), status=status))
    await store.create_thread(make_thread("fresh", created_at=100.0))

    assert await store.expired_threads(50.0, limit=10) == ["t3", "t2", "t0"]
    assert await store.expired_threads(50.0, limit=2) == ["t3", "t2"]
    assert await store.expired_threads(7.0, limit=10) == []


async def test_deleting_expired_threads_decides_when_it_is_applied(store: Store) -> None:
    for thread_id in ("old", "touched", "busy"):
        await store.create_thread(make_thread(thread_id, created_at=1.0))
    listed = await store.expired_threads(10.0, limit=10)
    # Between the listing and the deletion one thread is updated, one gets busy.
    await store.commit(
        WriteBatch(
            thread_statuses=[
                ThreadStatusChange("touched", ThreadStatus.IDLE, 20.0),
                ThreadStatusChange("busy", ThreadStatus.BUSY, 5.0),
            ]
        )
    )

    result = await store.delete_threads(listed, updated_before=10.0)

    assert sorted(listed) == ["busy", "old", "touched"]
    assert result.thread_ids == ["old"]
    assert await store.get_thread("touched") is not None
    assert await store.get_thread("busy") is not None


async def test_ttl_sweeper_deletes_expired_threads_unless_a_run_is_active(store: Store) -> None:
    now = 1_000.0
    for i in range(7):
        await store.create_thread(make_thread(f"old{i}", created_at=now - 500 - i))
    await store.create_thread(make_thread("recent", created_at=now - 10))
    running = {"old3"}  # a run is active on it, whatever the stored status says
    sweeper = ThreadTtlSweeper(
        store, ttl=100.0, is_busy=running.__contains__, clock=lambda: now, page_size=2
    )

    deleted = await sweeper.sweep()

    assert sorted(deleted) == ["old0", "old1", "old2", "old4", "old5", "old6"]
    assert await store.get_thread("old3") is not None
    assert await store.get_thread("recent") is not None
    running.clear()
    assert await sweeper.sweep() == ["old3"]
    assert await sweeper.sweep() == []


async def test_ttl_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError):
        ThreadTtlSweeper(store, ttl=0, is_busy=lambda _: False)
