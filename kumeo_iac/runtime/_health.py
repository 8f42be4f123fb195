"""The worker's probe and metrics endpoints: ``/healthz``, ``/readyz`` and ``/metrics`` on one small HTTP server.

Kubernetes probes and Prometheus scrapes are a few tiny GET requests a minute, so the server is the standard
library's ``asyncio.start_server`` speaking just enough HTTP/1.1 (one request per connection); it runs on the
worker's own event loop, which also means a stuck loop fails the liveness probe, as it should.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from kumeo_iac.runtime._metrics import CONTENT_TYPE

log = logging.getLogger("kumeo.runtime")

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    """Serves ``/healthz`` (the process is alive), ``/readyz`` (``ready()`` is true) and ``/metrics``."""

    def __init__(
        self,
        ready: Callable[[], bool],
        metrics: Callable[[], str],
        *,
        host: str = "0.0.0.0",
        port: int = 8080,
    ) -> None:
        self._ready = ready
        self._metrics = metrics
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

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
            # Read and ignore the request headers.
            while True:
                line = await asyncio.wait_for(reader.readline(), 5.0)
                if line in (b"\r\n", b"\n", b""):
                    break
            parts = request_line.decode("latin-1").split()
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            status, body, content_type = self._respond(method, path.split("?", 1)[0])
            payload = body.encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + (payload if method != "HEAD" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        except Exception:  # a probe must never take the worker down
            log.exception("health endpoint failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

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
