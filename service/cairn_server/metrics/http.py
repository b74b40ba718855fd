"""The /metrics HTTP endpoint, on an asyncio server of its own.

It runs on the server's event loop rather than in a thread: the values read
at scrape time (runs, workers, leases) come from structures the loop
changes, which a thread could see half-changed. A scrape costs the loop the
time to format the text (well under a millisecond for a few hundred series).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cairn_server.metrics.registry import Metrics

log = logging.getLogger(__name__)

_READ_TIMEOUT = 10.0
"""Seconds a client may take to send its request's headers."""
_MAX_HEADERS = 16 * 1024


class MetricsServer:
    """Serves `GET /metrics` (the Prometheus text format) on `address`.

    Example::

        server = MetricsServer(metrics)
        port = await server.start("127.0.0.1:9464")
        ...
        await server.stop()
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self, address: str) -> int:
        """Listen on `address` (host:port, port 0 for any); returns the port."""
        host, port = split_address(address)
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=_MAX_HEADERS, reuse_address=True
        )
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for client in list(self._clients):
            client.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            request = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(request) != 3 or request[0] not in ("GET", "HEAD"):
                self._answer(writer, "405 Method Not Allowed", b"GET /metrics\n", "text/plain")
            elif request[1].split("?", 1)[0] not in ("/metrics", "/"):
                self._answer(writer, "404 Not Found", b"see /metrics\n", "text/plain")
            else:
                body = generate_latest(self._metrics.registry)
                self._answer(writer, "200 OK", body, CONTENT_TYPE_LATEST, head=request[0] == "HEAD")
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sent no complete request gets no answer
        except ConnectionError:
            pass
        except Exception:
            log.exception("serving /metrics failed")
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    def _answer(
        writer: asyncio.StreamWriter,
        status: str,
        body: bytes,
        content_type: str,
        *,
        head: bool = False,
    ) -> None:
        headers = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(headers.encode("latin-1") + (b"" if head else body))


def split_address(address: str) -> tuple[str, int]:
    """('host', port) of `host:port` or `[v6]:port`."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"metrics address {address!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)
