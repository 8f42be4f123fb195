"""HTTP source: an ingest endpoint where each POSTed JSON object becomes an event.

The body may be one JSON object, a JSON array of objects, or JSON lines (``application/x-ndjson``); each object is
published with ``js.publish`` on the workflow's source subject with a new ``Kumeo-Event-Id`` (= ``Nats-Msg-Id``)
and the answer is ``202 {"event_ids": [...]}`` once JetStream has stored every one. A body that is not what we
accept is answered ``400`` with the reason (strict JSON: ``NaN``, ``Infinity`` and nesting past the decoder's limit
are refused as a worker would refuse them), an event over the workflow's input limit ``413`` (``max_input_bytes``,
``KUMEO_MAX_INPUT_BYTES``, 1 MiB by default), and nothing of such a body is published: the client is told, so
nothing goes to the dead-letter subject. A client that sends
``Idempotency-Key: K`` gets event ids ``K`` (or ``K-1``, ``K-2``… for several events), so a retried POST is
deduplicated by JetStream instead of doubling events.

The server is a few dozen lines on ``asyncio.start_server`` (HTTP/1.1, keep-alive, ``Content-Length`` bodies)
so a gateway needs no web framework; ``GET /healthz`` answers ``200`` for probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime.io._common import (
    Adapter,
    InvalidLine,
    dumps,
    parse_line,
    source_headers,
)

if TYPE_CHECKING:
    from kumeo_iac.compile import EndpointPlan, WorkflowPlan

__all__ = ["HttpSource", "parse_body"]

log = logging.getLogger("kumeo.io")

DEFAULT_PORT = 8080
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
            503: "Service Unavailable"}


class BadRequest(Exception):
    """The body is not one JSON object, an array of objects or JSON lines (400), or holds an event over the
    workflow's input limit (413); the message says where and why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_body(body: bytes, content_type: str = "", max_event_bytes: int | None = None) -> list[Any]:
    """The events in a POSTed body; raises :class:`BadRequest` with a message for the client.

    Strict JSON, as a worker reads it (:func:`envelope.loads`): ``NaN``/``Infinity``, numbers beyond a double and
    nesting past the decoder's limit are a 400 naming what and where; an event whose compact JSON is over
    ``max_event_bytes`` is a 413 naming the event, its size and the limit.
    """
    from kumeo_iac.runtime import envelope

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise BadRequest("the body is empty; POST a JSON object, an array of objects, or JSON lines")
    lines_wanted = "ndjson" in content_type or "jsonl" in content_type or "json-seq" in content_type
    if not lines_wanted:
        try:
            value = envelope.loads(text)
        except envelope.NotJSON as exc:
            raise BadRequest(str(exc)) from None
        except ValueError as exc:
            lines = [line for line in text.splitlines() if line.strip()]
            if len(lines) < 2:
                raise BadRequest(f"invalid JSON: {getattr(exc, 'msg', exc)} at line {getattr(exc, 'lineno', 1)} "
                                 f"column {getattr(exc, 'colno', 1)}") from None
        except Exception as exc:  # noqa: BLE001 - whatever else a hostile body makes the decoder raise
            raise BadRequest(f"cannot read the body: {type(exc).__name__}") from None
        else:
            if isinstance(value, dict):
                _check_size([value], max_event_bytes, single=True)
                return [value]
            if isinstance(value, list):
                if not value:
                    raise BadRequest("the array is empty: no events")
                for index, item in enumerate(value):
                    if not isinstance(item, dict):
                        raise BadRequest(f"element {index} of the array is not a JSON object")
                _check_size(value, max_event_bytes, single=False)
                return value
            raise BadRequest("expected a JSON object, an array of objects, or JSON lines")
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parsed = parse_line(line, number, max_event_bytes)
        if isinstance(parsed, InvalidLine):
            raise BadRequest(f"line {parsed.line}: {parsed.reason}",
                             413 if parsed.reason.startswith("event of ") else 400)
        events.append(parsed[1])
    return events


def _check_size(events: list[Any], limit: int | None, *, single: bool) -> None:
    from kumeo_iac.runtime import envelope

    if limit is None:
        return
    for index, event in enumerate(events):
        size = len(envelope.dumps(event))
        if size > limit:
            where = "" if single else f"element {index} of the array: "
            raise BadRequest(where + envelope.over_limit(size, limit, "event"), 413)


