"""The envelope every Kumeo message carries: header names, event ids, dedupe ids and W3C trace context.

The payload of a message is its JSON body; everything the runtime needs to know about it travels in headers, so an
event can cross any number of hops without being wrapped. The names live here once and every module imports them:

- ``Kumeo-Event-Id``: one id per input event, kept across hops (a join's parts share it).
- ``Nats-Msg-Id``: ``<event-id>:<agent>`` (``:<n>`` for an agent's n-th extra message for one event), so
  JetStream's dedupe window drops the re-publish of a redelivered step.
- ``traceparent``: W3C trace context; a new trace per input event, a new span per hop, the trace id kept.
- ``Kumeo-Agent``, ``Kumeo-Attempt``: who produced the message, on which delivery of its input.
- ``Kumeo-Error``: on dead letters, the reason in one line.

Payloads are strict JSON (RFC 8259) both ways: :func:`loads` refuses what Python's ``json`` would let through
(``NaN``/``Infinity``, numbers that overflow a double, invalid UTF-8, nesting deeper than the decoder's recursion
limit) with a :class:`NotJSON` naming what and where, and :func:`dumps` never writes a non-standard token.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any, Final

EVENT_ID: Final = "Kumeo-Event-Id"
MSG_ID: Final = "Nats-Msg-Id"
TRACEPARENT: Final = "traceparent"
AGENT: Final = "Kumeo-Agent"
ATTEMPT: Final = "Kumeo-Attempt"
ERROR: Final = "Kumeo-Error"
#: Set on a dead letter's input when someone replays it (dashboard); names the dead letter (`<stream>/<seq>`).
REPLAY_OF: Final = "Kumeo-Replay-Of"
#: Who replayed it.
REPLAYED_BY: Final = "Kumeo-Replayed-By"

#: The longest ``Kumeo-Error`` value we send; headers are not the place for tracebacks.
MAX_ERROR_CHARS: Final = 500

#: The largest input (bytes) a worker processes unless configured otherwise; larger ones are dead-lettered unread.
DEFAULT_MAX_INPUT_BYTES: Final = 1024 * 1024
#: The environment variable that sets a worker's input size limit (bytes).
MAX_INPUT_BYTES_ENV: Final = "KUMEO_MAX_INPUT_BYTES"

_TRACEPARENT_RE: Final = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


def new_event_id() -> str:
    """A fresh event id for an event that enters the workflow without one (a random UUID, hex)."""
    return uuid.uuid4().hex


def source_event_id(stream: str, stream_sequence: int, msg_id: str | None = None) -> str:
    """The id of an event read from a source subject: stable across redeliveries of the same stream message.

    A publisher's ``Nats-Msg-Id`` is the event's identity when it gave one; otherwise the stream and sequence are,
    so every agent reading the same source message, and every redelivery of it, agrees on the id.
    """
    if msg_id:
        return msg_id
    return f"{stream}-{stream_sequence}"


def dedupe_id(event_id: str, agent: str, index: int = 0) -> str:
    """The ``Nats-Msg-Id`` of an agent's output for one event: ``<event-id>:<agent>`` and ``:<n>`` for n > 0."""
    base = f"{event_id}:{agent}"
    return f"{base}:{index}" if index else base


def new_span_id() -> str:
    while True:
        span = os.urandom(8).hex()
        if span != _ZERO_SPAN:
            return span


def trace_id_for(event_id: str) -> str:
    """The trace id of a new trace for ``event_id``: derived from it, so a redelivered source event keeps its trace."""
    trace = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    return trace if trace != _ZERO_TRACE else "1" * 32


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """Return ``(trace_id, parent_span_id, flags)`` of a valid W3C ``traceparent``, or None."""
    if not value:
        return None
    match = _TRACEPARENT_RE.match(value.strip().lower())
    if match is None:
        return None
    version, trace, span, flags = match.groups()
    if version == "ff" or trace == _ZERO_TRACE or span == _ZERO_SPAN:
        return None
    return trace, span, flags


def next_traceparent(parent: str | None, event_id: str) -> str:
    """The ``traceparent`` of one hop: the parent's trace with a new span id, or a new trace for a new event."""
    parsed = parse_traceparent(parent)
    if parsed is None:
        return f"00-{trace_id_for(event_id)}-{new_span_id()}-01"
    trace, _, flags = parsed
    return f"00-{trace}-{new_span_id()}-{flags}"


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Squash ``text`` into one header-safe line of at most ``limit`` characters."""
    line = " ".join(str(text).split())
    line = line.encode("ascii", "backslashreplace").decode("ascii")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def build_headers(
    *,
    event_id: str,
    agent: str,
    attempt: int,
    traceparent: str,
    msg_id: str | None = None,
    error: str | None = None,
) -> dict[str, str]:
    """The headers of one message an agent publishes; ``msg_id`` defaults to :func:`dedupe_id`."""
    headers = {
        EVENT_ID: event_id,
        MSG_ID: msg_id if msg_id is not None else dedupe_id(event_id, agent),
        TRACEPARENT: traceparent,
        AGENT: agent,
        ATTEMPT: str(attempt),
    }
    if error is not None:
        headers[ERROR] = one_line(error)
    return headers


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value, or None; tolerant of a missing header map."""
    if not headers:
        return None
    value = headers.get(name)
    return value if value else None


