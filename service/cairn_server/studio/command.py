"""`cairn studio`: the Studio alone, in front of any replica.

    cairn studio --ui-address 127.0.0.1:8080 --address cairn.internal:50051 --tls-ca ca.pem

It needs no store and no access to one: everything goes through the API at
--address, as the browser user who signed in. The TLS options are the
inspection commands' (and their CAIRN_TLS_* variables); a credential is
never taken from the command line or the environment, since it would act
for every visitor of the page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable

from cairn._credentials import ConnectionSettings, is_loopback
from cairn_server import inspection, logs
from cairn_server.studio import StudioConfig, open_studio

_CREDENTIAL_VARIABLES = ("CAIRN_TOKEN", "CAIRN_API_KEY", "CAIRN_NAMESPACE")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "studio", help="serve Cairn Studio for a running server (any replica)"
    )
    command.add_argument("--address", default="127.0.0.1:50051", help="the server's host:port")
    command.add_argument(
        "--ui-address", required=True, metavar="HOST:PORT", help="where to serve the page"
    )
    command.add_argument(
        "--https-cert", metavar="PEM", help="serve the page over HTTPS with this certificate"
    )
    command.add_argument("--https-key", metavar="PEM", help="its private key")
    command.add_argument(
        "--insecure",
        action="store_true",
        help="serve plain HTTP on an address that is not loopback",
    )
    inspection.add_connection_options(command)


def studio_line(ui_address: str, port: int, *, https: bool) -> str:
    """The line that says where the page is."""
    host = ui_address.rpartition(":")[0]
    return f"cairn studio on {'https' if https else 'http'}://{host}:{port}/"


def run(
    args: argparse.Namespace, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> int:
    try:
        config = _config(args)
    except ValueError as error:
        print(f"cairn studio: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        return 1
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(config))
    except OSError as error:
        print(f"cairn studio: cannot serve {config.address}: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


def _config(args: argparse.Namespace) -> StudioConfig:
    options = inspection.connection_options(args)
    if options["token"] or options["api_key"]:
        raise ValueError(
            "the Studio takes no credential of its own (it would act for every visitor):"
            " users sign in on the page"
        )
    if bool(args.https_cert) != bool(args.https_key):
        raise ValueError("--https-cert and --https-key go together")
    # The server checks every call's identity; what matters here is only
    # that tokens never cross a network in clear text.
    if not (args.insecure or args.https_cert or is_loopback(args.ui_address)):
        raise ValueError(
            f"refusing to serve {args.ui_address}, which is not a loopback address, over"
            " plain HTTP: give --https-cert and --https-key, or --insecure"
        )
    environ = {k: v for k, v in os.environ.items() if k not in _CREDENTIAL_VARIABLES}
    return StudioConfig(
        address=args.ui_address,
        server=args.address,
        connection=ConnectionSettings.resolve(tls=options["tls"], environ=environ),
        https_cert=args.https_cert,
        https_key=args.https_key,
    )


async def _serve(config: StudioConfig) -> None:
    studio, port = await open_studio(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    line = studio_line(config.address, port, https=config.https_cert is not None)
    logs.announce(f"{line} for {config.server}")
    try:
        await stop.wait()
    finally:
        await studio.stop()
