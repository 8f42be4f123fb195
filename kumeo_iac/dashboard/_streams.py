"""Reading a JetStream stream the way an inspector needs it: message counts per subject, and the newest N messages
on one subject.

JetStream reads forwards only, so "the newest N on a subject" is found in two steps: the highest start sequence from
which at least N messages of the subject remain (a binary search; each probe is an ephemeral consumer whose
``num_pending`` answers "how many from here"), then a walk forwards with ``STREAM.MSG.GET next_by_subj``. That is
~2·log2(stream length) + N small API calls, whatever the stream's size, and it consumes nothing.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

__all__ = ["message_json", "recent_messages", "subject_counts"]

#: The most messages one request reads.
MAX_LIMIT = 500


async def subject_counts(js: Any, stream: str, subjects_filter: str = ">") -> dict[str, int]:
    """Messages currently held per subject in ``stream`` (empty when the stream does not exist)."""
    import nats.js.errors

    try:
        info = await js.stream_info(stream, subjects_filter=subjects_filter)
    except nats.js.errors.NotFoundError:
        return {}
    return {k: int(v) for k, v in (info.state.subjects or {}).items()}


async def _pending_from(js: Any, stream: str, subject: str, start: int) -> int:
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    config = ConsumerConfig(filter_subject=subject, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                            opt_start_seq=start, ack_policy=AckPolicy.NONE, inactive_threshold=10.0,
                            mem_storage=True, num_replicas=1)
    info = await js.add_consumer(stream, config)
    with contextlib.suppress(Exception):
        await js.delete_consumer(stream, info.name)
    return int(info.num_pending or 0)


async def recent_messages(js: Any, stream: str, subject: str, limit: int = 50) -> list[Any]:
    """The newest ``limit`` messages on ``subject`` (wildcards allowed) in ``stream``, oldest first.

    Each item is nats.py's ``RawStreamMsg`` (``seq``, ``subject``, ``headers``, ``data``, ``time``).
    """
    import nats.js.errors

    limit = max(1, min(int(limit), MAX_LIMIT))
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return []
    first, last = int(info.state.first_seq or 0), int(info.state.last_seq or 0)
    if not info.state.messages or last < first:
        return []
    start = first
    if await _pending_from(js, stream, subject, first) > limit:
        lo, hi = first, last  # invariant: pending(lo) > limit; find the largest start with pending >= limit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if await _pending_from(js, stream, subject, mid) >= limit:
                lo = mid
            else:
                hi = mid - 1
        start = lo
    out: list[Any] = []
    seq = start
    while len(out) < limit and seq <= last:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            break
        out.append(msg)
        seq = int(msg.seq) + 1
    return out[-limit:]


def message_json(msg: Any, stream: str) -> dict[str, Any]:
    """A stored message as the API shows it: sequence, subject, time, the envelope headers and the JSON body."""
    from kumeo_iac.runtime import envelope

    headers = dict(msg.headers or {})
    raw = msg.data or b""
    try:
        data: Any = json.loads(raw) if raw else None
    except ValueError:
        data = raw.decode("utf-8", "replace")
    out: dict[str, Any] = {
        "stream": stream,
        "seq": int(msg.seq),
        "subject": msg.subject,
        "time": msg.time.isoformat().replace("+00:00", "Z") if getattr(msg, "time", None) else None,
        "event_id": envelope.header(headers, envelope.EVENT_ID),
        "agent": envelope.header(headers, envelope.AGENT),
        "attempt": envelope.header(headers, envelope.ATTEMPT),
        "headers": headers,
        "data": data,
    }
    error = envelope.header(headers, envelope.ERROR)
    if error is None and isinstance(data, dict) and ".dlq." in f".{msg.subject}." and "error" in data:
        error = str(data["error"])
    if error is not None:
        out["error"] = error
    return out
