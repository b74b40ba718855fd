"""Identity, TLS and namespaces end to end (DESIGN.md section 8.1-8.3): real
`cairn serve` processes with certificates made by trustme and HS256 JWTs
minted with PyJWT, real worker processes (tests/e2e/namespaced_app.py), and
every client surface an operator or a program uses: grpcurl, `cairn health`,
the inspection commands, Client, SyncClient and CairnSaver.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pathlib
import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import jwt
import pytest
import trustme
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2

from cairn import (
    Client,
    NotFoundError,
    PermissionDeniedError,
    RunState,
    SyncClient,
    TlsConfig,
    UnauthenticatedError,
    UnavailableError,
)
from tests.e2e.processes import (
    BIN,
    Process,
    free_port,
    serve,
    serve_on,
    start_namespaced_worker,
    stopping,
)

CAIRN = BIN / "cairn"
GRPCURL = BIN / "grpcurl"
SERVICES = ("cairn.v1.RunService", "cairn.v1.ThreadService", "cairn.v1.WorkerService")


# --- certificates, tokens and commands ----------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A CA, the server certificate it signed for 127.0.0.1 and localhost,
    and client certificates on demand, all as PEM files in `directory`."""

    directory: pathlib.Path
    authority: trustme.CA

    @classmethod
    def create(cls, directory: pathlib.Path) -> Pki:
        pki = cls(directory, trustme.CA(organization_name="Cairn tests"))
        pki.authority.cert_pem.write_to_path(str(pki.ca))
        server = pki.authority.issue_cert(
            "127.0.0.1", "localhost", common_name="cairn-server", organization_name="Cairn",
            organization_unit_name="replicas",
        )  # fmt: skip
        _write_leaf(server, pki.cert, pki.key)
        return pki

    @property
    def ca(self) -> pathlib.Path:
        return self.directory / "ca.pem"

    @property
    def cert(self) -> pathlib.Path:
        return self.directory / "server.pem"

    @property
    def key(self) -> pathlib.Path:
        return self.directory / "server.key"

    def tls_options(self) -> list[str]:
        """`cairn serve`'s TLS flags for the server certificate."""
        return ["--tls-cert", str(self.cert), "--tls-key", str(self.key)]

    def client(self, name: str) -> tuple[pathlib.Path, pathlib.Path]:
        """A client certificate with subject `CN=<name>,OU=clients,O=Cairn`;
        returns its certificate and key files."""
        return issue_client(self.authority, self.directory, name)


def issue_client(
    authority: trustme.CA, directory: pathlib.Path, name: str
) -> tuple[pathlib.Path, pathlib.Path]:
    leaf = authority.issue_cert(
        f"{name}.example", common_name=name, organization_name="Cairn",
        organization_unit_name="clients",
    )  # fmt: skip
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _write_leaf(leaf, cert, key)
    return cert, key


def client_subject(name: str) -> str:
    return f"CN={name},OU=clients,O=Cairn"


def _write_leaf(leaf: trustme.LeafCert, cert: pathlib.Path, key: pathlib.Path) -> None:
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))


@dataclass(frozen=True)
class Tokens:
    """An HS256 secret in a file (`--jwt-secret-file`) and the JWTs it signs."""

    secret_file: pathlib.Path

    @classmethod
    def create(cls, directory: pathlib.Path, name: str = "jwt.secret") -> Tokens:
        path = directory / name
        path.write_text(secrets.token_urlsafe(48) + "\n")
        return cls(path)

    def mint(self, subject: str, *grants: str, lifetime: float = 3600) -> str:
        claims = {
            "sub": subject,
            "exp": int(time.time() + lifetime),
            "permissions": list(grants),
        }
        return jwt.encode(claims, self.secret_file.read_text().strip(), algorithm="HS256")

    def file(self, subject: str, *grants: str) -> pathlib.Path:
        """A token in a file of its own (for --token-file, --relay-credential-file)."""
        path = self.secret_file.with_name(f"{subject}.jwt")
        path.write_text(self.mint(subject, *grants))
        return path

    def options(self) -> list[str]:
        return ["--jwt-secret-file", str(self.secret_file)]


