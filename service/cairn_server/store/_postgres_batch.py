"""WriteBatches as the Postgres function cairn_apply_batches (migration 0014)
takes them: a group of batches is one statement, one round trip.

A batch becomes a JSON object whose JSON column values are strings holding
their exact text (as the columns keep them) and whose blob values are
1-based indexes into the statement's bytea[] parameter, so that bytes travel
as bytes. `group` joins the jobs of a group commit, `refusal` reads back each
job's outcome.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn_server.domain import Durability, RunRecord, RunState, StreamMode, ThreadStatus
from cairn_server.store import _postgres_sql as pg
from cairn_server.store._sqlite_sql import check_versions, dumps
from cairn_server.store.base import (
    Lease,
    LeaseLost,
    StoreError,
    StoreUnavailable,
    ThreadBusy,
    ThreadChanged,
    WriteBatch,
)
from cairn_server.store.typed_values import JSON as JSON_BLOB

APPLY = "SELECT cairn_apply_batches($1::json, $2::bytea[])"

# Rows whose "blob" field indexes the statement's blobs.
_BLOB_ROWS = ("blobs", "writes", "special_writes")


@dataclass(slots=True)
class EncodedJob:
    doc: dict[str, Any]
    blobs: list[bytes] = field(default_factory=list)
    lease: Lease | None = None

    @property
    def replayable(self) -> bool:
        """Whether applying it a second time changes nothing: every write is
        insert-or-ignore or an upsert. A run start's thread claim and a
        timer's lease change are not: a replay would find them done and be
        refused (ThreadBusy, LeaseLost)."""
        return "claim_thread" not in self.doc and "timers" not in self.doc

    @property
    def shared_locks(self) -> list[str]:
        """Threads whose stored values its checkpoints rely on: a prune of
        them waits (pg.LOCK_THREADS_SHARED)."""
        return sorted({check["thread_id"] for check in self.doc.get("blob_checks", ())})

    def blob(self, data: bytes) -> int:
        self.blobs.append(data)
        return len(self.blobs)


def encode(batch: WriteBatch) -> EncodedJob:
    """Encode every value of `batch`; raises TypeError or ValueError for a
    value that is not JSON (a set, NaN, ...) before anything is written."""
    job = EncodedJob({}, lease=batch.lease)
    doc = job.doc
    if batch.claim_thread:
        doc["claim_thread"] = batch.claim_thread
        if batch.claim_thread_at is not None:
            doc["claim_thread_at"] = float(batch.claim_thread_at)
    if batch.lease is not None:
        lease = batch.lease
        doc["lease"] = {"run_id": lease.run_id, "owner": lease.owner, "token": lease.token}
    doc["threads"] = [
        {
            "thread_id": t.thread_id,
            "created_at": float(t.created_at),
            "updated_at": float(t.updated_at),
            "metadata": pg.jsonb(t.metadata, "thread metadata"),
            "status": ThreadStatus(t.status).value,
            "request_id": t.request_id,
        }
        for t in batch.threads
    ]
    doc["thread_statuses"] = [
        {
            "thread_id": c.thread_id,
            "status": ThreadStatus(c.status).value,
            "updated_at": float(c.updated_at),
        }
        for c in batch.thread_statuses
    ]
    doc["runs"] = [_run(r) for r in batch.runs]
    doc["timers"] = [{"run_id": r, "wake_at": float(at)} for r, at in batch.timers]
    if batch.clear_interrupt_timers:
        doc["clear_interrupt_timers"] = batch.clear_interrupt_timers
    checkpoints: list[dict[str, Any]] = []
    blobs: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for cp in batch.checkpoints:
        check_versions(cp)
        checkpoints.append(
            {
                "thread_id": cp.thread_id,
                "checkpoint_ns": cp.checkpoint_ns,
                "checkpoint_id": cp.checkpoint_id,
                "parent_checkpoint_id": cp.parent_checkpoint_id,
                "channel_versions": pg.jsonb(cp.channel_versions, "channel versions"),
                "metadata": pg.jsonb(cp.metadata, "checkpoint metadata"),
                "created_at": float(cp.created_at),
            }
        )
        for channel, value in cp.channel_values.items():
            blobs.append(
                {
                    "thread_id": cp.thread_id,
                    "checkpoint_ns": cp.checkpoint_ns,
                    "channel": channel,
                    "version": cp.channel_versions[channel],
                    "type": JSON_BLOB,
                    "blob": job.blob(dumps(value).encode()),
                }
            )
        unsent = {ch: v for ch, v in cp.channel_versions.items() if ch not in cp.channel_values}
        if unsent:
            checks.append(
                {
                    "thread_id": cp.thread_id,
                    "checkpoint_ns": cp.checkpoint_ns,
                    "checkpoint_id": cp.checkpoint_id,
                    "versions": dumps(unsent),
                }
            )
    doc["checkpoints"], doc["blobs"], doc["blob_checks"] = checkpoints, blobs, checks
    writes: list[dict[str, Any]] = []
    special: list[dict[str, Any]] = []
    for ws in batch.writes:
        for w in ws.writes:
            row = {
                "thread_id": ws.thread_id,
                "checkpoint_ns": ws.checkpoint_ns,
                "checkpoint_id": ws.checkpoint_id,
                "task_id": w.task_id,
                "idx": int(w.idx),
                "channel": w.channel,
                "type": JSON_BLOB,
                "blob": job.blob(dumps(w.value).encode()),
                "task_path": w.task_path,
            }
            (special if w.idx < 0 else writes).append(row)
    doc["writes"], doc["special_writes"] = writes, special
    doc["events"] = [
        {
            "run_id": e.run_id,
            "event_id": int(e.event_id),
            "created_at": float(e.created_at),
            "kind": e.kind,
            "payload": dumps(e.payload),
        }
        for e in batch.events
    ]
    now = time.time()
    doc["targets"] = [{"name": name, "registered_at": now} for name in batch.targets]
    doc["graphs"] = [
        {"name": name, "spec": dumps(spec), "registered_at": now} for name, spec in batch.graphs
    ]
    for key in [key for key, value in doc.items() if value == []]:
        del doc[key]  # each part there costs the function a statement
    return job


def _run(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "target": run.target,
        "state": RunState(run.state).value,
        "durability": Durability(run.durability).value,
        "created_at": float(run.created_at),
        "updated_at": float(run.updated_at),
        "checkpoint_id": run.checkpoint_id,
        "metadata": pg.jsonb(run.metadata, "run metadata"),
        "stream_modes": dumps([StreamMode(mode).value for mode in run.stream_modes]),
        "request_id": run.request_id,
        "has_output": bool(run.has_output),
        "output": dumps(run.output) if run.has_output else None,
        "interrupts": dumps([interrupt.to_json() for interrupt in run.interrupts]),
        "error": dumps(run.error.to_json()) if run.error is not None else None,
        "request_hash": run.request_hash,
        "recursion_limit": run.recursion_limit,
        "waiting": dumps([waiting.to_json() for waiting in run.waiting]),
        "trace_context": dumps(run.trace_context),
    }


def group(jobs: Sequence[EncodedJob]) -> tuple[str, list[bytes]]:
    """The parameters of APPLY for `jobs`, applied in this order, with the
    locks the group takes first, in id order (so that two replicas' groups
    cannot deadlock): the prune locks, and when the group holds more than
    one, the rows of the threads it claims and the runs it fences."""
    docs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for job in jobs:
        offset = len(blobs)
        doc = job.doc
        if offset:
            doc = dict(doc)
            for key in _BLOB_ROWS:
                if key in doc:
                    doc[key] = [{**row, "blob": row["blob"] + offset} for row in doc[key]]
        docs.append(doc)
        blobs.extend(job.blobs)
    document: dict[str, Any] = {"jobs": docs}
    shared = sorted({thread for job in jobs for thread in job.shared_locks})
    if shared:
        document["shared_locks"] = shared
    claimed = sorted({str(doc["claim_thread"]) for doc in docs if "claim_thread" in doc})
    fenced = sorted({job.lease.run_id for job in jobs if job.lease is not None})
    if len(claimed) + len(fenced) > 1:  # one row is locked by its own job
        document["claimed"], document["fenced"] = claimed, fenced
    return dumps(document), blobs


def refusal(outcome: dict[str, Any], job: EncodedJob) -> Exception | None:
    """The error a job's outcome stands for; None when it was applied."""
    if outcome.get("ok"):
        return None
    detail = str(outcome.get("detail", ""))
    refused = outcome.get("refused")
    if refused == "lease_lost" and job.lease is not None:
        return LeaseLost(job.lease)
    if refused == "thread_busy":
        return ThreadBusy(detail)
    if refused == "thread_changed":
        return ThreadChanged(detail)
    if refused == "missing_blobs":
        return StoreError(detail)
    # Class 53 (disk full, out of memory or connections) passes: try again.
    code = str(outcome.get("error", ""))
    return (StoreUnavailable if code.startswith("53") else StoreError)(f"postgres: {detail}")
