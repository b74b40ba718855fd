"""Wiring: `create_server(config)` builds the gRPC server that tests, the CLI
and the Dockerfile share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cairn._credentials import ConnectionSettings, TlsConfig
from cairn.v1 import (
    checkpoint_service_pb2,
    checkpoint_service_pb2_grpc,
    graph_service_pb2,
    graph_service_pb2_grpc,
    run_service_pb2,
    run_service_pb2_grpc,
    schedule_service_pb2,
    schedule_service_pb2_grpc,
    store_service_pb2,
    store_service_pb2_grpc,
    thread_service_pb2,
    thread_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)
from cairn_server.api.checkpoints import CheckpointServicer
from cairn_server.api.decoding import DecodingInterceptor
from cairn_server.api.graph_service import GraphServicer
from cairn_server.api.message_sizes import max_message_bytes
from cairn_server.api.relay import PeerAccess, Relays
from cairn_server.api.runs import RunServicer
from cairn_server.api.schedule_service import ScheduleServicer
from cairn_server.api.store_service import StoreServicer
from cairn_server.api.threads import ThreadServicer
from cairn_server.api.workers import WorkerServicer
from cairn_server.auth import (
    AuthConfig,
    Authenticator,
    AuthInterceptor,
    exposure_error,
    namespace_rate_limiter,
    rate_limiter,
    relay_channel_credentials,
    server_credentials,
    validate,
)
from cairn_server.memory import open_memory
from cairn_server.memory.sweeper import MemorySweeper
from cairn_server.metrics import Metrics, MetricsServer
from cairn_server.metrics.interceptor import MetricsInterceptor
from cairn_server.runtime.manager import RunManager
from cairn_server.runtime.replica import DEFAULT_LEASE_TTL
from cairn_server.schedules import SchedulePoller, open_schedules
from cairn_server.store import Store, open_store
from cairn_server.store.retention import ThreadTtlSweeper
from cairn_server.studio import Studio, StudioConfig, open_studio

log = logging.getLogger(__name__)

MAX_CONNECTION_IDLE_MS = 10 * 60 * 1000
"""A client connection without any call open for 10 minutes is closed (the
client reconnects on its next call): idle sockets of clients that went away
are not kept for ever."""

MAX_CONCURRENT_STREAMS = 1000
"""Calls open at once on one connection. An SDK opens one per call in flight
(a worker one Connect stream, a client one per Stream/Invoke it waits on), so
normal use stays far below; one connection cannot hold the server's memory."""

SERVICE_NAMES = (
    thread_service_pb2.DESCRIPTOR.services_by_name["ThreadService"].full_name,
    run_service_pb2.DESCRIPTOR.services_by_name["RunService"].full_name,
    worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
    checkpoint_service_pb2.DESCRIPTOR.services_by_name["CheckpointService"].full_name,
    graph_service_pb2.DESCRIPTOR.services_by_name["GraphService"].full_name,
    store_service_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name,
    schedule_service_pb2.DESCRIPTOR.services_by_name["ScheduleService"].full_name,
)


@dataclass(slots=True)
class ServerConfig:
    address: str = "127.0.0.1:50051"
    store_url: str = "sqlite:///cairn.db"
    max_payload_bytes: int = 4 * 1024 * 1024
    thread_ttl: float | None = None
    """Delete threads not updated for this many seconds (None: keep them)."""
    replica_id: str = ""
    """This replica's name in the store ('': a new id per start)."""
    lease_ttl: float = DEFAULT_LEASE_TTL
    """Seconds after which another replica takes over a silent replica's runs."""
    shutdown_grace: float = 10.0
    """On SIGTERM: seconds tasks in flight may take before the runs move."""
    advertise_address: str = ""
    """host:port other replicas reach this one at ('': the listening address)."""
    auth: AuthConfig = field(default_factory=AuthConfig)
    """TLS, caller identity and per-caller limits (DESIGN.md 8.1-8.3); the
    default is an open server, which only a loopback address may be."""
    metrics_address: str = ""
    """host:port serving Prometheus metrics at /metrics ('': none, and RPCs
    are not counted)."""
    ui_address: str = ""
    """host:port serving Cairn Studio ('': none). It calls this server's API
    like any client, as the signed-in browser user."""
    timer_clock: Callable[[], float] = time.time
    """The clock of durable time: due times of sleeps, interrupt timeouts and
    schedules (cairn_server/timers/clock.py). Tests inject their own."""
    schedule_poll_interval: float = 1.0
    """Seconds between two looks for due schedules at most (a look also
    happens at the soonest due time, and when a schedule is created or
    resumed here)."""