class HttpSource(Adapter):
    """Serves ``POST <path>`` and publishes each event on the source subject.

    The port is ``port`` if given, else the endpoint's (``{ port: N }`` or the URL's), else ``default_port``
    (0: any free port; :attr:`url` tells which once started).
    """

    role = "source"

    def __init__(self, workflow: WorkflowPlan, endpoint: EndpointPlan, *, host: str | None = None,
                 port: int | None = None, default_port: int = DEFAULT_PORT, publish_timeout: float = 5.0) -> None:
        super().__init__(workflow, endpoint)
        options = endpoint.options or {}
        address = endpoint.address or "/"
        split = urlsplit(address) if "://" in address else None
        self.path = ((split.path if split else address) or "/").rstrip("/") or "/"
        if not self.path.startswith("/"):
            self.path = "/" + self.path
        self.host = host or str(options.get("host") or (split.hostname if split else None) or "0.0.0.0")
        chosen = port if port is not None else options.get("port", split.port if split else None)
        self.port = default_port if chosen is None else int(chosen)
        self.publish_timeout = publish_timeout
        from kumeo_iac.runtime import envelope

        try:
            #: The largest event (compact JSON bytes) accepted: $KUMEO_MAX_INPUT_BYTES, else the Plan's option.
            self.max_input_bytes = envelope.max_input_bytes(options.get("max_input_bytes"))
        except ValueError as exc:
            raise KumeoRuntimeError(f"workflow '{workflow.name}': HTTP source {endpoint.address!r}: {exc}") from None
        #: A body may hold many events: up to 10 MiB, or one event at the limit if that is more.
        self.max_body_bytes = max(MAX_BODY_BYTES, self.max_input_bytes + 1024)
        self.js: Any = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self.accepted = 0

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}{self.path}"

    async def start(self, nc: Any) -> None:
        self.js = nc.jetstream()
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            raise KumeoRuntimeError(
                f"workflow '{self.workflow.name}': HTTP source {self.endpoint.address!r} cannot listen on "
                f"{self.host}:{self.port}: {exc.strerror or exc}; free the port or set another with "
                f"{{ port: N }}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("HTTP source %s listening on %s", self.endpoint.address, self.url)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                keep_alive = await self._one_request(reader, writer)
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            await _respond(writer, 431, {"error": "request headers too large"}, keep_alive=False)
            return False
        except asyncio.IncompleteReadError:
            return False
        if len(head) > MAX_HEADER_BYTES:
            await _respond(writer, 431, {"error": "request headers too large"}, keep_alive=False)
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            await _respond(writer, 400, {"error": "malformed request line"}, keep_alive=False)
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        body = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            await _respond(writer, 411, {"error": "send the body with Content-Length (chunked is not supported)"},
                           keep_alive=False)
            return False
        length_text = headers.get("content-length", "0")
        try:
            length = int(length_text)
        except ValueError:
            await _respond(writer, 400, {"error": f"bad Content-Length {length_text!r}"}, keep_alive=False)
            return False
        if length > self.max_body_bytes:
            await _respond(writer, 413, {"error": f"the body exceeds {self.max_body_bytes} bytes; send fewer events "
                                                  "per request"}, keep_alive=False)
            return False
        if length:
            body = await reader.readexactly(length)
        path = urlsplit(target).path.rstrip("/") or "/"
        if path in ("/healthz", "/readyz") and method in ("GET", "HEAD"):
            await _respond(writer, 200, {"status": "ok"}, keep_alive=keep_alive)
        elif path != self.path:
            await _respond(writer, 404, {"error": f"no such endpoint {path}; POST events to {self.path}"},
                           keep_alive=keep_alive)
        elif method != "POST":
            await _respond(writer, 405, {"error": f"use POST to send events to {self.path}"},
                           keep_alive=keep_alive, extra={"Allow": "POST"})
        else:
            status, answer = await self._ingest(body, headers)
            await _respond(writer, status, answer, keep_alive=keep_alive)
        return keep_alive

    async def _ingest(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            events = parse_body(body, headers.get("content-type", "").lower(), self.max_input_bytes)
        except BadRequest as exc:
            return exc.status, {"error": str(exc)}
        from kumeo_iac.runtime import envelope

        key = headers.get("idempotency-key") or headers.get(envelope.EVENT_ID.lower())
        if key:
            ids = [key] if len(events) == 1 else [f"{key}-{i}" for i in range(1, len(events) + 1)]
        else:
            ids = [envelope.new_event_id() for _ in events]
        producer = f"source.{self.endpoint.name}"
        try:
            futures = [await self.js.publish_async(self.endpoint.subject, dumps(event),
                                                   headers=source_headers(event_id, producer))
                       for event, event_id in zip(events, ids, strict=True)]
            await asyncio.wait_for(asyncio.gather(*futures), self.publish_timeout)
        except Exception as exc:  # noqa: BLE001 - NATS unavailable: the client may retry (same key, no doubles)
            log.warning("HTTP source %s: publishing failed: %r", self.endpoint.address, exc)
            return 503, {"error": f"could not store the events in NATS ({type(exc).__name__}); retry later"}
        self.accepted += len(ids)
        return 202, {"event_ids": ids, "subject": self.endpoint.subject}


async def _respond(writer: asyncio.StreamWriter, status: int, body: dict[str, Any], *, keep_alive: bool,
                   extra: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode() + b"\n"
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}", "Content-Type: application/json",
            f"Content-Length: {len(data)}", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    await writer.drain()
