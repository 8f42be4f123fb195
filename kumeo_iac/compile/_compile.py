"""Spec → Plan: the pure, deterministic heart of Kumeo's deployment story.

``compile_program`` reads a checked Program and gives a Plan: subjects, JetStream streams/consumers/KV buckets,
images, resources and every Kubernetes object as a plain dict. It does no I/O (files are named, never read) and
gives the same bytes for the same input, so `kumeo render`, the Pulumi components and the runtime agree.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path, PurePosixPath
from typing import Any

from kumeo_iac._paths import data_roots, declared_roots, escapes, escapes_lexically
from kumeo_iac.compile import _kubernetes as k8s
from kumeo_iac.compile._edge import edge_objects, with_edge
from kumeo_iac.compile._integrations import expand_integrations
from kumeo_iac.compile._names import (
    Subjects,
    bucket_name,
    covers,
    dns_name,
    is_dns_label,
    is_token,
    minimal_subjects,
    overlap,
    slugify,
    snake,
    stream_name,
    token,
    valid_subject,
)
from kumeo_iac.compile._nats import consumer_config, key_value_config, stream_config
from kumeo_iac.compile._observability import observability_objects
from kumeo_iac.compile._partitions import (
    LANE_MAX_ACK_PENDING,
    Partitioning,
    durable_name,
    lane_filter,
    lane_pattern,
    partition_stream,
    partitioned_workload,
    with_keyed_publish,
)
from kumeo_iac.compile._partitions import stream_of as partition_stream_name
from kumeo_iac.compile._plan import (
    AgentPlan,
    ConsumerPlan,
    EndpointPlan,
    KeyValuePlan,
    Plan,
    RoutePlan,
    StreamPlan,
    WorkflowPlan,
    kind_declarations,
)
from kumeo_iac.compile._security import agent_identity, gateway_identity
from kumeo_iac.compile._settings import (
    DEFAULT_MAX_INPUT_BYTES,
    IMAGE_CLASS_KEYS,
    IMAGE_CLASS_RESOURCES,
    PlatformSettings,
    max_input_bytes,
)
from kumeo_iac.compile._slices import agent_plan, gateway_plan, plan_text
from kumeo_iac.compile._values import compile_error, duration_seconds, to_json
from kumeo_iac.errors import KumeoCompileError, SourceSpan
from kumeo_iac.graph import NodeRef, WorkflowGraph, build_graph
from kumeo_iac.spec import (
    FILE_EXTENSIONS,
    RESOURCE_BLOCKS,
    Agent,
    Endpoint,
    Program,
    Resources,
    WorkflowSpec,
    key_path,
    kubernetes_quantity,
    literal_secrets,
    partition_problems,
    partition_scaling_conflict,
    resolve,
    retry_policy,
    span_of,
)

DEFAULT_NATS_URL = "nats://nats:4222"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_JOIN_TIMEOUT_SECONDS = 300.0
DEFAULT_REVIEW_TTL_SECONDS = 7 * 24 * 3600.0
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
DEFAULT_IMAGE_NAMES = {"base": "agent-base", "ml": "ml-runtime", "llm": "llm-runtime"}
#: The state buckets compile knows the lifetime of (in this order in the Plan); others keep their entries.
_KNOWN_BUCKETS = ("reviews", "llm-cache")

_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")
_COMMON_FIELDS = {"span", "arg_spans", "extra_args", "kind", "id", "input", "output_channel", "when", "timeout",
                  "retry", "fallback", "partitions", "partition_key"}


def compile_program(
    program: Program, *, base_dir: Path | None = None, settings: PlatformSettings | None = None
) -> Plan:
    """Compile a checked Program into a Plan (one WorkflowPlan per workflow, integrations inlined).

    Pure and deterministic; raises :class:`KumeoCompileError` (with the workflow, agent and source span) for what
    cannot be planned, e.g. an unresolved reference — run validation first for the full list of problems.
    """
    if not isinstance(program, Program):
        raise compile_error(f"compile_program takes a Program, not {type(program).__name__}")
    settings = settings or PlatformSettings()
    try:
        workflows = expand_integrations(program)
        planners: list[_WorkflowPlanner] = []
        slugs: dict[str, str] = {}
        for wf in workflows:
            planner = _WorkflowPlanner(wf, settings, base_dir)
            if planner.slug in slugs:
                raise compile_error(
                    f"workflows {slugs[planner.slug]!r} and {wf.name!r} have the same slug {planner.slug!r}",
                    workflow=wf.name, span=wf.span, hint="rename one of them")
            slugs[planner.slug] = wf.name
            planners.append(planner)
        registry = _StreamRegistry()
        for planner in planners:
            planner.register_internal(registry)
        for planner in planners:
            planner.plan_sources(registry)
        for planner in planners:
            planner.plan_targets(registry)
        return Plan([planner.finish(registry) for planner in planners])
    except KumeoCompileError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a malformed Spec: never a traceback
        raise compile_error(f"cannot plan this program ({type(exc).__name__}: {exc})",
                            hint="run `kumeo check` on it first") from exc


@dataclasses.dataclass
class _Stream:
    name: str
    subjects: list[str]
    owner: str | None  # workflow slug, None for a stream the user manages


class _StreamRegistry:
    """Every stream of the Plan (and the user's existing ones), so no two capture the same subject."""

    def __init__(self) -> None:
        self.streams: list[_Stream] = []

    def find(self, subject: str) -> _Stream | None:
        for stream in self.streams:
            if any(covers(s, subject) for s in stream.subjects):
                return stream
        return None

    def clash(self, subject: str) -> tuple[_Stream, str] | None:
        for stream in self.streams:
            for s in stream.subjects:
                if overlap(s, subject):
                    return stream, s
        return None

    def add(self, stream: _Stream) -> None:
        for existing in self.streams:
            if existing.name == stream.name:
                existing.subjects = minimal_subjects(existing.subjects + stream.subjects)
                return
        self.streams.append(stream)


class _WorkflowPlanner:
    def __init__(self, wf: WorkflowSpec, settings: PlatformSettings, base_dir: Path | None) -> None:
        self.wf = wf
        self.settings = settings
        self.base_dir = base_dir
        self.slug = slugify(wf.name)
        self.subjects = Subjects(self.slug)
        self.graph: WorkflowGraph = build_graph(wf)
        self.streams: list[StreamPlan] = []
        self.deployment = wf.deployment
        self.partitions: dict[str, Partitioning] = {}  # filled by finish(), before the agents are planned
        if self.graph.unresolved:
            u = sorted(self.graph.unresolved, key=lambda u: _span_key(u.span))[0]
            what = {"input": "input", "route": "route destination", "fallback": "fallback", "output": "output"}
            hint = f"known: {', '.join(u.candidates[:8])}" if u.candidates else None
            if u.ambiguous:
                hint = f"several agents of kind {', '.join(u.ambiguous)}; refer to one by id"
            raise self.error(f"{what[u.what]} {u.written!r} refers to nothing in the workflow", agent=u.agent,
                             span=u.span, hint=hint)
        self.agent_dns: dict[str, str] = {}
        seen: dict[str, str] = {}
        for agent_id, node in self.graph.nodes.items():
            if not is_token(agent_id):
                raise self.error(f"agent id {agent_id!r} cannot be used in a NATS subject", agent=agent_id,
                                 span=node.agent.span, hint="use letters, digits, '_' and '-' only")
            dns = dns_name(agent_id, limit=40)
            if dns in seen:
                raise self.error(f"agents {seen[dns]!r} and {agent_id!r} give the same Kubernetes name {dns!r}",
                                 agent=agent_id, span=node.agent.span, hint="rename one of them")
            seen[dns] = agent_id
            self.agent_dns[agent_id] = dns
        self.namespace = settings.namespace or (self.deployment.namespace if self.deployment else None) or self.slug
        if not is_dns_label(self.namespace):
            raise self.error(f"namespace {self.namespace!r} is not a valid Kubernetes name",
                             hint="lower-case letters, digits and '-', at most 63 characters")
        self.nats_url = settings.nats_url or (str(wf.nats) if wf.nats else None) or DEFAULT_NATS_URL
        try:
            self.max_input_bytes = max_input_bytes(settings, self.deployment.extra if self.deployment else None)
        except ValueError as exc:
            raise self.error(str(exc), span=self.deployment.span if self.deployment else None) from None
        self.sources = [self._endpoint(e, i, source=True) for i, e in enumerate(wf.sources)]
        self.targets = [self._endpoint(e, i, source=False) for i, e in enumerate(wf.targets)]
        self.source_by_ref = {ref.key: ep for ref, ep in zip(self.graph.sources, self.sources, strict=True)}
        self.target_by_ref = {ref.key: ep for ref, ep in zip(self.graph.targets, self.targets, strict=True)}

    # -- helpers ---------------------------------------------------------------------------------------------

    def error(self, message: str, *, agent: str | None = None, span: SourceSpan | None = None,
              hint: str | None = None) -> KumeoCompileError:
        return compile_error(message, workflow=self.wf.name, agent=agent, span=span or self.wf.span, hint=hint)

    def _endpoint(self, e: Endpoint, index: int, *, source: bool) -> dict[str, Any]:
        name = token(e.id) if e.id else str(index)
        kind = e.kind_name
        options = to_json(e.options) if isinstance(e.options, dict) else ({} if e.options is None else
                                                                          {"value": to_json(e.options)})
        if source and kind in ("HTTP", "File") and self.max_input_bytes != DEFAULT_MAX_INPUT_BYTES:
            options.setdefault("max_input_bytes", self.max_input_bytes)  # the gateway reads it here
        address_field = e.positional[0] if e.positional else None
        for field in type(e).meaningful_fields():
            if field in ("id", "options", "kind", "extra_args", address_field):
                continue
            value = getattr(e, field)
            if value is not None:
                options[field] = to_json(value)
        if kind == "NATS":
            subject = str(e.address)
            if not valid_subject(subject, wildcards=source):
                raise self.error(f"{'source' if source else 'target'} subject {subject!r} is not a valid NATS "
                                 f"subject{'' if source else ' (targets take no wildcards)'}",
                                 span=e.span_for(address_field or "subject"))
            if overlap(subject, self.subjects.all):
                raise self.error(f"subject {subject!r} overlaps the workflow's internal subjects "
                                 f"{self.subjects.all!r}", span=e.span_for(address_field or "subject"),
                                 hint="choose a subject outside the kumeo.* namespace")
        else:
            subject = self.subjects.source(name) if source else self.subjects.target(name)
        return {"kind": kind, "address": str(e.address), "subject": subject, "options": options,
                "line": e.span.line if e.span else None, "name": name, "stream": None,
                "existing_stream": getattr(e, "stream", None) if source else None}

    # -- streams ---------------------------------------------------------------------------------------------

    def _stream(self, role: str | None, subjects: list[str], description: str) -> StreamPlan:
        name = stream_name(self.slug, role)
        config = stream_config(name, subjects, description=description, max_age=self.settings.max_age_seconds,
                               replicas=self.settings.stream_replicas,
                               metadata={"kumeo.dev/workflow": self.slug, "kumeo.dev/role": role or "internal"})
        return StreamPlan(name=name, role=role or "internal", config=config)

    def register_internal(self, registry: _StreamRegistry) -> None:
        clash = registry.clash(self.subjects.all)
        if clash:
            raise self.error(f"the workflow's subjects {self.subjects.all!r} overlap {clash[1]!r} of stream "
                             f"{clash[0].name}")
        plan = self._stream(None, [self.subjects.all], f"Kumeo workflow {self.wf.name}: agent outputs, routes, "
                                                       "dead letters and bridged endpoints")
        self.streams.append(plan)
        registry.add(_Stream(plan.name, [self.subjects.all], self.slug))

    def plan_sources(self, registry: _StreamRegistry) -> None:
        for ep in self.sources:
            if ep["kind"] == "NATS" and ep["existing_stream"]:
                registry.add(_Stream(str(ep["existing_stream"]), [ep["subject"]], None))
        own = []
        for subject in minimal_subjects([ep["subject"] for ep in self.sources
                                         if ep["kind"] == "NATS" and not ep["existing_stream"]]):
            if registry.find(subject):
                continue
            clash = registry.clash(subject)
            if clash:
                raise self.error(f"source subject {subject!r} overlaps {clash[1]!r} of stream {clash[0].name}; "
                                 "JetStream keeps a subject in one stream only",
                                 hint=f"point the source at that stream with stream: \"{clash[0].name}\"")
            own.append(subject)
        if own:
            plan = self._stream("sources", own, f"Kumeo workflow {self.wf.name}: source subjects")
            self.streams.append(plan)
            registry.add(_Stream(plan.name, own, self.slug))
        for ep in self.sources:
            stream = registry.find(ep["subject"])
            ep["stream"] = stream.name if stream else None

    def plan_targets(self, registry: _StreamRegistry) -> None:
        own = []
        for subject in minimal_subjects([ep["subject"] for ep in self.targets if ep["kind"] == "NATS"]):
            if not registry.find(subject):
                own.append(subject)
        if own:
            plan = self._stream("targets", own, f"Kumeo workflow {self.wf.name}: target subjects")
            self.streams.append(plan)
            registry.add(_Stream(plan.name, own, self.slug))
        for ep in self.targets:
            stream = registry.find(ep["subject"])
            ep["stream"] = stream.name if stream else None

    # -- agents ----------------------------------------------------------------------------------------------

    def finish(self, registry: _StreamRegistry) -> WorkflowPlan:
        order = self.graph.topological_order()
        routed_to: dict[str, list[tuple[str, str]]] = {}
        fallback_to: dict[str, list[tuple[str, str]]] = {}
        for node in self.graph.nodes.values():
            for route in node.routes:
                if route.destination.kind == "agent":
                    routed_to.setdefault(route.destination.name, []).append(
                        (node.id, self.subjects.route(node.id, route.destination.name)))
            if node.fallback is not None:
                fallback_to.setdefault(node.fallback.name, []).append((node.id, self.subjects.fallback(node.id)))

        self.partitions = self._partitionings(routed_to, fallback_to)
        for part in self.partitions.values():
            self.streams.append(partition_stream(
                self.slug, self.wf.name, part, source_stream=stream_name(self.slug),
                replicas=self.settings.stream_replicas, max_age=self.settings.max_age_seconds))
        buckets = self._key_values()
        bucket_names = {kv.purpose: kv.bucket for kv in buckets}
        agents = [self._agent(agent_id, registry, routed_to, fallback_to, bucket_names) for agent_id in order]
        agents = [dataclasses.replace(a, identity=with_keyed_publish(
            agent_identity(self.slug, a, buckets),
            [str(k["subject"]) for k in a.settings.get("keyed_outputs", [])])) for a in agents]
        plan = WorkflowPlan(
            name=self.wf.name,
            slug=self.slug,
            namespace=self.namespace,
            nats_url=self.nats_url,
            sources=[self._endpoint_plan(ep) for ep in self.sources],
            targets=[self._endpoint_plan(ep) for ep in self.targets],
            streams=sorted(self.streams, key=lambda s: s.name),
            key_values=buckets,
            agents=agents,
            kubernetes=[],
        )
        if k8s.needs_gateway(plan.sources, plan.targets):
            plan = dataclasses.replace(plan, gateway_identity=gateway_identity(self.slug, plan.sources, plan.targets))
        plan = with_edge(plan, self.wf, self.settings)  # the edge profile (kumeo_iac.compile._edge), if chosen
        return dataclasses.replace(plan, kubernetes=self._kubernetes(plan))

    def _partitionings(self, routed_to: dict[str, list[tuple[str, str]]],
                       fallback_to: dict[str, list[tuple[str, str]]]) -> dict[str, Partitioning]:
        """The partitioned agents (see kumeo_iac.compile._partitions), each fed by exactly one other agent."""
        out: dict[str, Partitioning] = {}
        scaling = self.deployment.scaling if self.deployment else None
        for agent_id, node in self.graph.nodes.items():
            agent = node.agent
            for problem in partition_problems(agent.partitions, agent.partition_key):
                raise self.error(f"{problem.argument} {problem.message}", agent=agent_id,
                                 span=agent.span_for(problem.argument))
            if agent.partitions is None or agent.partition_key is None:
                continue
            if scaling is not None and partition_scaling_conflict(scaling.min_replicas, scaling.max_replicas):
                raise self.error(f"agent {agent_id!r} has {agent.partitions} partitions (one pod each), but the "
                                 "workflow scales its agents with deployment.scaling", agent=agent_id,
                                 span=agent.span_for("partitions"),
                                 hint="a partitioned agent scales by its partitions: remove the scaling or the "
                                      "partitions")
            inputs = list(node.inputs)
            if (node.is_join or len(inputs) != 1 or inputs[0].node.kind != "agent" or routed_to.get(agent_id)
                    or fallback_to.get(agent_id)):
                raise self.error(f"partitioned agent {agent_id!r} must read exactly one other agent's output (its "
                                 "publisher puts the key on the subject), not a source, a join, a route or a fallback",
                                 agent=agent_id, span=agent.span_for("input"),
                                 hint="put a DataProcessor in front of it and make that its input")
            out[agent_id] = Partitioning(agent=agent_id, count=agent.partitions, key=key_path(agent.partition_key),
                                         upstream=inputs[0].node.name, field=tuple(inputs[0].field))
        return out

    @staticmethod
    def _endpoint_plan(ep: dict[str, Any]) -> EndpointPlan:
        return EndpointPlan(kind=ep["kind"], address=ep["address"], subject=ep["subject"], options=ep["options"],
                            line=ep["line"], name=ep["name"], stream=ep["stream"])

    def _key_values(self) -> list[KeyValuePlan]:
        out = []
        nodes = list(self.graph.nodes.values())
        replicas = self.settings.stream_replicas
        joins = [n for n in nodes if n.is_join]
        if joins:
            # Entries must outlive the longest join timeout so the runtime's sweep can dead-letter an
            # incomplete join before the bucket forgets it.
            join_ttl = 2 * max(self._join_timeout(n.agent) for n in joins)
            bucket = bucket_name(self.slug, "joins")
            out.append(KeyValuePlan(bucket, "joins", key_value_config(
                bucket, description=f"Kumeo {self.wf.name}: partial joins by event id", ttl=join_ttl,
                replicas=replicas)))
        # One bucket per purpose the workflow's agent kinds declare (``Agent.state_buckets``).
        users: dict[str, list[Agent]] = {}
        for n in nodes:
            for purpose in type(n.agent).state_buckets.values():
                users.setdefault(purpose, []).append(n.agent)
        for purpose in sorted(users, key=lambda p: (p not in _KNOWN_BUCKETS, _KNOWN_BUCKETS.index(p) if p in
                                                    _KNOWN_BUCKETS else 0, p)):
            bucket = bucket_name(self.slug, purpose.replace("-", "_"))
            description = f"Kumeo {self.wf.name}: {purpose} state of its agents"
            ttl: float | None = None
            if purpose == "reviews":
                # Twice the longest review timeout: a review must outlive its deadline and an escalation round.
                description = f"Kumeo {self.wf.name}: events waiting for human review"
                ttl = 2 * max(self._review_timeout(a) for a in users[purpose])
            elif purpose == "llm-cache":
                description, ttl = (f"Kumeo {self.wf.name}: LLM responses by prompt hash",
                                    self.settings.llm_cache_ttl_seconds)
            out.append(KeyValuePlan(bucket, purpose, key_value_config(
                bucket, description=description, ttl=ttl, replicas=replicas)))
        return out

    def _join_timeout(self, agent: Agent) -> float:
        value = None
        if isinstance(agent.config, dict):
            value = agent.config.get("join_timeout")
        value = agent.extra_args.get("join_timeout", value)
        if value is None:
            return DEFAULT_JOIN_TIMEOUT_SECONDS
        return duration_seconds(value, what="join_timeout", workflow=self.wf.name, agent=agent.id, span=agent.span)

    def _review_timeout(self, agent: Agent) -> float:
        value = agent.config.get("timeout") if isinstance(agent.config, dict) else None
        if value is None:
            return DEFAULT_REVIEW_TTL_SECONDS
        return duration_seconds(value, what="review timeout", workflow=self.wf.name, agent=agent.id,
                                span=agent.span_for("config"))

    def _subject_of(self, ref: NodeRef) -> str:
        if ref.kind == "agent":
            return self.subjects.output(ref.name)
        if ref.kind == "source":
            return str(self.source_by_ref[ref.key]["subject"])
        if ref.kind == "target":
            return str(self.target_by_ref[ref.key]["subject"])
        raise KeyError(ref.key)

    def _agent(self, agent_id: str, registry: _StreamRegistry, routed_to: dict[str, list[tuple[str, str]]],
               fallback_to: dict[str, list[tuple[str, str]]], buckets: dict[str, str]) -> AgentPlan:
        node = self.graph.nodes[agent_id]
        agent = node.agent
        handoffs = routed_to.get(agent_id, []) + fallback_to.get(agent_id, [])
        bindings: list[dict[str, Any]] = []
        for binding in node.inputs:
            if agent.input is None and handoffs and binding.node.kind == "source":
                continue  # an agent reached only by routes or fallbacks does not read the sources
            bindings.append({"part": binding.part or "", "subject": self._subject_of(binding.node),
                             "field": list(binding.field), "written": binding.written})
        for router_id, subject in routed_to.get(agent_id, []):
            bindings.append({"part": "", "subject": subject, "field": [], "written": f"route from {router_id}"})
        for failed_id, subject in fallback_to.get(agent_id, []):
            bindings.append({"part": "", "subject": subject, "field": [], "written": f"fallback of {failed_id}"})
        for b in bindings:
            stream = registry.find(b["subject"])
            if stream is None:
                raise self.error(f"no stream captures subject {b['subject']!r}", agent=agent_id, span=agent.span)
            b["stream"] = stream.name
        part = self.partitions.get(agent_id)
        if part is not None:  # the lanes replace the upstream's output as the input (one binding, checked above)
            bindings = [{**bindings[0], "subject": lane_pattern(self.slug, agent_id),
                         "stream": partition_stream_name(self.slug, agent_id)}]
        inputs: dict[str, str] = {}
        input_fields: dict[str, list[str]] = {}
        for b in bindings:
            if b["part"] not in inputs:
                inputs[b["part"]] = b["subject"]
                input_fields[b["part"]] = b["field"]

        timeout = DEFAULT_TIMEOUT_SECONDS if agent.timeout is None else duration_seconds(
            agent.timeout, what="timeout", workflow=self.wf.name, agent=agent_id, span=agent.span_for("timeout"))
        if timeout <= 0:
            raise self.error("timeout must be positive", agent=agent_id, span=agent.span_for("timeout"))
        attempts, delays = self._retry(agent)
        max_deliver = attempts + 1

        consumers = []
        by_stream: dict[str, list[str]] = {}
        for b in bindings:
            by_stream.setdefault(b["stream"], []).append(b["subject"])
        for stream_id in sorted(by_stream):
            owner = next((s.owner for s in registry.streams if s.name == stream_id), None)
            durable = agent_id if owner == self.slug else f"{snake(self.slug)}_{agent_id}"
            config = consumer_config(
                durable, minimal_subjects(by_stream[stream_id]),
                description=f"Kumeo {self.wf.name} agent {agent_id}", timeout=timeout, max_deliver=max_deliver,
                delays=delays, metadata={"kumeo.dev/workflow": self.slug, "kumeo.dev/agent": agent_id})
            consumers.append(ConsumerPlan(stream=stream_id, durable=durable, agent=agent_id, config=config))
        if part is not None:  # one durable per lane; worker i binds lane i's alone
            consumers = [ConsumerPlan(stream=c.stream, durable=durable_name(agent_id, lane), agent=agent_id,
                                      config={**c.config, "durable_name": durable_name(agent_id, lane),
                                              "filter_subjects": [lane_filter(self.slug, agent_id, lane)],
                                              # one event in flight per lane: a retried or redelivered event (its
                                              # worker died) is handled again before any later one of its keys
                                              "max_ack_pending": LANE_MAX_ACK_PENDING,
                                              "description": f"Kumeo {self.wf.name} agent {agent_id}, "
                                                             f"partition {lane} of {part.count}"})
                         for c in consumers for lane in range(part.count)]

        routes = []
        for route in node.routes:
            if route.destination.kind == "agent":
                routes.append(RoutePlan(route.condition, self.subjects.route(agent_id, route.destination.name),
                                        route.destination.name))
            else:
                ep = self.target_by_ref[route.destination.key]
                routes.append(RoutePlan(route.condition, ep["subject"], f"target:{ep['address']}"))
        target_subjects = list(dict.fromkeys(self._subject_of(t) for t in node.targets))

        fallback: dict[str, Any] | None = None
        if node.fallback is not None:
            fallback = {"agent": node.fallback.name, "subject": self.subjects.fallback(agent_id)}
        elif agent.fallback is not None:
            fallback = {"value": to_json(agent.fallback)}

        settings, files = self._settings(agent)
        if node.is_join:
            settings["join"] = {"bucket": buckets["joins"], "parts": sorted({b["part"] for b in bindings}),
                                "timeout_seconds": self._join_timeout(agent)}
        if self.max_input_bytes != DEFAULT_MAX_INPUT_BYTES:
            settings["max_input_bytes"] = self.max_input_bytes  # the worker reads it here
        kind = type(agent)
        for setting, purpose in kind.state_buckets.items():
            settings[setting] = buckets[purpose]
        image_class = kind.image_class
        replicas, max_replicas = self._replicas()
        if part is not None:
            settings["partition"] = part.settings(self.slug)
            replicas = max_replicas = part.count
        keyed = [p.keyed_output(self.slug) for p in self.partitions.values() if p.upstream == agent_id]
        if keyed:
            settings["keyed_outputs"] = sorted(keyed, key=lambda k: str(k["agent"]))
        return AgentPlan(
            id=agent_id,
            kind=agent.kind_name,
            inputs=inputs,
            input_fields=input_fields,
            output_subject=self.subjects.output(agent_id),
            dead_letter_subject=self.subjects.dead_letter(agent_id),
            routes=routes,
            target_subjects=target_subjects,
            consumers=consumers,
            settings=settings,
            when=str(agent.when) if agent.when is not None else None,
            timeout_seconds=timeout,
            max_deliver=max_deliver,
            backoff_seconds=delays,
            fallback=fallback,
            files=files,
            image=self._image(agent, image_class),
            image_class=image_class,
            replicas=replicas,
            max_replicas=max_replicas,
            resources=self._resources(agent),
            line=agent.span.line if agent.span else None,
            input_bindings=sorted(bindings, key=lambda b: (b["part"], b["subject"], b["written"])),
            egress=kind.egress_urls(settings),
            **kind_declarations(kind),
        )

    def _retry(self, agent: Agent) -> tuple[int, list[float]]:
        try:
            return retry_policy(agent.retry)
        except ValueError as exc:
            raise self.error(str(exc), agent=agent.id, span=agent.span_for("retry")) from None

    def _replicas(self) -> tuple[int, int]:
        scaling = self.deployment.scaling if self.deployment else None
        low = scaling.min_replicas if scaling and scaling.min_replicas is not None else 1
        high = scaling.max_replicas if scaling and scaling.max_replicas is not None else max(low, 1)
        if low < 1 or high < low:
            raise self.error(f"scaling needs 1 <= min_replicas <= max_replicas (got {low} and {high})",
                             span=self.deployment.span if self.deployment else None)
        return low, high

    # -- resources and images --------------------------------------------------------------------------------

    def _resource_chain(self, agent: Agent) -> list[Resources]:
        table = self.deployment.resources if self.deployment else {}
        keys = [agent.id or ""]
        if type(agent).image_class in IMAGE_CLASS_RESOURCES:
            keys.append(IMAGE_CLASS_RESOURCES[type(agent).image_class])
        keys.append("default")
        return [table[k] for k in keys if k in table]

    def _resources(self, agent: Agent) -> dict[str, Any]:
        chain = self._resource_chain(agent)
        requests = dict(DEFAULT_RESOURCES["requests"])
        limits: dict[str, str | int] = dict(DEFAULT_RESOURCES["limits"])

        def first(attr: str) -> tuple[Any, Resources | None]:
            for r in chain:
                if getattr(r, attr) is not None:
                    return getattr(r, attr), r
            return None, None

        for attr in ("cpu", "memory"):
            value, owner = first(attr)
            if value is None:
                continue
            quantity = kubernetes_quantity(value)
            if quantity is None:
                raise self.error(f"{attr} {value!r} is not a Kubernetes quantity", agent=agent.id,
                                 span=owner.span_for(attr) if owner else None, hint='write e.g. "500m", "1Gi"')
            requests[attr] = limits[attr] = quantity
        gpu, _ = first("gpu")
        gpus = (1 if gpu else 0) if isinstance(gpu, bool) else int(gpu or 0)
        if gpus > 0:
            limits["nvidia.com/gpu"] = gpus
        return {"requests": requests, "limits": limits}

    def _image(self, agent: Agent | None, image_class: str) -> str:
        """The image of an agent, or with ``agent`` None of the workflow's gateway (``runtime_images["gateway"]``,
        else the base image)."""
        agent_id = agent.id if agent is not None else k8s.GATEWAY
        overrides = self.settings.runtime_images
        image: str | None = overrides.get(agent_id or "") or overrides.get(image_class)
        base_images = self.deployment.base_images if self.deployment else {}
        span = None
        if image is None and agent is not None:
            chain = self._resource_chain(agent)
            table = self.deployment.resources if self.deployment else {}
            for r in chain:
                if r.image is not None and (image_class == "base" or r is not table.get("default")):
                    image, span = str(r.image), r.span_for("image")
                    break
        if image is None:
            for key in IMAGE_CLASS_KEYS[image_class]:
                if key in base_images:
                    image = str(base_images[key])
                    break
        if image is None:
            image = self.settings.images.get(image_class) or (
                f"{self.settings.image_registry}/{DEFAULT_IMAGE_NAMES[image_class]}:{self.settings.image_tag}")
        if image.startswith("base_images."):
            key = image.split(".", 1)[1]
            if key not in base_images:
                raise self.error(f"image {image!r} names no entry of deployment.base_images", agent=agent_id,
                                 span=span, hint=f"entries: {', '.join(sorted(base_images)) or 'none'}")
            image = str(base_images[key])
        image = self._interpolate(image, agent=agent_id, span=span)
        if not image or any(c.isspace() for c in image):
            raise self.error(f"image {image!r} is not a valid image reference", agent=agent_id, span=span)
        return image

    def _interpolate(self, text: str, *, agent: str | None, span: SourceSpan | None) -> str:
        registry = self.deployment.registry if self.deployment else None

        def lookup(expr: str) -> str:
            name, _, default = expr.partition(":-")
            name = name.strip()
            if name.startswith("env."):
                value = self.settings.env.get(name[4:])
                if value is None and not _:
                    raise self.error(f"{text!r} needs environment value {name[4:]!r}", agent=agent, span=span,
                                     hint="pass it in PlatformSettings.env")
                return value if value is not None else default
            path = name.split(".")
            if path[:2] == ["deployment", "registry"]:
                path = path[2:]
            elif path[:1] == ["registry"]:
                path = path[1:]
            else:
                raise self.error(f"cannot resolve ${{{name}}} in {text!r}", agent=agent, span=span)
            found: Any = registry
            for part in path:
                found = found.get(part) if isinstance(found, dict) else None
            if isinstance(found, dict) and "url" in found:
                found = found["url"]
            if found is None:
                if _:
                    return default
                raise self.error(f"cannot resolve ${{{name}}} in {text!r}", agent=agent, span=span,
                                 hint="define it under deployment.registry")
            return str(found)

        for _ in range(10):  # innermost placeholders first; a few rounds settle nested defaults
            new = _PLACEHOLDER.sub(lambda m: lookup(m.group(1)), text)
            if new == text:
                break
            text = new
        return text

    # -- settings --------------------------------------------------------------------------------------------

    def _settings(self, agent: Agent) -> tuple[dict[str, Any], list[str]]:
        files: list[str] = []
        out: dict[str, Any] = {}
        for name in type(agent).meaningful_fields():
            if name in _COMMON_FIELDS:
                continue
            value = getattr(agent, name)
            if value is None:
                continue
            span = agent.span_for(name)
            already = len(files)
            self._settings_field(agent, name, value, span, files, out)
            self._refuse_escapes(files[already:], agent, name, span_of(value, span))
        # Expressions read the workflow's `config` block as `config`; the agent's own `config:` stays apart.
        if self.wf.config and "config." in _text_of(agent):
            out["workflow_config"] = to_json(self.wf.config)
        if isinstance(agent.extra_args.get("lookups"), dict):  # set by an inlined integration
            out["lookups"] = to_json(agent.extra_args["lookups"])
        self._refuse_secrets(out, agent)
        return out, sorted(set(files))

    def _settings_field(self, agent: Agent, name: str, value: Any, span: SourceSpan | None, files: list[str],
                        out: dict[str, Any]) -> None:
        if name == "model":
            out[name] = self._file_value(self._resolve(value, agent, span, strict=True, what=name), files)
        elif name == "output_schema":
            resolved = self._resolve(value, agent, span, strict=True, what=name)
            out[name] = self._file_value(resolved, files) if isinstance(resolved, str) else self._nested(
                resolved, agent, files)
        elif name == "config":
            resolved = self._resolve(value, agent, span, strict=True, what=name) if isinstance(value, str) else value
            out[name] = self._file_value(resolved, files) if isinstance(resolved, str) and _looks_like_file(
                resolved) else self._nested(resolved, agent, files)
        elif name == "context":
            items = value if isinstance(value, list) else [value]
            resolved_items = [self._context(v, agent, span, files) for v in items]
            out[name] = resolved_items if isinstance(value, list) else resolved_items[0]
        elif name in type(agent).file_arguments and isinstance(value, str):
            out[name] = self._file_value(self._resolve(value, agent, span, strict=True, what=name), files)
        else:
            out[name] = to_json(value)

    def _refuse_escapes(self, files: list[str], agent: Agent, name: str, span: SourceSpan | None) -> None:
        """Refuse a file outside the workflow's folder and its data roots (absolute, ``..``, symlink out)."""
        roots = declared_roots([self.wf])
        for file in files:
            if not file or "${" in file or "://" in file or "{{" in file:
                continue
            if self.base_dir is not None:
                outside = escapes(file, self.base_dir, data_roots([self.wf], self.base_dir)) is not None
            else:
                outside = escapes_lexically(file, roots)
            if outside:
                where = self.base_dir.resolve() if self.base_dir is not None else "of the workflow"
                raise self.error(f"{name} path {file!r} leaves the workflow's folder {where}", agent=agent.id,
                                 span=span, hint="keep the file under it (or declare a data root: "
                                                 "`deployment: { storage: { data_root: \"…\" } }`)")

    def _resolve(self, value: Any, agent: Agent, span: SourceSpan | None, *, strict: bool,
                 what: str = "a value") -> Any:
        """``"models.x"`` → the `models` entry ``x`` (deeper paths walk into it); other values unchanged. A
        reference naming nothing is an error when ``strict`` (validation reports the same problem, in the same
        words), else kept as written."""
        if not isinstance(value, str):
            return value
        resolution = resolve(self.wf, value)
        if resolution.ref is None:
            return value
        if resolution.problem is not None:
            if not strict:
                return value
            raise self.error(f"{what} {resolution.problem.message}", agent=agent.id, span=span,
                             hint="run `kumeo check`: it reports the same problem at its line")
        return to_json(resolution.value)

    def _file_value(self, value: Any, files: list[str]) -> Any:
        if isinstance(value, str):
            files.append(self._relative(value))
            return {"file": self._relative(value)}
        value = to_json(value)
        if isinstance(value, dict) and isinstance(value.get("file"), str):
            value["file"] = self._relative(value["file"])
            files.append(value["file"])
        return value

    def _nested(self, value: Any, agent: Agent, files: list[str]) -> Any:
        """Resolve ``"<block>.<entry>"`` strings inside an object where they resolve; keep every other value."""
        if isinstance(value, dict):
            return {str(k): self._nested(v, agent, files) for k, v in value.items()}
        if isinstance(value, list):
            return [self._nested(v, agent, files) for v in value]
        if isinstance(value, str):
            resolved = self._resolve(value, agent, None, strict=False)
            if resolved is not value and str(resolved) != str(value):
                if isinstance(resolved, str) and _looks_like_file(resolved):
                    files.append(self._relative(resolved))
                    return self._relative(resolved)
                if isinstance(resolved, dict) and isinstance(resolved.get("file"), str):
                    return self._file_value(resolved, files)
                return resolved
            return str(value)
        return to_json(value)

    def _context(self, value: Any, agent: Agent, span: SourceSpan | None, files: list[str]) -> Any:
        if isinstance(value, str):
            for ctx in self.wf.contexts:
                if ctx.id == value:
                    data = to_json(ctx)
                    path = getattr(ctx, "path", None)
                    if isinstance(path, str):
                        data["path"] = self._relative(path)
                        files.append(data["path"])
                    return data
            if value.strip().startswith("data."):
                resolved = self._resolve(value, agent, span, strict=True, what="context")
                name = value.strip().split(".", 2)[1]
                if isinstance(resolved, str):
                    files.append(self._relative(resolved))
                    return {"data": name, "file": self._relative(resolved)}
                entry = self._file_value(resolved, files)
                return {"data": name, **entry} if isinstance(entry, dict) else {"data": name, "value": entry}
        return to_json(value)

    def _relative(self, path: str) -> str:
        text = str(path)
        if self.base_dir is not None and PurePosixPath(text).is_absolute():
            try:
                return Path(text).relative_to(self.base_dir).as_posix()
            except ValueError:
                return text
        return PurePosixPath(text).as_posix()

    def _refuse_secrets(self, value: Any, agent: Agent) -> None:
        for path in literal_secrets(value):
            raise self.error(f"argument {str(path[-1])!r} holds a literal secret, which would end up in a ConfigMap",
                             agent=agent.id, span=agent.span,
                             hint="keep API keys in a Kubernetes Secret (PlatformSettings.secrets) or write "
                                  "${env.NAME}")

    # -- kubernetes ------------------------------------------------------------------------------------------

    def _refuse_cluster_unsupported(self) -> None:
        """No pod runs Kafka or MQTT endpoints: a gateway with one would exit at start and crash-loop, so a Plan
        for a cluster refuses the workflow at the first of them (by line), saying what to do instead."""
        found = [(role, e) for role, endpoints in (("source", self.wf.sources), ("target", self.wf.targets))
                 for e in endpoints if e.kind_name not in k8s.CLUSTER_ENDPOINT_KINDS]
        if not found:
            return
        role, e = min(found, key=lambda f: _span_key(f[1].span))
        raise self.error(
            f"{e.kind_name} {role}s cannot be deployed: no pod runs them yet ({role} {str(e.address)!r}), and the "
            "workflow's gateway would refuse to start", span=e.span,
            hint=f"bridge the topic to a NATS subject (NATS serves MQTT clients itself; Kafka through a connector) "
                 f"and use a NATS {role}")

    def _kubernetes(self, plan: WorkflowPlan) -> list[dict[str, Any]]:
        if self.settings.for_cluster:
            self._refuse_cluster_unsupported()
        storage = self.deployment.storage if self.deployment else {}
        files_mount = self.settings.files_mount_path or storage.get("models") or k8s.DEFAULT_FILES_DIR
        if plan.edge is not None:  # every agent in one pod (kumeo_iac.compile._edge)
            return k8s.apply_order([*edge_objects(plan, self.settings, files_mount_path=files_mount),
                                    *observability_objects(plan, self.settings)])
        scaling = self.deployment.scaling if self.deployment else None
        target_cpu = scaling.target_cpu if scaling and scaling.target_cpu else self.settings.default_target_cpu
        lag = scaling.target_lag if scaling and scaling.target_lag else self.settings.default_lag_threshold
        targets = {ep.subject: ep for ep in plan.targets}
        objects = k8s.shared_agent_objects(slug=self.slug, namespace=self.namespace, nats_url=self.nats_url,
                                           agents=plan.agents, targets=targets, settings=self.settings)
        for agent in plan.agents:
            dns = self.agent_dns[agent.id]
            workload = k8s.agent_objects(
                slug=self.slug, namespace=self.namespace, nats_url=self.nats_url, agent=agent, agent_dns=dns,
                agent_plan_json=self._own_plan(agent_plan(plan, agent), agent.id),
                targets=targets, settings=self.settings, files_mount_path=files_mount)
            if agent.id in self.partitions:
                workload = [partitioned_workload(o, service_name=dns_name(self.slug, k8s.SHARED_METRICS))
                            if o["kind"] == "Deployment" else o for o in workload]
            objects += workload
            if agent.max_replicas > agent.replicas:  # an autoscaler with nothing to scale only adds an object
                objects.append(k8s.autoscaler(
                    slug=self.slug, namespace=self.namespace, nats_url=self.nats_url, agent=agent, agent_dns=dns,
                    settings=self.settings, target_cpu=target_cpu, lag_threshold=lag))
        if k8s.needs_gateway(plan.sources, plan.targets):
            clash = [a for a, dns in self.agent_dns.items() if dns == k8s.GATEWAY]
            if clash:
                raise self.error(f"agent {clash[0]!r} has the Kubernetes name of the workflow's gateway "
                                 f"({self.slug}-{k8s.GATEWAY}), which runs its HTTP/Timer/File endpoints",
                                 agent=clash[0], hint="rename the agent")
            objects += k8s.gateway_objects(
                slug=self.slug, namespace=self.namespace, nats_url=self.nats_url, workflow_name=self.wf.name,
                sources=plan.sources, targets=plan.targets, image=self._image(None, "base"),
                settings=self.settings, gateway_plan_json=self._own_plan(gateway_plan(plan), None),
                identity=plan.gateway_identity)
        objects += observability_objects(plan, self.settings)
        return k8s.apply_order(objects)

    def _own_plan(self, part: WorkflowPlan, agent_id: str | None) -> str:
        """A pod's own Plan as its environment carries it; refused when it would not fit there."""
        text = plan_text(part)
        size = len(text.encode("utf-8"))
        if size > k8s.PLAN_ENV_LIMIT:
            what = "its own Plan" if agent_id else "the gateway's Plan (its sources and targets)"
            raise self.error(
                f"{what} is {size // 1024} KiB, more than the {k8s.PLAN_ENV_LIMIT // 1024} KiB a pod's environment "
                "can carry", agent=agent_id, span=self.graph.nodes[agent_id].agent.span if agent_id else None,
                hint="move large prompts, rule tables or inline data into files the agent reads (they are mounted "
                     "from the files ConfigMap or volume)" if agent_id else "split the workflow's endpoints")
        return text


def _span_key(span: SourceSpan | None) -> tuple[str, int, int]:
    return (span.path, span.line, span.column) if span else ("", 0, 0)


def _looks_like_file(text: str) -> bool:
    if not text or any(c.isspace() for c in text) or "://" in text:
        return False
    suffix = PurePosixPath(text).suffix.lstrip(".").lower()
    return suffix in FILE_EXTENSIONS


def _text_of(agent: Agent) -> str:
    return str(to_json({n: getattr(agent, n) for n in type(agent).meaningful_fields()}))


__all__ = ["DEFAULT_NATS_URL", "RESOURCE_BLOCKS", "compile_program"]