class CairnServer:
    """The gRPC server with its store and run manager."""

    def __init__(
        self,
        server: grpc.aio.Server,
        store: Store,
        runs: RunManager,
        health: health.aio.HealthServicer,
        relays: Relays,
        sweeper: ThreadTtlSweeper | None = None,
        *,
        memory_sweeper: MemorySweeper | None = None,
        schedule_poller: SchedulePoller | None = None,
        metrics: Metrics | None = None,
        metrics_server: MetricsServer | None = None,
        metrics_port: int = 0,
        studio: Studio | None = None,
        studio_port: int = 0,
    ) -> None:
        self.grpc = server
        self.metrics = metrics if metrics is not None else runs.metrics
        self.metrics_server = metrics_server
        self.metrics_port = metrics_port
        """The port /metrics is served on (0: not served)."""
        self.studio = studio
        self.studio_port = studio_port
        """The port Cairn Studio is served on (0: not served)."""
        self.health = health
        self.store = store
        self.runs = runs
        self.relays = relays
        self.sweeper = sweeper
        self.schedule_poller = schedule_poller
        # Background loops: sweeps of expired threads (when a TTL is set) and
        # memories, and the schedules' firings.
        self._sweeping = [
            asyncio.create_task(each.run())
            for each in (sweeper, memory_sweeper, schedule_poller)
            if each is not None
        ]

    async def stop(self, grace: float = 5.0) -> None:
        """Graceful shutdown: report NOT_SERVING and take no new run; give
        tasks in flight up to `grace` seconds to finish while workers can
        still report; then stop, releasing every run to the other replicas."""
        for sweeping in self._sweeping:
            sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping
        await self.health.enter_graceful_shutdown()
        if self.studio is not None:
            await self.studio.stop()
        await self.runs.drain(grace)
        await self.relays.close()
        await self.runs.close()
        # What is left are workers' streams and clients waiting on runs that
        # moved: they reconnect to another replica, so they get a moment only.
        await self.grpc.stop(min(grace, 1.0))
        await self.store.close()
        if self.metrics_server is not None:
            await self.metrics_server.stop()

    async def wait_for_termination(self) -> None:
        await self.grpc.wait_for_termination()


def server_options(max_payload_bytes: int) -> list[tuple[str, int]]:
    """The gRPC server's channel options (bench/floor.py measures with them)."""
    max_message = max_message_bytes(max_payload_bytes)
    return [
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_send_message_length", max_message),
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # A second server on a bound address fails to bind rather than
        # sharing it (and silently forming two replicas on one store).
        ("grpc.so_reuseport", 0),
        # A connection with no call open for this long is closed; an open
        # call (a worker's Connect stream, a followed run) is not idle.
        ("grpc.max_connection_idle_ms", MAX_CONNECTION_IDLE_MS),
        ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
    ]


