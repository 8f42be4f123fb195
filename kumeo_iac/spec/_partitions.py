"""An agent's ``partitions`` and ``partition_key``: how many ordered lanes it runs, and which event field picks one.

``partitions: 4, partition_key: "customer.id"``: every event with the same key goes to the same lane, and each
lane is processed by one worker in order, so events with one key are handled one after another, in input order.
One model of the rules, read by validation (which reports each problem at its argument) and by compile (which
raises the first one).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Final

__all__ = ["MAX_PARTITIONS", "PartitionProblem", "key_path", "partition_problems", "partition_scaling_conflict"]

#: The most partitions one agent may have: each is a pod, a durable consumer and a lane of the subject transform;
#: beyond this, a workflow is better split (and JetStream's per-stream consumer count stays small).
MAX_PARTITIONS: Final = 64

_SEGMENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclasses.dataclass(frozen=True)
class PartitionProblem:
    """One thing wrong with an agent's partitioning: which argument, and what."""

    argument: str  # "partitions" | "partition_key"
    message: str


def key_path(key: str) -> tuple[str, ...]:
    """``"customer.id"`` → ``("customer", "id")``; assumes :func:`partition_problems` found nothing."""
    return tuple(str(key).split("."))


def partition_problems(partitions: Any, key: Any) -> list[PartitionProblem]:
    """Everything wrong with an agent's ``partitions`` and ``partition_key`` (empty when both are absent or fine)."""
    problems: list[PartitionProblem] = []
    if partitions is None and key is None:
        return problems
    if partitions is None:
        problems.append(PartitionProblem(
            "partition_key", "is set without `partitions`; add `partitions: N` (2 or more lanes) or remove the key"))
    elif isinstance(partitions, bool) or not isinstance(partitions, int):
        problems.append(PartitionProblem(
            "partitions", f"must be a whole number from 1 to {MAX_PARTITIONS} (got {_show(partitions)})"))
    elif partitions < 1:
        problems.append(PartitionProblem("partitions", f"must be at least 1 (got {partitions})"))
    elif partitions > MAX_PARTITIONS:
        problems.append(PartitionProblem(
            "partitions", f"must be at most {MAX_PARTITIONS} (got {partitions}); for more lanes, split the workflow"))
    if key is None:
        if partitions is not None:
            problems.append(PartitionProblem(
                "partitions", "needs a `partition_key`: the event field whose value picks the lane "
                              "(e.g. `partition_key: \"customer.id\"`)"))
    elif not isinstance(key, str) or not all(_SEGMENT.match(p) for p in str(key).split(".")):
        problems.append(PartitionProblem(
            "partition_key", f"{_show(key)} is not a field path; write field names joined by dots, e.g. "
                             "\"customer.id\""))
    return problems


def partition_scaling_conflict(min_replicas: int | None, max_replicas: int | None) -> bool:
    """Whether a workflow's ``deployment.scaling`` would run a partitioned agent on more than one replica or under an
    autoscaler: both would put two workers on one lane (and break its order), so a partitioned agent refuses them."""
    low = min_replicas if min_replicas is not None else 1
    high = max_replicas if max_replicas is not None else max(low, 1)
    return low > 1 or high > low


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)
