"""The Plan: what a checked Spec means on NATS and Kubernetes, as plain data.

A Plan is computed by a pure function, serialises to JSON with sorted keys, and drives all three consumers: the
Pulumi components (`pulumi up`), `kumeo render` (files on disk) and the runtime (`kumeo run` and the pods). Stream
and consumer configs are kept as the dicts nats.py's ``StreamConfig.as_dict()``/``ConsumerConfig.as_dict()`` give
(the shapes `nats stream add --config` accepts), so every consumer of the Plan reuses nats.py's own types.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class StreamPlan:
    """One JetStream stream; ``config`` is ``StreamConfig.as_dict()``."""

    name: str
    role: str  # "internal" | "sources" | "targets"
    config: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ConsumerPlan:
    """One durable pull consumer; ``config`` is ``ConsumerConfig.as_dict()`` (durable_name, filter_subjects, …)."""

    stream: str
    durable: str
    agent: str
    config: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class KeyValuePlan:
    """One JetStream KV bucket the runtime needs (joins, review queue, LLM cache); ``config`` is KeyValueConfig."""

    bucket: str
    purpose: str  # "joins" | "reviews" | "llm-cache"
    config: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class RoutePlan:
    """A Router rule compiled to a subject: ``condition`` None is the default route."""

    condition: str | None
    subject: str
    destination: str  # "target:<address>" or an agent id


@dataclasses.dataclass(frozen=True)
class EndpointPlan:
    """A source or target as the runtime sees it."""

    kind: str  # NATS | HTTP | Kafka | MQTT | Timer | File
    address: str
    subject: str  # the NATS subject events enter on (sources) or are published to (targets)
    options: dict[str, Any]
    line: int | None = None
    name: str = ""  # the token used in `kumeo.<wf>.source.<name>` / `.target.<name>` (the id, else the position)
    stream: str | None = None  # the JetStream stream holding ``subject`` (None: not stored, e.g. Kafka)


@dataclasses.dataclass(frozen=True)
class NatsIdentity:
    """An agent's own NATS user and the subjects it may use, nothing more (see ``kumeo_iac.compile._security``).

    ``publish``/``subscribe`` are allow lists (sorted); the server denies everything else. ``inbox_prefix`` is the
    agent's private reply prefix: its pull requests, JetStream API replies and publish acks arrive there, and no
    other user may subscribe to it. The password is never in the Plan: compile names only the Secret holding it.
    """

    user: str
    publish: list[str]
    subscribe: list[str]
    inbox_prefix: str


@dataclasses.dataclass(frozen=True)
class AgentPlan:
    """Everything one agent's worker needs, and what its Kubernetes objects are made from."""

    id: str
    kind: str
    inputs: dict[str, str]  # join part (or "" for a single input) → subject
    input_fields: dict[str, list[str]]  # join part → field path selected from that input's payload
    output_subject: str
    dead_letter_subject: str
    routes: list[RoutePlan]
    target_subjects: list[str]
    consumers: list[ConsumerPlan]
    settings: dict[str, Any]  # the agent's arguments as JSON (kind-specific), resolved against workflow blocks
    when: str | None
    timeout_seconds: float
    max_deliver: int
    backoff_seconds: list[float]
    fallback: dict[str, Any] | None  # {"agent": id} or {"value": …}
    files: list[str]  # model/network/rule files the agent reads (relative to the workflow file)
    image: str
    image_class: str  # base | ml | llm
    replicas: int
    max_replicas: int
    resources: dict[str, Any]  # {"requests": {...}, "limits": {...}}
    line: int | None = None
    #: Every resolved input, one entry per (part, subject): ``{"part", "subject", "field", "written", "stream"}``.
    #: ``inputs`` keeps one subject per part; an input written as ``source`` over two sources, an expression
    #: (``"a ?? b"``), a Router route or a fallback hand-off gives a part several subjects, listed here.
    input_bindings: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: The agent's NATS user and permissions (None in Plans written before identities existed).
    identity: NatsIdentity | None = None
    #: What the agent's kind declares (``kumeo_iac.spec.Agent``), copied here so the worker, `kumeo run`, the
    #: dashboard and the Kubernetes objects read the Plan, never kind names. ``handler`` is the ``"module:Class"``
    #: that runs the agent and ``handler_extra`` the pip extra its imports need; ``http_api`` the API it serves on
    #: the worker's HTTP port (``"review"``); ``uses_secrets`` whether its pod gets the platform's secrets.
    handler: str = ""
    handler_extra: str | None = None
    http_api: str | None = None
    uses_secrets: bool = False
    #: The URLs the agent connects to besides NATS, as its kind reads them from ``settings``
    #: (``Agent.egress_urls``: an LLM's model server, a review's webhooks); its NetworkPolicy lets the pod reach them.
    egress: list[str] = dataclasses.field(default_factory=list)

    @property
    def review_bucket(self) -> str | None:
        """The KV bucket the agent parks events in for review (a HumanReview agent), else None."""
        bucket = self.settings.get("review_bucket")
        return bucket if isinstance(bucket, str) else None


