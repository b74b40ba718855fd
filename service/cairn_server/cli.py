"""The `cairn` command line.

cairn serve [--address 127.0.0.1:50051] [--store sqlite:///cairn.db | postgresql://...]
            [--thread-ttl SECONDS] [--replica-id ID] [--lease-ttl SECONDS]
            [--shutdown-grace SECONDS] [--advertise-address HOST:PORT] [--log-level info]
            [--log-format text|json] [--metrics-address HOST:PORT] [--ui-address HOST:PORT]
            [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM] [--tls-ca PEM]]
            [--jwt-secret-file FILE | --jwt-jwks FILE_OR_URL] [--jwt-issuer ISS]
            [--jwt-audience AUD] [--jwt-roles-claim CLAIM] [--access-file JSON]
            [--relay-credential-file FILE] [--insecure] [--rate-limit PER_SECOND]
            [--rate-burst N] [--namespace-rate-limit PER_SECOND]
            [--max-runs-per-namespace N] [--max-workers-per-namespace N]
cairn keys create --name NAME --grant NAMESPACE:ROLE [--grant ...]
cairn studio --ui-address HOST:PORT [--address 127.0.0.1:50051] [--tls-* ...]
cairn health [--address 127.0.0.1:50051]
cairn threads [--status S] | state THREAD [--checkpoint ID] | history THREAD | runs THREAD
      [--address 127.0.0.1:50051] [--limit N] [--json]
cairn cancel RUN_ID | workers [--address 127.0.0.1:50051] [--json]

Every command but serve and keys takes --token JWT | --api-key KEY, --namespace NS
and --tls, --tls-ca PEM, --tls-cert PEM, --tls-key PEM, --tls-server-name NAME
(each defaults to its CAIRN_* environment variable).

A server that cannot start (a bad --store URL, an unreachable database, an
address in use) prints one line, `cairn serve: <why>`, and exits with 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from cairn_server import heap, inspection, logs, timers, tracing
from cairn_server.auth import options as auth_options
from cairn_server.auth.keys import add_keys_parser, run_keys
from cairn_server.runtime.replica import DEFAULT_LEASE_TTL
from cairn_server.server import CairnServer, ServerConfig, create_server, redact_url
from cairn_server.store.sqlite import SqliteStore
from cairn_server.studio import command as studio_command


class StartupError(Exception):
    """The server could not start; the message says why, in one line."""


async def serve(config: ServerConfig) -> None:
    try:
        server, port = await create_server(config)
    except Exception as error:
        raise StartupError(_one_line(error)) from error
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    store = _store_location(server, config.store_url)
    heap.freeze()
    logs.announce(f"cairn serving on {config.address} (port {port}), store {store}")
    if server.metrics_port:
        host = config.metrics_address.rpartition(":")[0]
        logs.announce(f"cairn metrics on http://{host}:{server.metrics_port}/metrics")
    if server.studio_port:
        https = config.auth.tls_cert is not None
        logs.announce(
            studio_command.studio_line(config.ui_address, server.studio_port, https=https)
        )
    await stop.wait()
    logging.getLogger(__name__).info("shutting down")
    await server.stop(grace=config.shutdown_grace)


def health(address: str, timeout: float, options: dict[str, Any]) -> int:
    """Health is open on every server; `options` give TLS (and the
    credentials, which health does not need) as for the inspection commands."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from cairn._credentials import ConnectionSettings

    try:
        settings = ConnectionSettings.resolve(**options)
    except ValueError as error:
        print(f"cairn health: {_one_line(error)}", file=sys.stderr)
        return 1
    with settings.sync_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as error:
            print(f"unhealthy: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cairn", description="Cairn durable execution service")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the gRPC server")
    serve_cmd.add_argument("--address", default="127.0.0.1:50051", help="host:port to listen on")
    serve_cmd.add_argument(
        "--advertise-address",
        default="",
        metavar="HOST:PORT",
        help="where the other replicas reach this one, to relay tasks to its workers"
        " (default: --address; set it when listening on 0.0.0.0)",
    )
    serve_cmd.add_argument(
        "--store",
        default="sqlite:///cairn.db",
        help="sqlite:///path.db (default ./cairn.db) or postgresql://user@host:5432/dbname",
    )
    serve_cmd.add_argument(
        "--thread-ttl",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="delete threads not updated for this long (default: keep them)",
    )
    serve_cmd.add_argument(
        "--replica-id",
        default="",
        help="this replica's name in the store (default: a new id per start); a replica"
        " restarted under the same id takes its runs back at once",
    )
    serve_cmd.add_argument(
        "--lease-ttl",
        type=_positive_seconds,
        default=DEFAULT_LEASE_TTL,
        metavar="SECONDS",
        help="how long the runs of a silent replica wait before another replica takes"
        f" them over (default {DEFAULT_LEASE_TTL:g})",
    )
    serve_cmd.add_argument(
        "--shutdown-grace",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, how long tasks in flight may take to finish before the runs"
        " are handed to other replicas (default 10)",
    )
    serve_cmd.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    serve_cmd.add_argument(
        "--log-format",
        default="text",
        choices=logs.FORMATS,
        help="text (default) or json: one object per line with the thread, run and task ids",
    )
    serve_cmd.add_argument(
        "--metrics-address",
        default="",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off)",
    )
    serve_cmd.add_argument(
        "--ui-address",
        default="",
        metavar="HOST:PORT",
        help="serve Cairn Studio, the web page to see and steer threads and runs, at"
        " http://HOST:PORT/ (default: off); over HTTPS with --tls-cert",
    )
    serve_cmd.add_argument(
        "--max-payload-bytes", type=int, default=4 * 1024 * 1024, help="largest JSON value"
    )
    auth_options.add_arguments(serve_cmd)
    add_keys_parser(commands)
    studio_command.add_parser(commands)
    health_cmd = commands.add_parser("health", help="check a server's gRPC health")
    health_cmd.add_argument("--address", default="127.0.0.1:50051")
    health_cmd.add_argument("--timeout", type=float, default=3.0)
    inspection.add_connection_options(health_cmd)
    inspection.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "health":
        return health(args.address, args.timeout, inspection.connection_options(args))
    if args.command == "keys":
        return run_keys(args)
    if args.command == "studio":
        logs.configure("info", "text")
        return studio_command.run(args, _loop_factory())
    if args.command != "serve":
        return inspection.run(args)
    logs.configure(args.log_level, args.log_format)
    try:
        auth = auth_options.from_args(args)
    except ValueError as error:
        print(f"cairn serve: {_one_line(error)}", file=sys.stderr, flush=True)
        return 1
    config = ServerConfig(
        address=args.address,
        store_url=args.store,
        max_payload_bytes=args.max_payload_bytes,
        thread_ttl=args.thread_ttl,
        replica_id=args.replica_id,
        lease_ttl=args.lease_ttl,
        shutdown_grace=args.shutdown_grace,
        advertise_address=args.advertise_address,
        auth=auth,
        metrics_address=args.metrics_address,
        ui_address=args.ui_address,
        timer_clock=timers.service_clock(),
    )
    try:
        # Spans go where the OTEL_* variables say (cairn_server/tracing/setup.py).
        with tracing.exporting(), asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(config))
    except StartupError as error:
        print(f"cairn serve: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _store_location(server: CairnServer, url: str) -> str:
    """The SQLite file's absolute path, or the database URL without its password."""
    if isinstance(server.store, SqliteStore):
        return server.store.location
    return redact_url(url)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return seconds


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (it is on Linux and macOS)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