async def create_server(config: ServerConfig) -> tuple[CairnServer, int]:
    """Open the store, recover active runs and start serving; returns the
    server and the bound port (useful with port 0)."""
    if config.thread_ttl is not None and not config.thread_ttl > 0:
        raise ValueError(f"thread_ttl must be positive, got {config.thread_ttl}")
    auth = config.auth
    validate(auth)
    for address in (config.address, config.ui_address):
        exposed = exposure_error(address, auth) if address else None
        if exposed is not None:
            raise ValueError(exposed)
    authenticator = Authenticator.from_config(auth)
    metrics = Metrics()
    store = open_store(config.store_url, metrics=metrics)
    await store.open()
    runs = RunManager(
        store,
        replica_id=config.replica_id,
        lease_ttl=config.lease_ttl,
        metrics=metrics,
        timer_clock=config.timer_clock,
    )
    relays = Relays(
        runs.dispatcher,
        store,
        replica_id=runs.replica_id,
        every=config.lease_ttl / 5,
        clock=runs.clock,
        peers=PeerAccess(relay_channel_credentials(auth), auth.relay_credential or ""),
    )
    limiters = {
        "rate_limiter": rate_limiter(auth, clock=runs.clock),
        "namespace_limiter": namespace_rate_limiter(auth, clock=runs.clock),
    }
    limit = config.max_payload_bytes
    server = grpc.aio.server(
        # Authentication and roles first: a caller who may not call a method
        # learns nothing about its requests.
        # Metrics outermost: a call refused by auth is counted with its code.
        interceptors=[
            *([MetricsInterceptor(metrics)] if config.metrics_address else []),
            AuthInterceptor(authenticator, **limiters),
            DecodingInterceptor(),
        ],
        options=server_options(limit),
    )
    thread_service_pb2_grpc.add_ThreadServiceServicer_to_server(
        ThreadServicer(runs, max_payload_bytes=limit), server
    )
    run_service_pb2_grpc.add_RunServiceServicer_to_server(
        RunServicer(
            runs, max_payload_bytes=limit, max_runs_per_namespace=auth.max_runs_per_namespace
        ),
        server,
    )
    worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(
        WorkerServicer(
            runs,
            relays,
            max_payload_bytes=limit,
            max_workers_per_namespace=auth.max_workers_per_namespace,
        ),
        server,
    )
    checkpoint_service_pb2_grpc.add_CheckpointServiceServicer_to_server(
        CheckpointServicer(runs, max_payload_bytes=limit), server
    )
    graph_service_pb2_grpc.add_GraphServiceServicer_to_server(GraphServicer(runs), server)
    memory = open_memory(store)
    store_service_pb2_grpc.add_StoreServiceServicer_to_server(
        StoreServicer(memory, max_payload_bytes=limit, clock=runs.clock), server
    )
    schedules = open_schedules(store)
    schedule_poller = SchedulePoller(
        schedules,
        runs,
        clock=config.timer_clock,
        poll_interval=config.schedule_poll_interval,
        max_runs_per_namespace=auth.max_runs_per_namespace,
    )
    schedule_service_pb2_grpc.add_ScheduleServiceServicer_to_server(
        ScheduleServicer(schedules, schedule_poller, max_payload_bytes=limit), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            *SERVICE_NAMES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    credentials = server_credentials(auth)
    try:
        if credentials is None:
            port = server.add_insecure_port(config.address)
        else:
            port = server.add_secure_port(config.address, credentials)
    except RuntimeError:  # grpc reports a failed bind as RuntimeError
        port = 0
    if port == 0:
        await store.close()
        raise OSError(
            f"cannot listen on {config.address}: the address is in use (another cairn serve?)"
            " or not valid on this machine"
        )
    runs.leases.address = config.advertise_address or f"{config.address.rpartition(':')[0]}:{port}"
    metrics_server, metrics_port = None, 0
    if config.metrics_address:
        metrics_server = MetricsServer(metrics)
        try:
            metrics_port = await metrics_server.start(config.metrics_address)
        except (OSError, ValueError) as error:
            await store.close()
            raise OSError(f"cannot serve metrics on {config.metrics_address}: {error}") from error
    await runs.open()
    await server.start()
    studio, studio_port = None, 0
    if config.ui_address:
        try:
            studio, studio_port = await open_studio(studio_config(config, port))
        except OSError as error:
            await server.stop(0)
            await runs.close()
            await store.close()
            raise OSError(f"cannot serve Studio on {config.ui_address}: {error}") from error
    relays.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    sweeper = None
    if config.thread_ttl is not None:
        sweeper = ThreadTtlSweeper(
            store, ttl=config.thread_ttl, is_busy=runs.thread_is_busy, clock=runs.clock
        )
    # The CLI prints the address and the store once; the log says who started.
    log.info("replica %s started", runs.replica_id)
    cairn = CairnServer(
        server,
        store,
        runs,
        health_servicer,
        relays,
        sweeper,
        memory_sweeper=MemorySweeper(memory, clock=runs.clock),
        schedule_poller=schedule_poller,
        metrics=metrics,
        metrics_server=metrics_server,
        metrics_port=metrics_port,
        studio=studio,
        studio_port=studio_port,
    )
    return cairn, port


def studio_config(config: ServerConfig, port: int) -> StudioConfig:
    """The Studio of `cairn serve`: it reaches this server at its own address
    over the server's TLS, trusting --tls-ca (else --tls-client-ca, else the
    system's roots) and, when clients need certificates, showing the
    server's own; it serves its page over HTTPS with the server's
    certificate. It takes no credential: each browser user signs in."""
    auth = config.auth
    host = config.address.rpartition(":")[0]
    if host in ("", "0.0.0.0", "[::]"):
        host = "127.0.0.1"
    tls: bool | TlsConfig = False
    if auth.tls_cert is not None:
        mutual = auth.tls_client_ca is not None
        tls = TlsConfig(
            ca_file=auth.tls_ca or auth.tls_client_ca,
            cert_file=auth.tls_cert if mutual else None,
            key_file=auth.tls_key if mutual else None,
        )
    return StudioConfig(
        address=config.ui_address,
        server=f"{host}:{port}",
        connection=ConnectionSettings.resolve(tls=tls, environ={}),
        https_cert=auth.tls_cert,
        https_key=auth.tls_key,
    )


def redact_url(url: str) -> str:
    """The store URL without a password, for logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
