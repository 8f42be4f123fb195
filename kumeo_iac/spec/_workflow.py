"""Workflows, subworkflows, integrations and the program that holds them: the root of the Spec.

Building a workflow normalises it the same way whether it came from Python or from `.kumeo` text: agents without an
id get one derived from their kind, ``agent.output`` references take the agent's id, and references by kind
(``LLM.output``) become references by id when the kind is unique. That is what makes the two routes compare equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from pydantic import Field, model_validator

from kumeo_iac.spec._agents import AGENT_KINDS, Agent, AnyAgent, BayesianNetworkAgent
from kumeo_iac.spec._base import Ref, SpecNode
from kumeo_iac.spec._deployment import Deployment, Monitor
from kumeo_iac.spec._io import (
    CONTEXT_KINDS,
    TARGET_KINDS,
    AnyContext,
    AnySource,
    AnyTarget,
    BayesianNetworkContext,
    Context,
    Endpoint,
)
from kumeo_iac.spec._kinds import KindSpec

#: Workflow-level blocks agents may reference by path (``"models.fraud_detector"``).
RESOURCE_BLOCKS = ("models", "data", "schemas", "config")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _endpoint_as(kinds: Mapping[str, type[KindSpec]], value: Any) -> Any:
    """Let the DSL use one ``NATS(...)`` class for sources and targets: re-type it for the slot it sits in."""
    if isinstance(value, Endpoint) and value.kind_name in kinds and not isinstance(value, kinds[value.kind_name]):
        target_cls = kinds[value.kind_name]
        data = {
            name: getattr(value, name)
            for name in type(value).model_fields
            if name in target_cls.model_fields and name != "kind"
        }
        return target_cls(**data)
    return value


def _context_from(value: Any) -> Any:
    """``BayesianNetwork("risk.bn")`` in a context slot is the context, not the agent."""
    if isinstance(value, BayesianNetworkAgent):
        ctx = BayesianNetworkContext(
            id=value.id, path=value.network, span=value.span, arg_spans=dict(value.arg_spans)
        )
        if "network" in value.arg_spans:
            ctx.arg_spans["path"] = value.arg_spans["network"]
        return ctx
    return value


def iter_refs(value: Any) -> Iterator[Ref]:
    """Every Ref inside a value (objects, lists, nested)."""
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_refs(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from iter_refs(v)


def _normalise_agents(agents: Sequence[Agent]) -> None:
    taken = {a.id for a in agents if a.id}
    for agent in agents:
        if agent.id:
            continue
        base = agent.default_id()
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        agent.id = candidate
        taken.add(candidate)
    by_kind: dict[str, list[Agent]] = {}
    for agent in agents:
        by_kind.setdefault(agent.kind_name, []).append(agent)
    ids = {a.id for a in agents}
    for agent in agents:
        for name in type(agent).model_fields:
            if name in ("span", "arg_spans"):
                continue
            for ref in iter_refs(getattr(agent, name)):
                ref.bind()
                head = ref.head
                if head not in ids and head in AGENT_KINDS and len(by_kind.get(head, [])) == 1:
                    ref.path = (by_kind[head][0].id or head, *ref.path[1:])


def _normalise_contexts(contexts: Sequence[Context]) -> None:
    for ctx in contexts:
        if ctx.id:
            continue
        address = getattr(ctx, ctx.positional[0], None) if ctx.positional else None
        if isinstance(address, str) and address:
            stem = PurePosixPath(address).name.split(".")[0]
            ctx.id = stem or address
        else:
            ctx.id = ctx.kind_name.lower()


class WorkflowSpec(SpecNode):
    """One workflow: where events come from, the agents they pass through, where results go, how it deploys."""

    name: str
    sources: list[AnySource] = Field(default_factory=list)
    targets: list[AnyTarget] = Field(default_factory=list)
    contexts: list[AnyContext] = Field(default_factory=list)
    preprocessors: list[AnyAgent] = Field(default_factory=list)
    agents: list[AnyAgent] = Field(default_factory=list)
    monitor: Monitor | None = None
    deployment: Deployment | None = None
    nats: str | None = Field(default=None, description="The NATS URL agents connect to in the cluster.")
    models: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    schemas: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    #: Workflow-level blocks the language does not know, kept so validation can report them where they are.
    extra_blocks: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _accept_singular(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for singular, plural in (("source", "sources"), ("target", "targets"), ("context", "contexts")):
            if singular in data:
                if plural in data:
                    raise ValueError(f"give either {singular!r} or {plural!r}, not both")
                data[plural] = data.pop(singular)
        for plural in ("sources", "targets", "contexts", "preprocessors", "agents"):
            if plural in data:
                data[plural] = _as_list(data[plural])
        if "targets" in data:
            data["targets"] = [_endpoint_as(TARGET_KINDS, t) for t in data["targets"]]
        if "contexts" in data:
            data["contexts"] = [_endpoint_as(CONTEXT_KINDS, _context_from(c)) for c in data["contexts"]]
        return data

    @model_validator(mode="after")
    def _normalise(self) -> WorkflowSpec:
        _normalise_agents([*self.preprocessors, *self.agents])
        _normalise_contexts(self.contexts)
        return self

    def all_agents(self) -> list[Agent]:
        """Preprocessors then agents, in the order written."""
        return [*self.preprocessors, *self.agents]

    def agent(self, agent_id: str) -> Agent:
        for a in self.all_agents():
            if a.id == agent_id:
                return a
        raise KeyError(agent_id)

    def resource_block(self, name: str) -> dict[str, Any]:
        return getattr(self, name) if name in RESOURCE_BLOCKS else {}


class SubworkflowSpec(SpecNode):
    """A reusable group of agents with named inputs and outputs, wired into a workflow by an integration."""

    name: str
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    contexts: list[AnyContext] = Field(default_factory=list)
    agents: list[AnyAgent] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _accept_singular(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for singular, plural in (("input", "inputs"), ("output", "outputs"), ("context", "contexts")):
                if singular in data:
                    data[plural] = data.pop(singular)
            for plural in ("inputs", "outputs", "contexts", "agents"):
                if plural in data:
                    data[plural] = _as_list(data[plural])
            if "contexts" in data:
                data["contexts"] = [_endpoint_as(CONTEXT_KINDS, _context_from(c)) for c in data["contexts"]]
        return data

    @model_validator(mode="after")
    def _normalise(self) -> SubworkflowSpec:
        _normalise_agents(self.agents)
        _normalise_contexts(self.contexts)
        return self


class IntegrationSpec(SpecNode):
    """Uses a subworkflow inside a workflow: which workflow values feed its inputs and where its outputs go."""

    workflow: str
    use: str
    name: str | None = Field(default=None, description="An optional name (`integration Name { … }`).")
    input_mapping: dict[str, Any] = Field(default_factory=dict)
    output_mapping: dict[str, Any] = Field(default_factory=dict)


class Program(SpecNode):
    """Everything one `.kumeo` file (or one Python module) declares."""

    workflows: list[WorkflowSpec] = Field(default_factory=list)
    subworkflows: list[SubworkflowSpec] = Field(default_factory=list)
    integrations: list[IntegrationSpec] = Field(default_factory=list)
    path: str | None = Field(default=None, exclude=True, repr=False)

    @classmethod
    def meaningful_fields(cls) -> tuple[str, ...]:
        return ("workflows", "subworkflows", "integrations")

    def workflow(self, name: str) -> WorkflowSpec:
        for wf in self.workflows:
            if wf.name == name:
                return wf
        raise KeyError(name)

    def subworkflow(self, name: str) -> SubworkflowSpec:
        for sw in self.subworkflows:
            if sw.name == name:
                return sw
        raise KeyError(name)
