"""What only the Postgres store has: surviving lost connections, its URL
options, and values jsonb cannot hold."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from cairn_server.domain import RunState, ThreadStatus
from cairn_server.ids import new_id
from cairn_server.store import Lease, Store, StoreError, WriteBatch, open_store
from cairn_server.store.postgres import PostgresStore
from tests import postgres
from tests.store.test_conformance import fill_thread, make_event, make_run, make_thread
from tests.store.test_leases import start_run


@pytest.fixture
async def named() -> AsyncIterator[tuple[Store, str]]:
    """A Postgres store whose connections carry a unique application_name."""
    with postgres.fresh_schema() as url:
        name = f"cairn-test-{uuid.uuid4().hex[:12]}"
        store = open_store(f"{url}&application_name={name}&pool_min_size=2")
        await store.open()
        try:
            yield store, name
        finally:
            await store.close()


def terminate(name: str) -> int:
    """Kill every server process serving the store's connections."""
    rows = postgres.query(
        postgres.BASE_URL,
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
        name,
    )
    return int(rows[0][0])


async def test_commits_and_reads_go_on_after_the_connections_are_killed(
    named: tuple[Store, str],
) -> None:
    store, name = named
    run_id, cp_id = await fill_thread(store, "t")

    assert terminate(name) >= 1
    await store.commit(WriteBatch(events=[make_event(run_id, 3)]))  # on a new connection
    assert terminate(name) >= 1
    assert await store.last_event_id(run_id) == 3

    checkpoint = await store.get_checkpoint("t")
    assert checkpoint is not None and checkpoint.checkpoint_id == cp_id
    assert [e.event_id for e in await store.read_events(run_id)] == [1, 2, 3]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql:///",
        "mysql://host/db",
        "postgresql://host/db?pool_max_size=none",
        "postgresql://host/db?pool_min_size=5&pool_max_size=2",
    ],
)
def test_rejects_malformed_urls(url: str) -> None:
    with pytest.raises(ValueError):
        PostgresStore.from_url(url) if url.startswith("postgres") else open_store(url)


async def test_an_unreachable_server_is_a_store_error() -> None:
    store = open_store("postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(StoreError, match="cannot connect"):
        await store.open()


async def test_metadata_with_a_nul_character_is_refused_before_it_is_queued() -> None:
    with postgres.fresh_schema() as url:
        store = open_store(url)
        await store.open()
        try:
            with pytest.raises(ValueError, match="U\\+0000"):
                await store.commit(WriteBatch(threads=[make_thread("t", metadata={"k": "a\0b"})]))
            # An escaped backslash followed by "u0000" is ordinary text.
            fine = make_thread(new_id(), metadata={"k": "\\u0000"})
            await store.commit(WriteBatch(threads=[fine]))
            assert await store.get_thread(fine.thread_id) == fine
        finally:
            await store.close()


async def test_two_stores_on_one_database_see_each_others_writes() -> None:
    """Two servers' stores on one schema: what one commits, the other reads,
    and commits from both land."""
    with postgres.fresh_schema() as url:
        first, second = open_store(url), open_store(url)
        await first.open()
        await second.open()
        try:
            run_id, cp_id = await fill_thread(first, "t")
            checkpoint = await second.get_checkpoint("t")
            assert checkpoint is not None and checkpoint.checkpoint_id == cp_id

            await asyncio.gather(
                *(
                    (first if i % 2 else second).commit(WriteBatch(events=[make_event(run_id, i)]))
                    for i in range(3, 103)
                )
            )

            assert [e.event_id for e in await first.read_events(run_id)] == list(range(1, 103))
            assert await second.last_event_id(run_id) == 102
        finally:
            await first.close()
            await second.close()


async def test_the_urls_tls_settings_are_honoured() -> None:
    """sslmode and the other libpq TLS parameters of the URL reach the
    connection (they are not sent as server settings): `sslmode=require`
    connects over TLS to a server that has it and refuses one that has not;
    `sslmode=disable` connects in plaintext."""
    server_has_tls = postgres.query(postgres.BASE_URL, "SHOW ssl")[0][0] == "on"
    with postgres.fresh_schema() as url:
        store = open_store(f"{url}&sslmode=require")
        if server_has_tls:
            await store.open()
            await store.close()
        else:
            with pytest.raises(StoreError, match=r"cannot connect.*SSL"):
                await store.open()
        store = open_store(f"{url}&sslmode=disable")
        await store.open()
        await store.close()


async def test_a_group_of_batches_is_one_statement_fences_and_claims_included(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 21: a group commit costs one round trip to the database."""
    sent: list[str] = []
    create_pool = asyncpg.create_pool

    def logging_pool(*args: object, **kwargs: object) -> object:
        async def init(conn: asyncpg.Connection) -> None:
            conn.add_query_logger(lambda record: sent.append(record.query))

        return create_pool(*args, init=init, **kwargs)

    monkeypatch.setattr(asyncpg, "create_pool", logging_pool)
    with postgres.fresh_schema() as url:
        store = open_store(url)
        await store.open()
        try:
            leases = [await start_run(store, "r1") for _ in range(10)]
            sent.clear()
            started = make_run("new-thread", state=RunState.RUNNING)
            batches = [
                *(
                    WriteBatch(events=[make_event(lease.run_id, 1)], lease=lease)
                    for lease in leases
                ),
                WriteBatch(
                    threads=[make_thread("new-thread", status=ThreadStatus.BUSY)],
                    runs=[started],
                    lease=Lease(started.run_id, "r1", 1),
                ),
            ]
            await asyncio.gather(*(store.commit(batch) for batch in batches))
        finally:
            await store.close()
    # The group is taken whole by the writer, and is one statement.
    assert len(sent) == 1 and "cairn_apply_batches" in sent[0], sent


async def test_a_runs_batches_apply_in_the_order_they_were_submitted() -> None:
    """Each run's batches, submitted without waiting and interleaved with
    other runs' (grouped as the writer finds them), land in order: the last
    one wins."""
    with postgres.fresh_schema() as url:
        store = open_store(url)
        await store.open()
        try:
            leases = [await start_run(store, "r1") for _ in range(8)]
            threads = {
                lease.run_id: (await store.get_run(lease.run_id)).thread_id for lease in leases
            }
            pending = [
                store.submit(
                    WriteBatch(
                        runs=[
                            make_run(
                                threads[lease.run_id],
                                lease.run_id,
                                state=RunState.RUNNING,
                                created_at=float(step),  # and updated_at
                            )
                        ],
                        events=[make_event(lease.run_id, step)],
                        lease=lease,
                    )
                )
                for step in range(1, 31)
                for lease in leases
            ]
            await asyncio.gather(*pending)
            for lease in leases:
                run = await store.get_run(lease.run_id)
                assert run is not None and run.updated_at == 30.0
        finally:
            await store.close()
