"""The Studio's HTTP side: the page's files and a JSON door to the gRPC API.

    GET  /                          the page (static/index.html)
    GET  /static/<path>             its scripts, styles and vendored libraries
    GET  /api/studio                {"version", "server"}: which server this is
    POST /api/<Service>/<Method>    a unary RPC of bridge.UNARY_METHODS, as JSON
    POST /api/runs                  start a run (a StreamRequest), answer its Run
    GET  /api/runs/<run_id>/events  the run's events as server-sent events,
                                    after Last-Event-ID (or ?after=N)

Every API call carries the browser user's `Authorization: Bearer ...` and
`X-Cairn-Namespace`, passed on as the gRPC metadata any client sends, so the
server applies its own identity, role and namespace rules. The Studio holds
no credential of its own for users.

Against the browser: no CDN and no inline code (the page is served with a
`default-src 'self'` CSP), POSTs must be JSON from the same origin (a form
or a script of another site cannot call the API), and on a loopback address
only loopback Host names are answered (a DNS-rebinding page cannot either).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pathlib
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from aiohttp import web

from cairn._credentials import is_loopback
from cairn._version import __version__
from cairn_server.studio.bridge import Bridge, CallFailed

log = logging.getLogger(__name__)

STATIC = pathlib.Path(__file__).resolve().parent / "static"

KEEPALIVE = 15.0
"""Seconds between keep-alive comments on a quiet event stream: proxies keep
the connection, and a browser that left is noticed."""

MAX_BODY = 16 * 1024 * 1024
"""The largest request body: a state update or an answer near the server's
payload limit, as JSON."""

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(failure: CallFailed) -> web.Response:
    return web.json_response(failure.to_json(), status=failure.http_status)


class Studio:
    """Serves the Studio for the API that `bridge` reaches.

    `server` names that API on the page. With `require_credential`, calls
    without a bearer credential are refused here with UNAUTHENTICATED: the
    Studio's channel carries a client certificate, which must never stand in
    for a browser user who did not sign in.

    Example::

        studio = Studio(Bridge(channel), server="127.0.0.1:50051")
        port = await studio.start("127.0.0.1", 8080)
        ...
        await studio.stop()
    """

    def __init__(self, bridge: Bridge, *, server: str, require_credential: bool = False) -> None:
        self._bridge = bridge
        self._server = server
        self._require_credential = require_credential
        self._runner: web.AppRunner | None = None
        self._hosts: frozenset[str] | None = None
        self._closing = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard, self._headers])
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
        app.router.add_get("/api/studio", self._about)
        app.router.add_post("/api/runs", self._start_run)
        app.router.add_get("/api/runs/{run_id}/events", self._events)
        app.router.add_post("/api/{service}/{method}", self._unary)
        return app

    async def start(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> int:
        """Listen on host:port (0: any free port); returns the bound port."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound = self._runner.addresses[0][1]
        if is_loopback(f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"):
            names = {host.strip("[]"), "localhost", "127.0.0.1", "::1"}
            self._hosts = frozenset(f"{f'[{n}]' if ':' in n else n}:{bound}" for n in names)
        return int(bound)

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._bridge.close()

    # --- middlewares -------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._hosts is not None and request.host not in self._hosts:
            return web.Response(status=421, text="unknown host name\n")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                return _error(CallFailed("PERMISSION_DENIED", "cross-origin request", "", {}, 403))
            if request.content_type != "application/json":
                failure = CallFailed.invalid("send the request as application/json")
                failure.http_status = 415
                return _error(failure)
        try:
            return await handler(request)
        except CallFailed as failure:
            return _error(failure)

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers.update(_SECURITY_HEADERS)
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    # --- the page ----------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _about(self, request: web.Request) -> web.Response:
        return web.json_response({"version": __version__, "server": self._server})

    # --- the API -----------------------------------------------------------------------

    def _metadata(self, request: web.Request) -> tuple[tuple[str, str], ...]:
        """The caller's credential and namespace, as gRPC metadata."""
        metadata: list[tuple[str, str]] = []
        authorization = request.headers.get("Authorization", "").strip()
        if authorization:
            if not _metadata_value(authorization):
                raise CallFailed(
                    "UNAUTHENTICATED",
                    "the Authorization header is not a bearer credential",
                    "UNAUTHENTICATED",
                    {},
                    401,
                )
            metadata.append(("authorization", authorization))
        elif self._require_credential:
            raise CallFailed(
                "UNAUTHENTICATED",
                "sign in: this server identifies Studio users by a token or an API key",
                "UNAUTHENTICATED",
                {},
                401,
            )
        namespace = request.headers.get("X-Cairn-Namespace", "").strip()
        if namespace and not _metadata_value(namespace):
            raise CallFailed(
                "INVALID_ARGUMENT",
                "X-Cairn-Namespace is not a namespace name",
                "INVALID_NAMESPACE",
                {},
                400,
            )
        if namespace:
            metadata.append(("cairn-namespace", namespace))
        return tuple(metadata)

    async def _body(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except web.HTTPRequestEntityTooLarge:
            raise CallFailed(
                "RESOURCE_EXHAUSTED",
                f"the request body is larger than {MAX_BODY} bytes",
                "PAYLOAD_TOO_LARGE",
                {"limit": str(MAX_BODY)},
                413,
            ) from None
        except ValueError as error:
            raise CallFailed.invalid(f"the body is not JSON: {error}") from None

    async def _unary(self, request: web.Request) -> web.Response:
        name = f"{request.match_info['service']}/{request.match_info['method']}"
        metadata = self._metadata(request)
        body = await self._body(request)
        return web.json_response(await self._bridge.unary(name, body, metadata))

    async def _start_run(self, request: web.Request) -> web.Response:
        metadata = self._metadata(request)
        body = await self._body(request)
        return web.json_response(await self._bridge.start_run(body, metadata))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run_id"]
        after = _after(request)
        metadata = self._metadata(request)
        # An unknown run or a refused caller gets its status before the stream starts.
        await self._bridge.unary("RunService/GetRun", {"run_id": run_id}, metadata)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        messages = self._event_messages(run_id, after, metadata)
        async with contextlib.aclosing(messages):
            with contextlib.suppress(ConnectionError):
                async for message in messages:
                    await response.write(message.encode())
        return response

    async def _event_messages(
        self, run_id: str, after: int, metadata: tuple[tuple[str, str], ...]
    ) -> AsyncGenerator[str, None]:
        """The SSE messages of the run's events, with keep-alives while it is
        quiet, ending with `end` (or `error`) or when the Studio stops."""
        queue: asyncio.Queue[dict[str, Any] | CallFailed | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in self._bridge.events(run_id, after, metadata):
                    queue.put_nowait(event)
                queue.put_nowait(None)
            except CallFailed as failure:
                queue.put_nowait(failure)

        pumping = asyncio.ensure_future(pump())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while True:
                getting = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getting, closing}, timeout=KEEPALIVE, return_when=asyncio.FIRST_COMPLETED
                )
                if getting not in done:
                    getting.cancel()
                    if closing in done:
                        return
                    yield ": keep-alive\n\n"
                    continue
                item = getting.result()
                if item is None:
                    yield "event: end\ndata: {}\n\n"
                    return
                if isinstance(item, CallFailed):
                    yield f"event: error\ndata: {json.dumps(item.to_json())}\n\n"
                    return
                yield f"id: {item['event_id']}\ndata: {json.dumps(item)}\n\n"
        finally:
            closing.cancel()
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping


def _metadata_value(text: str) -> bool:
    """Whether gRPC can send `text` as a metadata value: printable ASCII."""
    return text.isascii() and text.isprintable()


def _after(request: web.Request) -> int:
    """The last event id the page saw: Last-Event-ID (a reconnecting
    EventSource sends it), else ?after=, else 0 (the whole log)."""
    text = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    if not text.isdigit() or len(text) > 18:
        raise CallFailed.invalid(f"Last-Event-ID must be an event id, got {text[:40]!r}")
    return int(text)
