"""What every source and target adapter shares: subjects, the envelope of a new event, parsing and refusals.

Sources turn something outside NATS (an HTTP POST, a clock, a file) into events on the workflow's source subject
``kumeo.<slug>.source.<name>``; targets read ``kumeo.<slug>.target.<name>`` with a durable consumer of their own and
hand each result to the outside world. Nothing is dropped silently: an input a source cannot turn into an event,
and a result a target could not deliver, goes to the workflow's dead-letter subjects with the reason.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime import envelope

if TYPE_CHECKING:
    from kumeo_iac.compile import EndpointPlan, WorkflowPlan

__all__ = [
    "SUPPORTED_SOURCES",
    "SUPPORTED_TARGETS",
    "Adapter",
    "EndpointRefused",
    "InvalidLine",
    "dead_letter_subject",
    "duration",
    "parse_json_lines",
    "publish_event",
    "refusals",
    "target_consumer_config",
    "target_durable",
]

#: Endpoint kinds the runtime can run (NATS needs no adapter: agents read and write those subjects directly).
SUPPORTED_SOURCES = frozenset({"NATS", "HTTP", "Timer", "File"})
SUPPORTED_TARGETS = frozenset({"NATS", "HTTP", "File"})

#: How much longer than its text an event's compact JSON can be (numbers re-written by ``repr``), with margin.
_MAX_GROWTH = 5
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class EndpointRefused(KumeoRuntimeError):
    """A source or target the runtime cannot run (Kafka, MQTT); ``line`` is where the workflow declares it."""

    def __init__(self, message: str, line: int | None) -> None:
        self.message = message
        self.line = line
        super().__init__(message)

    def format(self, path: str) -> str:
        """``PATH:LINE: error: MESSAGE``, the way the CLI prints it."""
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: error: {self.message}"


def refusals(plan: WorkflowPlan) -> list[EndpointRefused]:
    """Every endpoint of ``plan`` the runtime refuses to start with, in declaration order."""
    out = []
    for role, endpoints, supported in (("source", plan.sources, SUPPORTED_SOURCES),
                                       ("target", plan.targets, SUPPORTED_TARGETS)):
        for ep in endpoints:
            if ep.kind not in supported:
                out.append(EndpointRefused(
                    f"workflow '{plan.name}': {ep.kind} {role}s are not supported by the local runtime yet "
                    f"({role} {ep.address!r}); use a NATS {role} and bridge it, or run it with "
                    f"{'/'.join(sorted(supported - {'NATS'}))}", ep.line))
    out.sort(key=lambda r: r.line or 0)
    return out


def dead_letter_subject(plan: WorkflowPlan, what: str) -> str:
    """``kumeo.<slug>.dlq.<what>``: ``source`` for events a source could not read, ``target.<name>`` for results
    a target could not deliver (agents use ``kumeo.<slug>.dlq.<agent>``)."""
    return f"kumeo.{plan.slug}.dlq.{what}"


def target_durable(endpoint: EndpointPlan) -> str:
    """The durable consumer a target adapter reads its subject with."""
    from kumeo_iac.compile import gateway_target_durable

    return gateway_target_durable(endpoint.name)


def target_consumer_config(endpoint: EndpointPlan, *, ack_wait: float) -> Any:
    """The ConsumerConfig of a target adapter: explicit ack, every message from the start, redelivered after
    ``ack_wait`` if the adapter died while delivering it (the adapter retries on its own and dead-letters)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    return ConsumerConfig(
        durable_name=target_durable(endpoint),
        description=f"Kumeo target {endpoint.kind} {endpoint.address}",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        filter_subject=endpoint.subject,
        max_ack_pending=1000,
    )


