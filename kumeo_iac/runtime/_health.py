"""The worker's probe and metrics endpoints: ``/healthz``, ``/readyz`` and ``/metrics`` on one small HTTP server.

Kubernetes probes and Prometheus scrapes are a few tiny GET requests a minute, so the server is the standard
library's ``asyncio.start_server`` speaking just enough HTTP/1.1 (one request per connection); it runs on the
worker's own event loop, which also means a stuck loop fails the liveness probe, as it should.

An agent may mount its own routes under a path prefix (:meth:`HttpServer.mount`); those requests may use any
method and carry a body (``Content-Length``, at most 1 MiB). The handler also gets the client's address as
``headers[":peer"]``, set by the server (no header a client sends can have that name). :class:`HttpServer` is the same
server without the probes: HumanReview serves its review API on one of its own, on loopback unless told otherwise
(``KUMEO_REVIEW_HOST``), never on the probe port every pod exposes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from kumeo_iac.runtime._metrics import CONTENT_TYPE

log = logging.getLogger("kumeo.runtime")

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict",
            413: "Content Too Large", 422: "Unprocessable Content", 500: "Internal Server Error",
            503: "Service Unavailable"}
_MAX_BODY = 1 << 20

#: A mounted route: (method, target, lower-cased headers, body) → (status, body, content type).
Handler = Callable[[str, str, dict[str, str], bytes], Awaitable[tuple[int, str, str]]]
#: The key of ``headers`` that holds the client's address (host only) for a mounted handler.
PEER = ":peer"


class HttpServer:
    """A tiny HTTP/1.1 server for mounted routes only (everything else is 404)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._mounts: list[tuple[str, Handler]] = []

    @property
    def host(self) -> str:
        """The address it listens on (``127.0.0.1``, ``0.0.0.0``, …)."""
        return self._host

    def mount(self, prefix: str, handler: Handler) -> None:
        """Hand every request whose path is ``prefix`` or below it to ``handler``."""
        self._mounts.append((prefix.rstrip("/"), handler))

    @property
    def port(self) -> int:
        """The bound port (useful when constructed with port 0)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5.0)
            headers: dict[str, str] = {}
            while True:
                line = await asyncio.wait_for(reader.readline(), 5.0)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            parts = request_line.decode("latin-1").split()
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            handler = self._mounted(path.split("?", 1)[0])
            if handler is None:
                status, body, content_type = self._respond(method, path.split("?", 1)[0])
            else:
                declared = headers.get("content-length", "0")
                length = int(declared) if declared.isdigit() else 0
                if length > _MAX_BODY:
                    status, body, content_type = 413, '{"error": "request body too large"}\n', "application/json"
                else:
                    data = await asyncio.wait_for(reader.readexactly(length), 5.0) if length > 0 else b""
                    peer = writer.get_extra_info("peername")
                    headers[PEER] = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else ""
                    status, body, content_type = await handler(method, path, headers, data)
            payload = body.encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + (payload if method != "HEAD" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # a probe must never take the worker down
            log.exception("health endpoint failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _mounted(self, path: str) -> Handler | None:
        for prefix, handler in self._mounts:
            if path == prefix or path.startswith(prefix + "/"):
                return handler
        return None

    def _respond(self, method: str, path: str) -> tuple[int, str, str]:
        return 404, "not found\n", "text/plain; charset=utf-8"


class HealthServer(HttpServer):
    """Serves ``/healthz`` (the process is alive), ``/readyz`` (``ready()`` is true) and ``/metrics``."""

    def __init__(
        self,
        ready: Callable[[], bool],
        metrics: Callable[[], str],
        *,
        host: str = "0.0.0.0",
        port: int = 8080,
    ) -> None:
        super().__init__(host=host, port=port)
        self._ready = ready
        self._metrics = metrics

    def _respond(self, method: str, path: str) -> tuple[int, str, str]:
        text = "text/plain; charset=utf-8"
        if method not in ("GET", "HEAD"):
            return 405, "method not allowed\n", text
        if path == "/healthz":
            return 200, "ok\n", text
        if path == "/readyz":
            return (200, "ready\n", text) if self._ready() else (503, "not ready\n", text)
        if path == "/metrics":
            return 200, self._metrics(), CONTENT_TYPE
        return 404, "not found\n", text