# -- strict JSON ------------------------------------------------------------------------------------------------


class NotJSON(ValueError):
    """A payload that is not strict JSON although Python's ``json`` might take it; the message says what and where."""


class _NonFinite:
    """What the decoder returns for ``NaN``/``Infinity``/an overflowing number, so :func:`loads` can say where."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


_marks = 0  # how many _NonFinite the decoder has made: loads() walks the value only when this moved


def _constant(token: str) -> Any:
    global _marks
    _marks += 1
    return _NonFinite(token)


def _float(text: str) -> Any:
    value = float(text)
    if math.isfinite(value):
        return value
    global _marks
    _marks += 1
    return _NonFinite(text)


_DECODER: Final = json.JSONDecoder(parse_constant=_constant, parse_float=_float)


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = str(key)
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _find_non_finite(value: Any) -> tuple[str, str] | None:
    """``(token, JSON path)`` of the first non-finite number in ``value`` (document order), or None."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, _NonFinite):
            return item.token, path
        if isinstance(item, float) and not math.isfinite(item):
            return ("NaN" if math.isnan(item) else "Infinity" if item > 0 else "-Infinity"), path
        if isinstance(item, dict):
            stack.extend((v, _child(path, k)) for k, v in reversed(list(item.items())))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, _child(path, i)) for i, v in reversed(list(enumerate(item))))
    return None


def _non_finite_message(token: str, path: str) -> str:
    if token in ("NaN", "Infinity", "-Infinity"):
        return f"non-finite number {token} at {path} is not JSON"
    return f"number {one_line(token, 40)} at {path} overflows a double (not a finite number)"


def _too_deep() -> str:
    return f"JSON nested too deeply to decode (the limit is under {sys.getrecursionlimit()} levels)"


def loads(data: bytes | str) -> Any:
    """Decode one payload as strict JSON.

    Raises :class:`NotJSON` for what no agent should see (invalid UTF-8, ``NaN``/``Infinity``, a number beyond a
    double, nesting past the decoder's recursion limit) and :class:`json.JSONDecodeError` for text that is not JSON
    at all (a caller may take that as plain text).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotJSON(f"payload is not UTF-8 (invalid byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    else:
        text = data
    before = _marks
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise NotJSON(_too_deep()) from None
    if _marks != before:
        found = _find_non_finite(value)
        if found is not None:
            raise NotJSON(_non_finite_message(*found))
    return value


def dumps(data: Any) -> bytes:
    """``data`` as compact strict JSON in UTF-8; :class:`NotJSON` says why it cannot be (and where)."""
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except RecursionError:
        raise NotJSON("nested too deeply to encode as JSON") from None
    except UnicodeEncodeError as exc:
        raise NotJSON(f"a string holds an unpaired surrogate ({exc.object[exc.start:exc.end]!a}), not UTF-8 text"
                      ) from None
    except ValueError as exc:
        found = _find_non_finite(data) if "JSON compliant" in str(exc) else None
        if found is not None:
            raise NotJSON(_non_finite_message(*found)) from None
        raise NotJSON(f"not JSON: {exc}") from None
    except TypeError as exc:
        raise NotJSON(f"not JSON: {exc}") from None


def max_input_bytes(setting: Any = None, environ: Mapping[str, str] | None = None) -> int:
    """The input size limit of a source: ``$KUMEO_MAX_INPUT_BYTES``, else ``setting`` (the Plan's
    ``max_input_bytes``), else 1 MiB, the order a worker uses. ValueError names the one that is not a size."""
    env = os.environ if environ is None else environ
    for name, value in ((MAX_INPUT_BYTES_ENV, env.get(MAX_INPUT_BYTES_ENV) or None),
                        ("the Plan setting max_input_bytes", setting)):
        if value is None:
            continue
        try:
            number = int(value) if not isinstance(value, bool) else 0
        except (TypeError, ValueError):
            number = 0
        if number <= 0:
            raise ValueError(f"{name} must be a positive number of bytes, not {value!r}")
        return number
    return DEFAULT_MAX_INPUT_BYTES


def over_limit(size: int, limit: int, what: str = "input") -> str:
    """The reason an input of ``size`` bytes is refused, in the words a worker uses."""
    return f"{what} of {size} bytes is over the limit of {limit} bytes (max_input_bytes, {MAX_INPUT_BYTES_ENV})"


def wire_size(data: bytes, headers: Mapping[str, str] | None) -> int:
    """The bytes a message takes against the server's ``max_payload``: its headers block plus its payload."""
    size = len(data)
    if headers:
        size += len(b"NATS/1.0\r\n\r\n")
        for key, value in headers.items():
            size += len(str(key).encode()) + len(str(value).encode()) + 4  # "k: v\r\n"
    return size