def duration(value: Any, what: str) -> float:
    """``"30s"``, ``"5m"``, ``"250ms"`` or a number of seconds."""
    if isinstance(value, bool):
        raise KumeoRuntimeError(f"{what} must be a duration, not {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise KumeoRuntimeError(f'{what} {str(value)!r} is not a duration; write e.g. "30s", "5m" or "250ms"')
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise KumeoRuntimeError(f"{what} must be positive")
    return seconds


@dataclasses.dataclass(frozen=True)
class InvalidLine:
    """A line of a JSON-lines input that is not an event: its 1-based number, the reason and the text."""

    line: int
    reason: str
    text: str


def parse_json_lines(text: str) -> Iterator[tuple[int, Any] | InvalidLine]:
    """Each non-blank line of ``text`` as ``(line number, JSON object)``, or an :class:`InvalidLine`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        yield parse_line(line, number)


def parse_line(line: str, number: int, max_bytes: int | None = None) -> tuple[int, Any] | InvalidLine:
    """One JSON-lines line as ``(number, object)`` or an :class:`InvalidLine` saying why it is not an event.

    Strict JSON, as a worker reads it (:func:`envelope.loads`): ``NaN``/``Infinity``, numbers beyond a double and
    nesting past the decoder's limit are refused with what and where; so is an event over ``max_bytes`` (its text,
    or the compact JSON it would be published as), before it is decoded when its text alone is too large.
    """
    size = 0
    if max_bytes is not None:
        size = len(line.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            return InvalidLine(number, envelope.over_limit(size, max_bytes, "event"), line)
    try:
        value = envelope.loads(line)
    except envelope.NotJSON as exc:
        return InvalidLine(number, str(exc), line)
    except ValueError as exc:
        reason = f"invalid JSON: {getattr(exc, 'msg', exc)} (column {getattr(exc, 'colno', '?')})"
        return InvalidLine(number, reason, line)
    except Exception as exc:  # noqa: BLE001 - whatever else a hostile line makes the decoder raise
        return InvalidLine(number, f"cannot read the line: {type(exc).__name__}: {exc}", line)
    if not isinstance(value, dict):
        return InvalidLine(number, f"expected a JSON object, got {_json_type(value)}", line)
    # Re-encoded compactly, a line only grows through its numbers (``1e15`` is ``1000000000000000.0``: 4.5 times),
    # so a line under a fifth of the limit cannot pass it and is not encoded again to find out.
    if max_bytes is not None and size * _MAX_GROWTH > max_bytes:
        size = len(envelope.dumps(value))
        if size > max_bytes:
            return InvalidLine(number, envelope.over_limit(size, max_bytes, "event"), line)
    return number, value


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


async def publish_event(js: Any, subject: str, data: Any, *, event_id: str | None = None,
                        source: str = "source", timeout: float = 5.0) -> str:
    """Publish one new event on a source subject with its envelope and return its event id.

    ``Nats-Msg-Id`` is the event id, so publishing the same event twice within the stream's duplicate window
    stores it once.
    """
    event_id = event_id or envelope.new_event_id()
    headers = source_headers(event_id, source)
    await js.publish(subject, dumps(data), headers=headers, timeout=timeout)
    return event_id


def source_headers(event_id: str, source: str) -> dict[str, str]:
    """The envelope of an event entering a workflow: a new trace, the source as its producer, attempt 1."""
    return envelope.build_headers(event_id=event_id, agent=source, attempt=1,
                                  traceparent=envelope.next_traceparent(None, event_id), msg_id=event_id)


async def publish_dead_letter(js: Any, subject: str, *, event_id: str, producer: str, reason: str,
                              body: dict[str, Any], attempt: int = 1, traceparent: str | None = None,
                              timeout: float = 5.0) -> None:
    """Publish a dead letter: the reason in ``Kumeo-Error`` and in the body, which also holds what failed."""
    headers = envelope.build_headers(event_id=event_id, agent=producer, attempt=attempt,
                                     traceparent=envelope.next_traceparent(traceparent, event_id),
                                     msg_id=f"{event_id}:{producer}:dlq", error=reason)
    await js.publish(subject, dumps({"error": envelope.one_line(reason), **body}), headers=headers,
                     timeout=timeout)


class Adapter(abc.ABC):
    """One source or target of a workflow, run beside the agents (in `kumeo run`, or a gateway pod)."""

    #: "source" or "target"
    role: str = ""

    def __init__(self, workflow: WorkflowPlan, endpoint: EndpointPlan) -> None:
        self.workflow = workflow
        self.endpoint = endpoint
        #: (stream, durable) of the consumers this adapter reads with; `kumeo run` waits for them to drain.
        self.consumers: list[tuple[str, str]] = []

    @property
    def label(self) -> str:
        return f"{self.endpoint.kind} {self.role} {self.endpoint.address!r}"

    @property
    def finished(self) -> bool:
        """True when this adapter will produce nothing more on its own (a file read to its end)."""
        return True

    @abc.abstractmethod
    async def start(self, nc: Any) -> None:
        """Begin working on the NATS connection ``nc`` (shared by the adapters of a gateway)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop taking new work, finish what is in flight; safe to call twice."""