@dataclasses.dataclass(frozen=True)
class EdgePlan:
    """An edge workflow (``deployment: { profile: "edge" }``, see ``kumeo_iac.compile._edge``): every agent in one
    pod, on the pod's own nats-server, a leaf node of the central NATS (the hub).

    The workflow's streams, consumers and KV buckets live on that leaf (the edge process creates them);
    ``hub_streams`` are the streams a deployer creates on the central NATS instead: each *sources* the site's
    results from the leaf's JetStream domain, and catches up after the link was down.
    """

    domain: str  # the site's JetStream domain (its API is $JS.<domain>.API seen from the hub)
    hub: list[str]  # the hub's leafnode URLs
    credentials_secret: str  # the Secret holding the leaf's credentials file
    credentials_key: str
    storage: str  # size of the leaf's JetStream volume
    storage_class: str | None
    image: str  # the leaf container's image (nats-server on its PATH): the edge pod's own, unless leaf.image
    hub_streams: list[StreamPlan]
    server_config: str  # the leaf nats-server's configuration file (in the pod's ConfigMap)
    #: The Secret and key holding the CA certificate the hub's TLS certificate is signed by (``leaf.ca_secret``); None:
    #: the leaf trusts the system's roots only. Left out of the JSON when None, so edge Plans without it read and
    #: write as before.
    ca_secret: str | None = dataclasses.field(default=None, metadata={"omit_none": True})
    ca_key: str | None = dataclasses.field(default=None, metadata={"omit_none": True})


@dataclasses.dataclass(frozen=True)
class WorkflowPlan:
    """One workflow on one platform: its NATS objects, its agents and its Kubernetes objects."""

    name: str
    slug: str  # lower-case DNS-1123 form of the name, used in subjects and object names
    namespace: str
    nats_url: str
    sources: list[EndpointPlan]
    targets: list[EndpointPlan]
    streams: list[StreamPlan]
    key_values: list[KeyValuePlan]
    agents: list[AgentPlan]
    kubernetes: list[dict[str, Any]]  # every object as a plain dict, in apply order
    #: The NATS identity of the workflow's gateway (HTTP/Timer/File endpoints), when it has one and auth is on.
    gateway_identity: NatsIdentity | None = None
    #: The edge profile's leaf node and hub streams (None: the cluster profile). Left out of the JSON when None,
    #: so Plans of cluster workflows read and write as before.
    edge: EdgePlan | None = dataclasses.field(default=None, metadata={"omit_none": True})

    def agent(self, agent_id: str) -> AgentPlan:
        for a in self.agents:
            if a.id == agent_id:
                return a
        raise KeyError(agent_id)

    @property
    def consumers(self) -> list[ConsumerPlan]:
        return [c for a in self.agents for c in a.consumers]


