"""Partition lanes: what changing a partitioned agent's N does, and the events its lanes still hold.

A partitioned agent (docs/deploy.md, "Partitioned agents") has a partition stream whose source rewrites each
keyed copy's subject with ``{{partition(N,1)}}``, and one durable lane consumer per partition. Two things would
break the promise that nothing is lost or reordered, and the providers guard both:

* **Changing N** (the transform's partition count) while lanes hold events: events already stored keep their old
  lane, new ones are hashed over the new N, so a key's older and newer events can be handled at the same time, and
  when N shrinks the events on the removed lanes have no pod. A preview warns (:func:`partition_change_warning`);
  ``up`` refuses the update while any lane has pending or unacknowledged events (:class:`UndrainedLanesError`).
* **Deleting a lane consumer** that still has pending or unacknowledged events: no pod would read them again.

A stream is a partition stream when its metadata says so (``kumeo.dev/role: partitions``); every consumer reading
one is a lane, and so is any consumer whose own metadata carries that role.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.jetstream import describe_error, find_stream

__all__ = [
    "LaneBacklog",
    "UndrainedLanesError",
    "lane_backlog",
    "partition_change",
    "partition_change_warning",
    "undrained_message",
]

ROLE_KEY = "kumeo.dev/role"
AGENT_KEY = "kumeo.dev/agent"
PARTITION_ROLE = "partitions"
DOCS = 'docs/deploy.md, "Partitioned agents" → "Changing N"'
_PARTITION = re.compile(r"\{\{\s*partition\(\s*(\d+)\s*,")


class UndrainedLanesError(KumeoDeployError):
    """``up`` would strand or reorder events: a lane consumer still holds pending or unacknowledged events."""


@dataclasses.dataclass(frozen=True)
class LaneBacklog:
    """What one lane consumer still holds: events not yet delivered and events delivered but not acknowledged."""

    durable: str
    pending: int
    ack_pending: int

    def describe(self) -> str:
        return f"{self.durable}: {self.pending} pending, {self.ack_pending} unacknowledged"


def partition_count(config: Any) -> int | None:
    """The N of ``{{partition(N,…)}}`` in a stream config's subject transforms (its sources' or its own)."""
    if not isinstance(config, Mapping):
        return None
    transforms: list[Any] = []
    own = config.get("subject_transform")
    if isinstance(own, Mapping):
        transforms.append(own)
    for source in config.get("sources") or []:
        if isinstance(source, Mapping):
            transforms.extend(t for t in source.get("subject_transforms") or [] if isinstance(t, Mapping))
    for transform in transforms:
        dest = transform.get("dest")
        match = _PARTITION.search(dest) if isinstance(dest, str) else None
        if match:
            return int(match.group(1))
    return None


def partition_change(olds: Any, news: Any) -> tuple[int, int] | None:
    """``(old N, new N)`` when going from config ``olds`` to ``news`` changes the partition count, else None."""
    old, new = partition_count(olds), partition_count(news)
    if old is None or new is None or old == new:
        return None
    return old, new


def agent_of(config: Any) -> str | None:
    metadata = config.get("metadata") if isinstance(config, Mapping) else None
    agent = metadata.get(AGENT_KEY) if isinstance(metadata, Mapping) else None
    return agent if isinstance(agent, str) and agent else None


def _stream_phrase(stream: str, agent: str | None) -> str:
    return f"stream {stream}" + (f" (partitioned agent {agent})" if agent else "")


def partition_change_warning(stream: str, agent: str | None, old: int, new: int) -> str:
    """What a preview says when a partition stream's N changes."""
    lost = (f" and the events still waiting on lanes {new}…{old - 1} would have no pod to read them"
            if new < old else "")
    return (
        f"{_stream_phrase(stream, agent)}: partitions {old} → {new}. Events already in the stream keep the lane "
        f"they were put in; new events are hashed over {new} lanes, so a key may move to another lane, its older and "
        f"newer events could then be handled at the same time (order across the change is not kept){lost}. "
        "`up` refuses this change while any lane consumer has pending or unacknowledged events: stop what feeds "
        f"the agent, let every lane drain, then apply ({DOCS})"
    )


def undrained_message(what: str, held: list[LaneBacklog]) -> str:
    """The refusal: what was to be done, which lanes hold how much, and what to do instead."""
    lanes = "; ".join(b.describe() for b in held)
    return (
        f"refusing to {what}: lane consumers still hold events ({lanes}), which would be stranded or handled out of "
        "order. Stop what feeds the agent, wait until every lane has 0 pending and 0 unacknowledged events "
        "(`nats consumer info <stream> <lane>`), then run `up` again; if those events may really go, purge them from "
        f"the partition stream yourself (`nats stream purge`) first ({DOCS})"
    )


def _is_partition_config(config: Any) -> bool:
    metadata = getattr(config, "metadata", None)
    return isinstance(metadata, Mapping) and metadata.get(ROLE_KEY) == PARTITION_ROLE


async def lane_backlog(js: JetStreamContext, stream: str, durable: str | None = None) -> list[LaneBacklog]:
    """The lane consumers of ``stream`` (only ``durable``, if given) that still hold events; [] when none does,
    or when the stream is gone."""
    info = await find_stream(js, stream)
    if info is None:
        return []
    partition_stream = _is_partition_config(info.config)
    try:
        if durable is not None:
            try:
                consumers = [await js.consumer_info(stream, durable)]
            except NotFoundError:
                return []  # a consumer already gone holds nothing
        else:
            consumers = await js.consumers_info(stream)
    except Exception as exc:
        raise KumeoDeployError(f"cannot read the lane consumers of stream {stream}: {describe_error(exc)}") from exc
    held = []
    for consumer in sorted(consumers, key=lambda c: c.name or ""):
        if not (partition_stream or _is_partition_config(consumer.config)):
            continue
        pending, ack_pending = int(consumer.num_pending or 0), int(consumer.num_ack_pending or 0)
        if pending or ack_pending:
            held.append(LaneBacklog(str(consumer.name), pending, ack_pending))
    return held
