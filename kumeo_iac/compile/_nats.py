"""JetStream configs, built with nats.py's own types and kept as the JSON dicts the server API speaks.

Consumer timing follows how nats-server (2.10+) treats ``backoff``: when a backoff list is given the server sets
``ack_wait = backoff[0]`` (pedantic mode rejects any other ack_wait), uses ``backoff[n]`` as the ack deadline of
delivery n+1, and requires ``max_deliver > len(backoff)``. So every entry must exceed the agent's timeout, or a
slow but healthy attempt would be redelivered while it is still running. Kumeo therefore writes

    ack_wait   = timeout + 10 s
    backoff[i] = ack_wait + (delay[i] - delay[0])      (i < max_deliver - 1; backoff[0] == ack_wait)

where ``delay`` is the agent's retry schedule (exponential from 1 s by default). The schedule itself is
``AgentPlan.backoff_seconds``: the runtime naks a failed attempt with ``delay[attempt-1]``; the consumer's backoff
only paces redeliveries after a worker died without answering.
"""

from __future__ import annotations

import json
from typing import Any

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    ReplayPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)

#: Margin added to an agent's timeout for its consumer's ack_wait.
ACK_WAIT_MARGIN_SECONDS = 10.0
#: JetStream dedupes on Nats-Msg-Id within this window (at least 2 minutes).
DUPLICATE_WINDOW_SECONDS = 120.0
MAX_ACK_PENDING = 1000


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Enums to their wire strings, so the Plan holds only JSON types and compares with what it reads back."""
    plain: dict[str, Any] = json.loads(json.dumps(data, sort_keys=True))
    return plain


def stream_config(name: str, subjects: list[str] | None = None, *, description: str, max_age: float, replicas: int,
                  metadata: dict[str, str], sources: list[StreamSource] | None = None) -> dict[str, Any]:
    """A Kumeo stream: file storage, limits retention dropping the oldest, the dedupe window, no rollups. A stream
    with ``sources`` and no ``subjects`` (a partition stream, an edge hub stream) only copies from other streams."""
    return _plain(
        StreamConfig(
            name=name,
            description=description,
            subjects=list(subjects) if subjects is not None else None,
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=max_age,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            allow_rollup_hdrs=False,
            sources=sources,
            metadata=dict(metadata),
        ).as_dict()
    )


def consumer_timing(timeout: float, delays: list[float]) -> tuple[float, list[float]]:
    """(ack_wait, server backoff list) for an agent's timeout and retry delays; see the module docstring."""
    ack_wait = round(timeout + ACK_WAIT_MARGIN_SECONDS, 3)
    if not delays:
        return ack_wait, []
    return ack_wait, [round(ack_wait + (d - delays[0]), 3) for d in delays]


def consumer_config(durable: str, filter_subjects: list[str], *, description: str, timeout: float,
                    max_deliver: int, delays: list[float], metadata: dict[str, str]) -> dict[str, Any]:
    ack_wait, backoff = consumer_timing(timeout, delays)
    return _plain(
        ConsumerConfig(
            durable_name=durable,
            description=description,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            backoff=backoff or None,
            filter_subjects=list(filter_subjects),
            replay_policy=ReplayPolicy.INSTANT,
            max_ack_pending=MAX_ACK_PENDING,
            metadata=dict(metadata),
        ).as_dict()
    )


def key_value_config(bucket: str, *, description: str, ttl: float | None, replicas: int) -> dict[str, Any]:
    return _plain(
        KeyValueConfig(
            bucket=bucket, description=description, history=1, ttl=ttl, storage=StorageType.FILE, replicas=replicas
        ).as_dict()
    )