@dataclasses.dataclass(frozen=True)
class Plan:
    """The whole program compiled: one WorkflowPlan per workflow (integrations already expanded)."""

    workflows: list[WorkflowPlan]

    def workflow(self, name: str) -> WorkflowPlan:
        for wf in self.workflows:
            if wf.name == name or wf.slug == name:
                return wf
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """Deterministic JSON: sorted keys, so the same Spec always gives the same bytes."""
        return json.dumps(self, default=_fields, indent=indent, sort_keys=True, ensure_ascii=False) + "\n"

    def to_document(self) -> str:
        """Deterministic JSON for people and diffs (what `kumeo render` writes): a workflow's fields one per line,
        and each item of a list field (an agent, a stream, a Kubernetes object…) on a line of its own, so a change
        to one agent changes one line. ``Plan.from_json`` reads it back."""
        dumps = functools.partial(json.dumps, default=_fields, sort_keys=True, ensure_ascii=False)
        workflows = [_fields(wf) for wf in self.workflows]
        lines = ["{", '  "workflows": [']
        for i, wf in enumerate(workflows):
            lines.append("    {")
            for j, key in enumerate(sorted(wf)):
                value, comma = wf[key], "," if j < len(wf) - 1 else ""
                if isinstance(value, list) and value:
                    lines.append(f"      {dumps(key)}: [")
                    lines += [f"        {dumps(v)}{',' if k < len(value) - 1 else ''}" for k, v in enumerate(value)]
                    lines.append(f"      ]{comma}")
                else:
                    lines.append(f"      {dumps(key)}: {dumps(value)}{comma}")
            lines.append("    }" + ("," if i < len(workflows) - 1 else ""))
        lines += ["  ]", "}"]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        workflows = []
        for wf in data["workflows"]:
            agents = []
            for a in wf["agents"]:
                agents.append(
                    AgentPlan(
                        **{
                            **(kind_declarations(a["kind"]) if "handler" not in a else {}),
                            **({"egress": kind_egress(a["kind"], a["settings"])} if "egress" not in a else {}),
                            **a,
                            "routes": [RoutePlan(**r) for r in a["routes"]],
                            "consumers": [ConsumerPlan(**c) for c in a["consumers"]],
                            "identity": NatsIdentity(**a["identity"]) if a.get("identity") else None,
                        }
                    )
                )
            workflows.append(
                WorkflowPlan(
                    **{
                        **wf,
                        "sources": [EndpointPlan(**s) for s in wf["sources"]],
                        "targets": [EndpointPlan(**t) for t in wf["targets"]],
                        "streams": [StreamPlan(**s) for s in wf["streams"]],
                        "key_values": [KeyValuePlan(**k) for k in wf["key_values"]],
                        "agents": agents,
                        "gateway_identity": (
                            NatsIdentity(**wf["gateway_identity"]) if wf.get("gateway_identity") else None
                        ),
                        "edge": _edge_plan(wf.get("edge")),
                    }
                )
            )
        return cls(workflows)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.from_dict(json.loads(text))


def _edge_plan(data: dict[str, Any] | None) -> EdgePlan | None:
    if not data:
        return None
    return EdgePlan(**{**data, "hub_streams": [StreamPlan(**s) for s in data["hub_streams"]]})


def kind_declarations(kind: str | type[Any]) -> dict[str, Any]:
    """The AgentPlan fields an agent kind declares (a kind class, or a registered kind's name: a Plan written before
    these fields existed gets its built-in kind's)."""
    from kumeo_iac.spec import AGENT_KIND_NAMES

    cls = AGENT_KIND_NAMES.get(kind) if isinstance(kind, str) else kind
    if cls is None:
        return {}
    return {"handler": cls.runtime_handler, "handler_extra": cls.runtime_extra, "http_api": cls.http_api,
            "uses_secrets": cls.uses_secrets}


def kind_egress(kind: str, settings: dict[str, Any]) -> list[str]:
    """``AgentPlan.egress`` of an agent of a registered kind with these settings (a Plan written before the field
    existed gets it on load)."""
    from kumeo_iac.spec import AGENT_KIND_NAMES

    cls = AGENT_KIND_NAMES.get(kind)
    return cls.egress_urls(settings) if cls is not None else []


def _fields(value: Any) -> dict[str, Any]:
    """A Plan dataclass as the dict of its fields (one level): ``json.dumps(default=_fields)`` serialises a Plan with
    the C encoder, without first copying it into dicts as ``dataclasses.asdict`` does. A field marked
    ``omit_none`` is left out while it is None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)
                if not (f.metadata.get("omit_none") and getattr(value, f.name) is None)}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
