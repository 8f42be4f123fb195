"""Partitioned agents on NATS: the keyed hand-off, the partition stream with its subject transform, the lanes.

An agent P with ``partitions: N`` and ``partition_key: k`` is compiled to JetStream's deterministic subject
partitioning (nats-server 2.10+), laid out so that nothing else in the workflow changes:

* Its upstream agent U publishes its output as always (``kumeo.<wf>.U.out``) and, for P, a keyed copy on
  ``kumeo.<wf>.P.in.<key token>``: the token is a hash of the key's value in U's output (``_`` when the event has
  no key), so any value fits in one subject token.
* A stream ``KUMEO_<WF>_<P>_PARTITIONS`` with no subjects of its own *sources* those copies from the workflow's
  stream with the transform ``kumeo.<wf>.P.in.*`` → ``kumeo.<wf>.P.p.{{partition(N,1)}}.{{wildcard(1)}}``: the server
  hashes the key token into lane 0…N-1, so the same key always lands in the same lane, and a source keeps order.
* One durable consumer per lane, ``P_p<i>`` filtering ``kumeo.<wf>.P.p.<i>.*``; worker i (the StatefulSet pod
  with ordinal i, or local process i) binds only lane i's durable and handles its events one at a time, so the
  events of one key are processed in input order.

The keyed copy costs one more stored message per event; it keeps U's own output subject (and everything reading
it: other agents, targets, ``kumeo run``'s summary) exactly as it was.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Final

from nats.js.api import StreamSource, SubjectTransform

from kumeo_iac.compile._names import Subjects, stream_name
from kumeo_iac.compile._nats import stream_config
from kumeo_iac.compile._plan import NatsIdentity, StreamPlan

__all__ = [
    "LANE_MAX_ACK_PENDING",
    "PARTITION_ENV",
    "PARTITION_ROLE",
    "POD_INDEX_LABEL",
    "Partitioning",
    "durable_name",
    "keyed_subject",
    "lane_filter",
    "lane_pattern",
    "partition_stream",
    "partitioned_workload",
    "stream_of",
    "with_keyed_publish",
]

#: The role of a partition stream in the Plan (``StreamPlan.role``).
PARTITION_ROLE: Final = "partitions"
#: Unacknowledged events one lane's durable hands out at a time. One: JetStream redelivers an unacknowledged event
#: only after its ack wait, so with more in flight a NAKed event, or the events of a worker that died, would come
#: back after later events of the same key. The price is one round trip per event per lane; lanes add throughput.
LANE_MAX_ACK_PENDING: Final = 1
#: The environment variable telling a worker which lane it consumes (its StatefulSet ordinal, or local process).
PARTITION_ENV: Final = "KUMEO_PARTITION"
#: The label Kubernetes (1.28+) puts on each StatefulSet pod with its ordinal; the downward API hands it to the pod.
POD_INDEX_LABEL: Final = "apps.kubernetes.io/pod-index"


@dataclasses.dataclass(frozen=True)
class Partitioning:
    """How one partitioned agent is fed: its lanes, its key and the upstream agent that publishes the keyed copy."""

    agent: str
    count: int
    key: tuple[str, ...]  # the key's path in the agent's input
    upstream: str  # the agent whose output feeds it
    field: tuple[str, ...]  # the part of the upstream's output that is the input (usually empty: all of it)

    def settings(self, slug: str) -> dict[str, Any]:
        """What the partitioned agent's worker reads (``AgentPlan.settings["partition"]``)."""
        return {"count": self.count, "key": list(self.key), "upstream": self.upstream,
                "keyed_subject": keyed_subject(slug, self.agent), "stream": stream_of(slug, self.agent)}

    def keyed_output(self, slug: str) -> dict[str, Any]:
        """What the upstream's worker reads (one entry of ``AgentPlan.settings["keyed_outputs"]``): where the copy
        goes and the key's path in the upstream's own output."""
        return {"agent": self.agent, "subject": keyed_subject(slug, self.agent), "key": [*self.field, *self.key]}


