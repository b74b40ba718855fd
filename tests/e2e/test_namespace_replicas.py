"""Namespaces across replicas (DESIGN.md sections 7 and 8.2): `cairn serve`
replicas on one Postgres schema, secured with TLS and JWTs, relaying tasks to
each other with a replica credential (`*:replica`).

Two worker processes (tests/e2e/namespaced_app.py) serve the same names,
`hello` and `greet`, with different outputs: A in team-a, connected to one
replica, B in team-b, connected to the other. Clients start their runs, with
the same thread ids in both namespaces, on the replica that does not have
their namespace's worker, so every task crosses a relay; each must reach its
own namespace's worker and no other. With mTLS the replicas also present
their certificates to each other on those relay streams.

A replica started without a relay credential is refused by the others, so
its workers serve none of their runs.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cairn import (
    Client,
    Run,
    RunNotFoundError,
    RunState,
    ThreadNotFoundError,
    TlsConfig,
    WaitReason,
)
from tests import postgres
from tests.e2e.processes import Process, free_port, serve, start_namespaced_worker, stopping
from tests.e2e.test_replicas import server_errors
from tests.e2e.test_secure import Pki, Tokens, worker_log

THREADS = [f"t{i}" for i in range(4)]
DENIED_RELAY = (
    "denied caller=unauthenticated namespace=default method=cairn.v1.WorkerService/Connect"
)


@pytest.fixture
def store_url() -> Iterator[str]:
    with postgres.fresh_schema() as url:
        yield url


@dataclass
class Deployment:
    """The certificates and tokens of one secured deployment; with `mtls`
    its replicas require client certificates too (of every caller, and of
    each other on their relay streams)."""

    directory: pathlib.Path
    pki: Pki
    tokens: Tokens
    store_url: str
    mtls: bool = False

    def replica(self, replica_id: str, *, relay_credential: bool = True) -> tuple[str, Process]:
        """A replica with TLS (trusting the deployment's CA for its relays)
        and JWTs; with the `*:replica` relay credential unless told not."""
        port = free_port()
        options = [
            "--replica-id", replica_id, "--lease-ttl", "5", "--shutdown-grace", "5",
            *self.pki.tls_options(), "--tls-ca", str(self.pki.ca), *self.tokens.options(),
        ]  # fmt: skip
        if self.mtls:
            options += ["--tls-client-ca", str(self.pki.ca)]
        if relay_credential:
            relay = self.tokens.file("replicas", "*:replica")
            options += ["--relay-credential-file", str(relay)]
        return f"127.0.0.1:{port}", serve(self.store_url, port, *options)

    def worker(self, address: str, label: str, namespace: str) -> tuple[pathlib.Path, Process]:
        """A worker process in `namespace` with a `<namespace>:worker` token."""
        log = self.directory / f"{label}.log"
        token = self.tokens.file(f"worker-{label}", f"{namespace}:worker")
        tls = ["--ca", str(self.pki.ca)]
        if self.mtls:
            cert, key = self.pki.client(f"worker-{label}")
            tls += ["--cert", str(cert), "--key", str(key)]
        process = start_namespaced_worker(
            address, log, label, "--namespace", namespace, "--token-file", str(token), *tls
        )
        return log, process

    def client(self, address: str, namespace: str, *grants: str) -> Client:
        """A client acting in `namespace` with `grants` (default: its writer role)."""
        token = self.tokens.mint(f"app-{namespace}", *(grants or (f"{namespace}:writer",)))
        tls = TlsConfig(ca_file=self.pki.ca)
        if self.mtls:
            cert, key = self.pki.client(f"app-{namespace}")
            tls = TlsConfig(ca_file=self.pki.ca, cert_file=cert, key_file=key)
        return Client(address, token=token, namespace=namespace, tls=tls)


@pytest.fixture
def deployment(store_url: str, tmp_path: pathlib.Path) -> Deployment:
    return Deployment(tmp_path, Pki.create(tmp_path), Tokens.create(tmp_path), store_url)


def by_label(runs: list[Run], label: str, names: list[str]) -> None:
    for run, name in zip(runs, names, strict=True):
        assert run.state is RunState.SUCCEEDED
        assert run.output == {"greeting": f"{label} greets {name}", "by": label}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("transport", ["tls", "mtls"])
async def test_same_names_and_thread_ids_in_two_namespaces_stay_apart_across_relays(
    deployment: Deployment, transport: str
) -> None:
    deployment.mtls = transport == "mtls"
    (r0, replica0), (r1, replica1) = deployment.replica("r0"), deployment.replica("r1")
    log_a, worker_a = deployment.worker(r0, "A", "team-a")  # team-a's worker: r0 only
    log_b, worker_b = deployment.worker(r1, "B", "team-b")  # team-b's worker: r1 only
    replicas = [replica0, replica1]
    with stopping(worker_a, worker_b, *replicas):
        # Each namespace's runs start on the replica without its worker.
        async with (
            deployment.client(r1, "team-a") as team_a,
            deployment.client(r0, "team-b") as team_b,
        ):
            jobs = [
                *(
                    team_a.invoke("hello", f"a-{t}", thread_id=t, durability="sync")
                    for t in THREADS
                ),
                *(
                    team_b.invoke("hello", f"b-{t}", thread_id=t, durability="sync")
                    for t in THREADS
                ),
            ]
            try:
                done = await asyncio.wait_for(asyncio.gather(*jobs), 60)
            except Exception as exc:
                raise AssertionError(server_errors(replicas)) from exc
            runs_a, runs_b = done[: len(THREADS)], done[len(THREADS) :]
            by_label(runs_a, "A", [f"a-{t}" for t in THREADS])
            by_label(runs_b, "B", [f"b-{t}" for t in THREADS])
            owners = dict(postgres.query(deployment.store_url, "SELECT run_id, owner_id FROM runs"))

            # Same thread ids, separate threads: each namespace sees its own.
            for t, run_a, run_b in zip(THREADS, runs_a, runs_b, strict=True):
                assert (await team_a.get_state(t)).values == run_a.output
                assert (await team_b.get_state(t)).values == run_b.output
                assert [r.run_id for r in await team_a.list_runs(t)] == [run_a.run_id]
                assert [r.run_id for r in await team_b.list_runs(t)] == [run_b.run_id]
                # A run of the other namespace does not exist for a caller here.
                with pytest.raises(RunNotFoundError):
                    await team_a.get_run(run_b.run_id)
                with pytest.raises(RunNotFoundError):
                    await team_b.get_run(run_a.run_id)
                with pytest.raises(RunNotFoundError):
                    await team_a.cancel_run(run_b.run_id)
                with pytest.raises(RunNotFoundError):
                    [event async for event in team_b.join(run_a.run_id)]

            # Deleting team-a's thread t0 leaves team-b's t0 as it was.
            await team_a.delete_thread(THREADS[0])
            with pytest.raises(ThreadNotFoundError):
                await team_a.get_state(THREADS[0])
            assert (await team_b.get_state(THREADS[0])).values == runs_b[0].output

        # Not even for a caller with grants in both: a run belongs to one namespace.
        async with deployment.client(r0, "team-a", "team-a:reader", "team-b:reader") as both:
            assert (await both.get_run(runs_a[1].run_id)).output == runs_a[1].output
            with pytest.raises(RunNotFoundError):
                await both.get_run(runs_b[1].run_id)

    # The runs were driven where their namespace had no worker: every task
    # reached its worker through a relay, in both directions.
    assert {owners[run.run_id] for run in runs_a} == {"r1"}
    assert {owners[run.run_id] for run in runs_b} == {"r0"}
    assert "relaying tasks of replica r1" in "\n".join(replica0.lines)
    assert "relaying tasks of replica r0" in "\n".join(replica1.lines)

    # Each worker ran its own namespace's runs, each task once, and nothing else.
    for log, label, namespace, runs in (
        (log_a, "A", "team-a", runs_a),
        (log_b, "B", "team-b", runs_b),
    ):
        rows = worker_log(log)
        assert {row[0] for row in rows} == {label}
        assert {row[2] for row in rows} == {namespace}
        assert {row[4] for row in rows} == {run.run_id for run in runs}
        executions = sorted((name, thread) for _, name, _, thread, _ in rows)
        assert executions == sorted((n, t) for t in THREADS for n in ("hello", "greet"))


@pytest.mark.timeout(90)
async def test_a_replica_without_a_relay_credential_cannot_relay(
    deployment: Deployment,
) -> None:
    (r0, replica0) = deployment.replica("r0")
    (r2, replica2) = deployment.replica("r2", relay_credential=False)
    log_a, worker_a = deployment.worker(r0, "A", "team-a")  # the same names, in team-a, on r0
    log_b, worker_b = deployment.worker(r2, "B", "team-b")  # team-b's worker: r2 only
    with stopping(worker_a, worker_b, replica0, replica2):
        async with deployment.client(r0, "team-b") as team_b:
            events = team_b.stream("hello", "b", thread_id="t0", durability="sync")
            run_id = ""
            async for event in events:
                if event.run is None:
                    continue
                run_id = event.run.run_id
                reasons = {(w.reason, w.task_name) for w in event.run.waiting}
                if (WaitReason.NO_WORKER, "hello") in reasons:
                    break  # published once the wait has lasted a moment
            # r2's relay streams reach r0 without a credential and are refused ...
            await asyncio.to_thread(replica0.wait_for_line, DENIED_RELAY)
            # ... so the run still waits: team-a's worker on r0 serves the same
            # names but is of another namespace, and r2's worker is out of reach.
            waiting = await team_b.get_run(run_id)
            assert waiting.state in (RunState.PENDING, RunState.RUNNING)
            assert [(w.reason, w.task_name) for w in waiting.waiting] == [
                (WaitReason.NO_WORKER, "hello")
            ]

            # A worker of team-b that may reach r0 (here: connected to it) runs it.
            log_proper, proper = deployment.worker(r0, "B2", "team-b")
            with stopping(proper):
                final = None
                async for event in events:
                    if event.run is not None:
                        final = event.run
        assert final is not None, server_errors([replica0, replica2])
        assert final.state is RunState.SUCCEEDED
        assert final.output == {"greeting": "B2 greets b", "by": "B2"}

    assert worker_log(log_a) == [] and worker_log(log_b) == []
    assert sorted(row[1] for row in worker_log(log_proper)) == ["greet", "hello"]
    assert "relaying tasks of replica r0" not in "\n".join(replica2.lines)