def run(
    *command: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A command's exit code, stdout and stderr (it may fail)."""
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def grpcurl(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    # A handshake that cannot succeed ends grpcurl's dial at -connect-timeout.
    return run(GRPCURL, "-connect-timeout", "1", "-max-time", "10", *args)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must fail; its stderr and stdout."""
    assert done.returncode != 0, f"{done.args} succeeded:\n{done.stdout}"
    return done.stderr + done.stdout


def health_protoset() -> bytes:
    """grpc.health.v1's descriptor as a FileDescriptorSet, for `grpcurl -protoset`."""
    files = descriptor_pb2.FileDescriptorSet()
    health_pb2.DESCRIPTOR.CopyToProto(files.file.add())
    return files.SerializeToString()


def worker_log(log: pathlib.Path) -> list[list[str]]:
    """`[label, name, namespace, thread id, run id]` per execution."""
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


# --- a secured server (TLS + JWT + API keys) with a worker in two namespaces ---------------


@dataclass
class Secured:
    """The `secured` fixture: the server, its worker processes and their logs
    (by namespace), and the API key `cairn keys create` printed."""

    address: str
    server: Process
    pki: Pki
    tokens: Tokens
    keys_output: str
    api_key: str
    access_file: pathlib.Path
    logs: dict[str, pathlib.Path]
    workers: dict[str, Process]

    @property
    def tls(self) -> TlsConfig:
        return TlsConfig(ca_file=self.pki.ca)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """`cairn serve` with TLS, JWTs and an access file holding one API key
    from `cairn keys create`; a worker in team-a (label A) and one in the
    default namespace (label D), each with a JWT and the CA."""
    tmp = tmp_path_factory.mktemp("secure")
    pki, tokens = Pki.create(tmp), Tokens.create(tmp)
    created = run(CAIRN, "keys", "create", "--name", "ci", "--grant", "default:writer")
    keys_output = ok(created)
    [api_key] = [word for word in keys_output.split() if word.startswith("cairn_")]
    entry = json.loads(keys_output[keys_output.index("{") :])
    access_file = tmp / "access.json"
    access_file.write_text(json.dumps({"api_keys": [entry]}))

    port = free_port()
    address = f"127.0.0.1:{port}"
    options = [*pki.tls_options(), *tokens.options(), "--access-file", str(access_file)]
    server = serve(f"sqlite:///{tmp / 'cairn.db'}", port, *options)
    logs = {"team-a": tmp / "team-a.log", "default": tmp / "default.log"}
    workers: dict[str, Process] = {}
    with stopping(server):
        a_token = tokens.file("worker-a", "team-a:worker")
        workers["team-a"] = start_namespaced_worker(
            address, logs["team-a"], "A",
            "--namespace", "team-a", "--token-file", str(a_token), "--ca", str(pki.ca),
        )  # fmt: skip
        with stopping(workers["team-a"]):
            d_token = tokens.file("worker-d", "default:worker")
            workers["default"] = start_namespaced_worker(
                address, logs["default"], "D", "--token-file", str(d_token), "--ca", str(pki.ca)
            )
            with stopping(workers["default"]):
                yield Secured(
                    address, server, pki, tokens, keys_output, api_key, access_file, logs, workers
                )


# --- 1. an exposed address needs TLS and identity, or --insecure ----------------------------


def test_a_non_loopback_address_needs_tls_and_identity_or_insecure(
    tmp_path: pathlib.Path,
) -> None:
    pki, tokens = Pki.create(tmp_path), Tokens.create(tmp_path)
    port = free_port()
    address = f"0.0.0.0:{port}"
    db = tmp_path / "cairn.db"
    store = f"sqlite:///{db}"

    bare = run(CAIRN, "serve", "--address", address, "--store", store)
    assert bare.returncode == 1
    assert bare.stdout == ""
    [line] = bare.stderr.splitlines()
    assert line.startswith(f"cairn serve: refusing to serve {address}, which is not a loopback")
    assert "without TLS and without caller identity" in line
    assert "--insecure" in line
    assert not db.exists()  # refused before opening the store

    tls_only = run(CAIRN, "serve", "--address", address, "--store", store, *pki.tls_options())
    assert tls_only.returncode == 1
    [line] = tls_only.stderr.splitlines()
    assert line.startswith("cairn serve: refusing") and "without caller identity" in line

    protected = serve_on(address, store, *pki.tls_options(), *tokens.options())
    with stopping(protected):
        health = run(CAIRN, "health", "--address", f"127.0.0.1:{port}", "--tls-ca", pki.ca)
        assert ok(health).strip() == "SERVING"
    assert protected.stop() == 0

    insecure = serve_on(address, store, "--insecure")
    with stopping(insecure):
        assert ok(run(CAIRN, "health", "--address", f"127.0.0.1:{port}")).strip() == "SERVING"
    assert insecure.stop() == 0


# --- 2. TLS: plaintext refused; grpcurl and health over TLS -------------------------------


async def test_a_tls_server_refuses_plaintext_clients(secured: Secured) -> None:
    token = secured.tokens.mint("alice", "team-a:writer")
    assert "Failed to dial" in refused(grpcurl("-plaintext", secured.address, "list"))
    health = run(CAIRN, "health", "--address", secured.address, "--timeout", "1")
    assert "unhealthy: UNAVAILABLE" in refused(health)
    async with Client(
        secured.address, token=token, namespace="team-a", tls=False, failover_timeout=0.5
    ) as client:
        with pytest.raises(UnavailableError):
            await client.list_threads()

    # A TLS client that does not trust the server's CA is refused as well.
    ca_file = secured.pki.directory / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    async with Client(
        secured.address, token=token, tls=TlsConfig(ca_file=ca_file), failover_timeout=0.5
    ) as client:
        with pytest.raises(UnavailableError):
            await client.list_threads()
    assert "Failed to dial" in refused(grpcurl("-cacert", ca_file, secured.address, "list"))


def test_grpcurl_over_tls_follows_the_api_rules(secured: Secured) -> None:
    ca, address = secured.pki.ca, secured.address
    token = secured.tokens.mint("operator", "team-a:reader")
    bearer = f"authorization: Bearer {token}"

    # Reflection needs a credential, as the API does.
    anonymous = refused(grpcurl("-cacert", ca, address, "list"))
    assert "code = Unauthenticated" in anonymous and "no credential" in anonymous
    services = ok(grpcurl("-cacert", ca, "-H", bearer, address, "list")).split()
    assert set(SERVICES) <= set(services)
    assert "grpc.health.v1.Health" in services

    listed = grpcurl(
        "-cacert", ca, "-H", bearer, "-H", "cairn-namespace: team-a", "-d", "{}",
        address, "cairn.v1.ThreadService/ListThreads",
    )  # fmt: skip
    assert isinstance(json.loads(ok(listed)), dict)
    # The token holds no grant in the default namespace: it learns nothing there.
    elsewhere = grpcurl(
        "-cacert", ca, "-H", bearer, "-d", "{}", address, "cairn.v1.ThreadService/ListThreads"
    )
    assert "Code: NotFound" in refused(elsewhere)
    assert "NAMESPACE_NOT_FOUND" in refused(elsewhere)
    # Without a token grpcurl cannot even look the method up (reflection refuses).
    anonymous_call = grpcurl(
        "-cacert", ca, "-d", "{}", address, "cairn.v1.ThreadService/ListThreads"
    )
    assert "code = Unauthenticated" in refused(anonymous_call)

    # Health stays open for probes, over TLS and without a token. grpcurl
    # then needs the health proto (a protoset), as reflection is closed.
    assert ok(run(CAIRN, "health", "--address", address, "--tls-ca", ca)).strip() == "SERVING"
    protoset = secured.pki.directory / "health.protoset"
    protoset.write_bytes(health_protoset())
    checked = grpcurl("-cacert", ca, "-protoset", protoset, address, "grpc.health.v1.Health/Check")
    assert json.loads(ok(checked)) == {"status": "SERVING"}
    assert "Failed to dial" in refused(
        grpcurl("-plaintext", address, "grpc.health.v1.Health/Check")
    )


# --- 3. mTLS: a client certificate is required, and can be the only credential ------------


async def test_mtls_requires_a_client_certificate_that_can_stand_for_a_token(
    tmp_path: pathlib.Path,
) -> None:
    pki = Pki.create(tmp_path)
    worker_cert, worker_key = pki.client("worker-1")
    app_cert, app_key = pki.client("app-1")
    stranger_cert, stranger_key = pki.client("stranger")  # signed by the CA, not in the file
    outsider_cert, outsider_key = issue_client(trustme.CA(), tmp_path, "outsider")
    access = tmp_path / "access.json"
    access.write_text(
        json.dumps(
            {
                "certificates": [
                    {"subject": client_subject("worker-1"), "grants": ["default:worker"]},
                    {"subject": client_subject("app-1"), "grants": ["default:writer"]},
                ]
            }
        )
    )
    port = free_port()
    address = f"127.0.0.1:{port}"
    options = [*pki.tls_options(), "--tls-client-ca", str(pki.ca), "--access-file", str(access)]
    server = serve(f"sqlite:///{tmp_path / 'cairn.db'}", port, *options)
    log = tmp_path / "worker.log"
    with stopping(server):
        # Without a certificate (or with one of another CA) the handshake fails.
        assert "Failed to dial" in refused(grpcurl("-cacert", pki.ca, address, "list"))
        foreign = grpcurl(
            "-cacert", pki.ca, "-cert", outsider_cert, "-key", outsider_key, address, "list"
        )
        assert "Failed to dial" in refused(foreign)
        for tls in (
            TlsConfig(ca_file=pki.ca),
            TlsConfig(ca_file=pki.ca, cert_file=outsider_cert, key_file=outsider_key),
        ):
            async with Client(address, tls=tls, failover_timeout=0.5) as client:
                with pytest.raises(UnavailableError) as closed:
                    await client.list_threads()
            # The server closes the connection with no reason given: a client
            # without a certificate is told what may be missing.
            hinted = "requires client certificates" in closed.value.message
            assert hinted is (tls.cert_file is None)
        from cairn.langgraph import CairnSaver

        saver = CairnSaver(address, tls=TlsConfig(ca_file=pki.ca), failover_timeout=0.5)
        with pytest.raises(UnavailableError, match="requires client certificates"):
            saver.get_tuple({"configurable": {"thread_id": "t"}})

        # Signed by the CA but unknown to the access file: connected, not admitted.
        stranger = TlsConfig(ca_file=pki.ca, cert_file=stranger_cert, key_file=stranger_key)
        async with Client(address, tls=stranger) as client:
            with pytest.raises(UnauthenticatedError) as unknown:
                await client.list_threads()
        assert client_subject("stranger").split(",")[0] in str(unknown.value)

        # The certificate is the whole credential: a worker and a client without tokens.
        worker = start_namespaced_worker(
            address, log, "M",
            "--ca", str(pki.ca), "--cert", str(worker_cert), "--key", str(worker_key),
        )  # fmt: skip
        with stopping(worker):
            app = TlsConfig(ca_file=pki.ca, cert_file=app_cert, key_file=app_key)
            async with Client(address, tls=app) as client:
                done = await client.invoke("hello", "ada", thread_id="mtls", durability="sync")
                assert done.state is RunState.SUCCEEDED
                assert done.output == {"greeting": "M greets ada", "by": "M"}
                [thread] = await client.list_threads()
                assert thread.thread_id == "mtls"
            # A certificate's grants are its role: the worker's may not start runs.
            as_worker = TlsConfig(ca_file=pki.ca, cert_file=worker_cert, key_file=worker_key)
            async with Client(address, tls=as_worker) as client:
                with pytest.raises(PermissionDeniedError):
                    await client.invoke("hello", "eve", thread_id="mtls-2")
            listed = grpcurl("-cacert", pki.ca, "-cert", app_cert, "-key", app_key, address, "list")
            assert set(SERVICES) <= set(ok(listed).split())

        # Health needs no credential, but under mTLS the handshake needs a certificate.
        health = [CAIRN, "health", "--address", address, "--timeout", "1", "--tls-ca", pki.ca]
        assert ok(run(*health, "--tls-cert", app_cert, "--tls-key", app_key)).strip() == "SERVING"
        assert "unhealthy: UNAVAILABLE" in refused(run(*health))
    assert sorted((name, thread) for _, name, _, thread, _ in worker_log(log)) == [
        ("greet", "mtls"),
        ("hello", "mtls"),
    ]


# --- 4. every Python surface reaches a TLS + JWT server -------------------------------------


async def test_clients_invoke_a_worker_over_tls_with_tokens_and_a_namespace(
    secured: Secured,
) -> None:
    token = secured.tokens.mint("alice", "team-a:writer")
    async with Client(secured.address, token=token, namespace="team-a", tls=secured.tls) as client:
        done = await client.invoke("hello", "ada", thread_id="async-1", durability="sync")
        assert done.state is RunState.SUCCEEDED
        assert done.output == {"greeting": "A greets ada", "by": "A"}
        assert (await client.get_run(done.run_id)).output == done.output
        assert [r.run_id for r in await client.list_runs("async-1")] == [done.run_id]
        state = await client.get_state("async-1")
        assert state.values == done.output
        [worker] = await client.list_workers()  # team-a's only, not the default one's
        assert (worker.entrypoints, worker.tasks) == (("hello",), ("greet",))

    def sync_calls() -> tuple[Any, Any]:
        with SyncClient(
            secured.address, token=token, namespace="team-a", tls=secured.tls
        ) as sync_client:
            run = sync_client.invoke("hello", "bob", thread_id="sync-1", durability="sync")
            return run, sync_client.get_state("sync-1")

    run, state = await asyncio.to_thread(sync_calls)
    assert run.output == {"greeting": "A greets bob", "by": "A"}
    assert state.values == run.output

    rows = worker_log(secured.logs["team-a"])
    assert {(name, thread) for _, name, _, thread, _ in rows} >= {
        ("hello", "async-1"), ("greet", "async-1"), ("hello", "sync-1"), ("greet", "sync-1"),
    }  # fmt: skip
    assert {namespace for _, _, namespace, _, _ in rows} == {"team-a"}


class Counted(TypedDict):
    topic: str
    steps: list[str]


def _graph(saver: Any) -> Any:
    pytest.importorskip("langgraph")
    from langgraph.graph import END, START, StateGraph

    def draft(state: Counted) -> dict[str, list[str]]:
        return {"steps": [*state["steps"], f"draft {state['topic']}"]}

    def polish(state: Counted) -> dict[str, list[str]]:
        return {"steps": [*state["steps"], "polish"]}

    builder = StateGraph(Counted)
    builder.add_node("draft", draft).add_node("polish", polish)
    builder.add_edge(START, "draft").add_edge("draft", "polish").add_edge("polish", END)
    return builder.compile(checkpointer=saver)


async def test_cairn_saver_checkpoints_a_graph_over_tls(secured: Secured) -> None:
    pytest.importorskip("langgraph")
    from langchain_core.runnables import RunnableConfig

    from cairn.langgraph import CairnSaver

    token = secured.tokens.mint("graphs", "team-a:writer")
    settings: dict[str, Any] = {"token": token, "namespace": "team-a", "tls": secured.tls}

    def sync_graph() -> tuple[Any, Any]:
        with CairnSaver(secured.address, **settings) as saver:
            config: RunnableConfig = {"configurable": {"thread_id": "lg-sync"}}
            output = _graph(saver).invoke({"topic": "cats", "steps": []}, config)
            return output, saver.get_tuple(config)

    output, saved = await asyncio.to_thread(sync_graph)
    assert output == {"topic": "cats", "steps": ["draft cats", "polish"]}
    assert saved is not None and saved.checkpoint["channel_values"]["steps"] == output["steps"]

    async with CairnSaver(secured.address, **settings) as saver:
        config: RunnableConfig = {"configurable": {"thread_id": "lg-async"}}
        output = await _graph(saver).ainvoke({"topic": "dogs", "steps": []}, config)
        assert output == {"topic": "dogs", "steps": ["draft dogs", "polish"]}
        history = [item async for item in saver.alist(config)]
        assert len(history) == 4  # input, start, draft, polish

    # The checkpoints are team-a's: the Client sees both threads there, and
    # a reader of the default namespace does not.
    async with Client(secured.address, token=token, namespace="team-a", tls=secured.tls) as client:
        state = await client.get_state("lg-async")
        assert state.values == output
        assert {"lg-sync", "lg-async"} <= {t.thread_id for t in await client.list_threads()}
    outsider = secured.tokens.mint("outsider", "default:reader")
    async with Client(secured.address, token=outsider, tls=secured.tls) as client:
        with pytest.raises(NotFoundError):
            await client.get_state("lg-async")


def test_the_cli_reads_a_secured_server_with_flags_and_environment(secured: Secured) -> None:
    token = secured.tokens.mint("cli", "team-a:writer")
    with SyncClient(secured.address, token=token, namespace="team-a", tls=secured.tls) as client:
        done = client.invoke("hello", "cli", thread_id="cli-thread", durability="sync")
    address = ["--address", secured.address]
    flags = [*address, "--namespace", "team-a", "--tls-ca", str(secured.pki.ca), "--token", token]
    env = {
        "CAIRN_TLS_CA": str(secured.pki.ca),
        "CAIRN_TOKEN": token,
        "CAIRN_NAMESPACE": "team-a",
    }
    worker_id = secured.workers["team-a"].wait_for_line("worker ready").split()[2]
    for options, environment in ((flags, None), (address, env)):
        threads = ok(run(CAIRN, "threads", *options, env=environment))
        assert "cli-thread" in threads
        state = ok(run(CAIRN, "state", "cli-thread", *options, env=environment))
        assert "A greets cli" in state
        runs = ok(run(CAIRN, "runs", "cli-thread", *options, env=environment))
        assert done.run_id in runs and "succeeded" in runs
        workers = ok(run(CAIRN, "workers", *options, env=environment))
        assert worker_id in workers
        # Only team-a's workers: the default namespace's worker is not listed.
        assert secured.workers["default"].wait_for_line("worker ready").split()[2] not in workers

    # A token signed with another secret, and an expired one: each command
    # exits 1 with one line saying so, and neither the output nor the
    # server's audit log repeats the token.
    wrong = Tokens.create(secured.pki.directory, "other.secret").mint("cli", "team-a:writer")
    expired = secured.tokens.mint("cli", "team-a:writer", lifetime=-60)
    tls_ca = ["--tls-ca", str(secured.pki.ca)]
    commands = (["threads"], ["state", "cli-thread"], ["runs", "cli-thread"], ["workers"])
    cases = [
        *(([*command, *address, *tls_ca, "--token", wrong], None, "does not verify")
          for command in commands),
        (["threads", *address], {**env, "CAIRN_TOKEN": wrong}, "does not verify"),
        (["runs", "cli-thread", *address], {**env, "CAIRN_TOKEN": expired}, "expired"),
    ]  # fmt: skip
    for arguments, environment, why in cases:
        failed = run(CAIRN, *arguments, env=environment)
        assert failed.returncode == 1
        [line] = (failed.stdout + failed.stderr).strip().splitlines()
        assert line.startswith("UnauthenticatedError: UNAUTHENTICATED: ") and why in line
        assert wrong not in line and expired not in line
    server_log = "\n".join(secured.server.lines)
    assert "denied caller=unauthenticated namespace=team-a" in server_log
    assert wrong not in server_log and expired not in server_log and token not in server_log


# --- 5. API keys ----------------------------------------------------------------------------


async def test_an_api_key_from_cairn_keys_create_invokes(secured: Secured) -> None:
    key = secured.api_key
    assert key.startswith("cairn_") and len(key) == len("cairn_") + 43
    entry = json.loads(secured.keys_output[secured.keys_output.index("{") :])
    assert entry["name"] == "ci" and entry["grants"] == ["default:writer"]
    assert entry["sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in secured.access_file.read_text()

    async with Client(secured.address, api_key=key, tls=secured.tls) as client:
        done = await client.invoke("hello", "key", thread_id="keyed", durability="sync")
        assert done.output == {"greeting": "D greets key", "by": "D"}
    async with Client(secured.address, api_key=key, namespace="team-a", tls=secured.tls) as client:
        with pytest.raises(NotFoundError):  # no grant in team-a: it learns nothing there
            await client.list_threads()
    unknown = "cairn_" + secrets.token_urlsafe(32)
    async with Client(secured.address, api_key=unknown, tls=secured.tls) as client:
        with pytest.raises(UnauthenticatedError):
            await client.list_threads()
    rows = worker_log(secured.logs["default"])
    assert {(name, thread) for _, name, _, thread, _ in rows} == {
        ("hello", "keyed"), ("greet", "keyed"),
    }  # fmt: skip
    assert {namespace for _, _, namespace, _, _ in rows} == {"default"}