def keyed_subject(slug: str, agent: str) -> str:
    """The prefix the upstream publishes the keyed copies under; the key token is appended as one more token."""
    return f"{Subjects(slug).prefix}.{agent}.in"


def lane_pattern(slug: str, agent: str) -> str:
    """Every lane's subjects (``kumeo.<wf>.<agent>.p.*.*``), the agent's input subject in its Plan."""
    return f"{Subjects(slug).prefix}.{agent}.p.*.*"


def lane_filter(slug: str, agent: str, lane: int) -> str:
    """Lane ``lane``'s subjects: the filter of its durable consumer."""
    return f"{Subjects(slug).prefix}.{agent}.p.{lane}.*"


def durable_name(agent: str, lane: int) -> str:
    return f"{agent}_p{lane}"


def stream_of(slug: str, agent: str) -> str:
    return stream_name(slug, f"{agent.replace('-', '_')}_{PARTITION_ROLE}")


def partition_stream(slug: str, workflow_name: str, part: Partitioning, *, source_stream: str, max_age: float,
                     replicas: int) -> StreamPlan:
    """The agent's partition stream: a copy of its keyed hand-off, each message's subject rewritten to its lane."""
    name = stream_of(slug, part.agent)
    transform = SubjectTransform(
        src=f"{keyed_subject(slug, part.agent)}.*",
        dest=f"{Subjects(slug).prefix}.{part.agent}.p.{{{{partition({part.count},1)}}}}.{{{{wildcard(1)}}}}")
    config = stream_config(
        name,
        description=f"Kumeo {workflow_name}: the {part.count} lanes of agent {part.agent}, by {'.'.join(part.key)}",
        max_age=max_age, replicas=replicas,
        sources=[StreamSource(name=source_stream, subject_transforms=[transform])],
        metadata={"kumeo.dev/workflow": slug, "kumeo.dev/role": PARTITION_ROLE, "kumeo.dev/agent": part.agent,
                  "kumeo.dev/partitions": str(part.count)})
    return StreamPlan(name=name, role=PARTITION_ROLE, config=config)


def with_keyed_publish(identity: NatsIdentity | None, subjects: list[str]) -> NatsIdentity | None:
    """An upstream agent's identity, also allowed to publish the keyed copies (``<keyed subject>.*``)."""
    if identity is None or not subjects:
        return identity
    publish = sorted({*identity.publish, *(f"{s}.*" for s in subjects)})
    return dataclasses.replace(identity, publish=publish)


def partitioned_workload(deployment: dict[str, Any], *, service_name: str) -> dict[str, Any]:
    """A partitioned agent's StatefulSet, made from the Deployment it would otherwise get.

    The pod with ordinal i consumes lane i: the stable ordinal is why a StatefulSet (a Deployment's pods have
    random names, and two could claim one lane). ``KUMEO_PARTITION`` comes from the pod-index label through the
    downward API (the worker falls back to the ordinal at the end of its hostname). Pods start in parallel (lanes
    are independent) and roll one at a time, highest ordinal first; the pod template (with the files checksum the
    deployer stamps on it) is the Deployment's, so a change rolls the lanes the same way. ``service_name`` is the
    workflow's headless metrics Service, which already selects every agent pod: it gives each pod its DNS name
    without one more object per agent.
    """
    workload = copy.deepcopy(deployment)
    workload["kind"] = "StatefulSet"
    spec = workload["spec"]
    spec.pop("strategy", None)
    spec["serviceName"] = service_name
    spec["podManagementPolicy"] = "Parallel"
    spec["updateStrategy"] = {"type": "RollingUpdate"}
    for container in spec["template"]["spec"]["containers"]:
        container["env"] = [*container.get("env", []), {
            "name": PARTITION_ENV,
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{POD_INDEX_LABEL}']"}},
        }]
    return workload
