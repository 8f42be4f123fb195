"""The agent graph of a workflow: who feeds whom, where results leave, and in which order agents can run.

Validation uses it to report dangling references, cycles and unreachable agents; compile uses it to wire subjects
and consumers; `kumeo graph` draws it. Resolution is the one place that decides what a written input means:

* no ``input``               → the workflow's sources
* ``source`` / ``source.X``  → all sources / the source with address or id X
* ``"validated.tx"``         → the agent that declared ``output: "validated.tx"`` (``/field`` or ``.field`` selects)
* ``risk.output[.field]``    → the agent with id ``risk``
* ``LLM.output``             → the only agent of kind LLM (by-kind references, the seed dialect)
* ``input.X`` in a subworkflow → the subworkflow's declared input X
* ``"a ?? b"``               → an expression; every path it reads is resolved by the rules above
* ``{ a: x, b: y }``         → a join of several inputs by event id
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from kumeo_iac.errors import SourceSpan
from kumeo_iac.spec import AGENT_KINDS, Agent, Endpoint, Ref, Router, SubworkflowSpec, WorkflowSpec, span_of

NodeKind = Literal["source", "agent", "target", "input"]
EdgeKind = Literal["data", "route", "fallback"]

_EXPRESSION_HINT = re.compile(r"\?\?|\?\.|[\s()<>=!&|+*%,\[\]']")
_PATH_IN_TEXT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:(?:\?\.|\.)[A-Za-z_][A-Za-z0-9_]*)*")


@dataclasses.dataclass(frozen=True, slots=True)
class NodeRef:
    """A node of the graph: a source, an agent, a target, or a subworkflow input."""

    kind: NodeKind
    name: str

    @property
    def key(self) -> str:
        return self.name if self.kind == "agent" else f"{self.kind}:{self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class Binding:
    """One resolved input of an agent: which node feeds it and which field of that node's output it selects."""

    node: NodeRef
    part: str | None  # the join part name for multi-input agents
    field: tuple[str, ...]
    written: str
    span: SourceSpan | None


@dataclasses.dataclass(frozen=True, slots=True)
class Unresolved:
    """An input or destination that refers to nothing in the workflow."""

    agent: str
    written: str
    span: SourceSpan | None
    what: Literal["input", "route", "fallback", "output"]
    candidates: tuple[str, ...]
    ambiguous: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """One Router rule: events for which ``condition`` holds (``None`` = default) go to ``destination``."""

    condition: str | None
    destination: NodeRef
    written: str
    span: SourceSpan | None


@dataclasses.dataclass(frozen=True, slots=True)
class Edge:
    source: NodeRef
    target: NodeRef
    kind: EdgeKind


@dataclasses.dataclass
class AgentNode:
    agent: Agent
    inputs: list[Binding] = dataclasses.field(default_factory=list)
    routes: list[Route] = dataclasses.field(default_factory=list)
    targets: list[NodeRef] = dataclasses.field(default_factory=list)
    fallback: NodeRef | None = None

    @property
    def id(self) -> str:
        return self.agent.id or ""

    @property
    def is_join(self) -> bool:
        return any(b.part is not None for b in self.inputs)


@dataclasses.dataclass
class WorkflowGraph:
    """The resolved graph of one workflow or subworkflow."""

    name: str
    nodes: dict[str, AgentNode]
    sources: list[NodeRef]
    targets: list[NodeRef]
    edges: list[Edge]
    unresolved: list[Unresolved]

    def consumers_of(self, node: NodeRef) -> list[str]:
        return sorted({e.target.name for e in self.edges if e.source == node and e.target.kind == "agent"})

    def agent_edges(self) -> list[tuple[str, str]]:
        """Agent-to-agent edges that carry events (data and routes), for ordering and cycle checks."""
        return sorted(
            {
                (e.source.name, e.target.name)
                for e in self.edges
                if e.source.kind == "agent" and e.target.kind == "agent" and e.kind != "fallback"
            }
        )

    def cycles(self) -> list[list[str]]:
        """Every elementary cycle met by a depth-first search, each listed once from its smallest id.

        Iterative, so a chain of thousands of agents does not exhaust Python's recursion limit.
        """
        succ: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.agent_edges():
            succ.setdefault(a, []).append(b)
        found: set[tuple[str, ...]] = set()
        out: list[list[str]] = []
        color: dict[str, int] = {}
        for root in sorted(succ):
            if color.get(root):
                continue
            path: list[str] = [root]
            color[root] = 1
            work: list[Iterator[str]] = [iter(succ.get(root, []))]
            while work:
                nxt = next(work[-1], None)
                if nxt is None:
                    color[path.pop()] = 2
                    work.pop()
                    continue
                state = color.get(nxt, 0)
                if state == 0:
                    color[nxt] = 1
                    path.append(nxt)
                    work.append(iter(succ.get(nxt, [])))
                elif state == 1:
                    cyc = path[path.index(nxt):]
                    k = cyc.index(min(cyc))
                    norm = tuple(cyc[k:] + cyc[:k])
                    if norm not in found:
                        found.add(norm)
                        out.append(list(norm))
        return out

    def topological_order(self) -> list[str]:
        """Agents ordered so every agent comes after the agents feeding it (written order breaks ties).

        Agents on a cycle come last, in written order, so the function is total even on invalid graphs.
        """
        indeg = dict.fromkeys(self.nodes, 0)
        succ: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.agent_edges():
            if a in indeg and b in indeg:
                succ[a].append(b)
                indeg[b] += 1
        written = list(self.nodes)
        ready = [n for n in written if indeg[n] == 0]
        order: list[str] = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for m in succ[n]:
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
            ready.sort(key=written.index)
        order += [n for n in written if n not in order]
        return order

    def reachable_from_sources(self) -> set[str]:
        """Agents some source's events can reach (subworkflow inputs count as sources)."""
        succ: dict[str, set[str]] = {}
        for e in self.edges:
            if e.target.kind == "agent":
                succ.setdefault(e.source.key, set()).add(e.target.name)
        seen: set[str] = set()
        todo = [r.key for r in self.sources] + [e.source.key for e in self.edges if e.source.kind == "input"]
        while todo:
            k = todo.pop()
            for m in succ.get(k, ()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    def to_mermaid(self) -> str:
        lines = ["flowchart LR"]
        for ref in self.sources:
            lines.append(f'  {_mid(ref)}[/"{_esc(ref.name)}"/]')
        for node in self.nodes.values():
            lines.append(f'  {_mid(NodeRef("agent", node.id))}["{_esc(node.id)}<br/><i>{node.agent.kind_name}</i>"]')
        for ref in self.targets:
            lines.append(f'  {_mid(ref)}[\\"{_esc(ref.name)}"\\]')
        for e in self.edges:
            arrow = {"data": "-->", "route": "-.->", "fallback": "-. fallback .->"}[e.kind]
            lines.append(f"  {_mid(e.source)} {arrow} {_mid(e.target)}")
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        lines = [f'digraph "{_esc(self.name)}" {{', "  rankdir=LR;"]
        for ref in self.sources:
            lines.append(f'  "{_esc(ref.key)}" [label="{_esc(ref.name)}", shape=cds];')
        for node in self.nodes.values():
            lines.append(f'  "{_esc(node.id)}" [label="{_esc(node.id)}\\n{node.agent.kind_name}", shape=box];')
        for ref in self.targets:
            lines.append(f'  "{_esc(ref.key)}" [label="{_esc(ref.name)}", shape=house];')
        for e in self.edges:
            style = {"data": "", "route": " [style=dashed]", "fallback": ' [style=dotted, label="fallback"]'}[e.kind]
            lines.append(f'  "{_esc(e.source.key)}" -> "{_esc(e.target.key)}"{style};')
        lines.append("}")
        return "\n".join(lines) + "\n"


def _mid(ref: NodeRef) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{ref.kind}_{ref.name}")


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def endpoint_names(endpoint: Endpoint) -> tuple[str, ...]:
    """The names a source or target can be referred to by: its address and its id (possibly none)."""
    names = [endpoint.address]
    if endpoint.id:
        names.append(endpoint.id)
    return tuple(n for n in names if n)


def _endpoint_node(kind: NodeKind, endpoint: Endpoint, index: int) -> NodeRef:
    # An endpoint missing its address (reported by validation) still needs a node name.
    names = endpoint_names(endpoint)
    return NodeRef(kind, names[0] if names else f"{endpoint.kind_name}#{index + 1}")


class Resolver:
    """Resolves written references against one workflow's agents, sources, targets and subworkflow inputs."""

    def __init__(self, name: str, agents: list[Agent], sources: list[Endpoint], targets: list[Endpoint],
                 inputs: list[str]) -> None:
        self.name = name
        self.agents = agents
        self.ids = {a.id: a for a in agents if a.id}
        self.channels: dict[str, Agent] = {}
        for a in agents:
            if a.output_channel:
                self.channels.setdefault(a.output_channel, a)
        self.by_kind: dict[str, list[Agent]] = {}
        for a in agents:
            self.by_kind.setdefault(a.kind_name, []).append(a)
        self.sources = sources
        self.targets = targets
        self.inputs = inputs
        self.source_refs = [_endpoint_node("source", s, i) for i, s in enumerate(sources)]
        self.target_refs = [_endpoint_node("target", t, i) for i, t in enumerate(targets)]

    def candidates(self) -> tuple[str, ...]:
        names = ["source", *self.ids, *(f"{i}.output" for i in self.ids), *self.channels]
        names += [f"source.{n}" for s in self.sources for n in endpoint_names(s)]
        names += [f"input.{i}" for i in self.inputs]
        return tuple(names)

    def target_candidates(self) -> tuple[str, ...]:
        return tuple(f"target.{n}" for t in self.targets for n in endpoint_names(t)) + tuple(self.ids)

    def resolve_input(self, text: str) -> tuple[list[tuple[NodeRef, tuple[str, ...]]], list[str]] | None:
        """Nodes a written input means, with the field selected; ``None`` if it means nothing.

        The second element lists agent kinds that were referred to ambiguously.
        """
        text = text.strip()
        if looks_like_expression(text):
            found: list[tuple[NodeRef, tuple[str, ...]]] = []
            ambiguous: list[str] = []
            for path in paths_in(text):
                one = self.resolve_input(path)
                if one is None:
                    return None
                found += one[0]
                ambiguous += one[1]
            return (found, ambiguous) if found else None
        if text in ("source", "sources"):
            return [(r, ()) for r in self.source_refs], []
        if text.startswith(("source.", "sources.")):
            rest = text.split(".", 1)[1]
            for s, ref in zip(self.sources, self.source_refs, strict=True):
                for n in endpoint_names(s):
                    if rest == n or rest.startswith((n + ".", n + "/")):
                        return [(ref, _split_field(rest[len(n):]))], []
            return None
        if text.startswith("input.") and self.inputs:
            name = text.split(".")[1]
            if name in self.inputs:
                return [(NodeRef("input", name), tuple(text.split(".")[2:]))], []
        for channel in sorted(self.channels, key=len, reverse=True):
            if text == channel or text.startswith((channel + "/", channel + ".")):
                return [(NodeRef("agent", self.channels[channel].id or ""), _split_field(text[len(channel):]))], []
        head, _, rest = text.partition(".")
        field = _split_field(rest)
        if field[:1] == ("output",):
            field = field[1:]
        if head in self.ids:
            return [(NodeRef("agent", head), field)], []
        if head in AGENT_KINDS and (rest == "output" or rest.startswith("output.")):
            agents = self.by_kind.get(head, [])
            if len(agents) == 1:
                return [(NodeRef("agent", agents[0].id or ""), field)], []
            if len(agents) > 1:
                return [], [head]
        return None

    def resolve_destination(self, text: str) -> NodeRef | None:
        text = text.strip()
        name = text
        if text.startswith("target."):
            name = text[len("target."):]
            for t, ref in zip(self.targets, self.target_refs, strict=True):
                if name in endpoint_names(t):
                    return ref
            return None
        if text in self.ids:
            return NodeRef("agent", text)
        for t, ref in zip(self.targets, self.target_refs, strict=True):
            if name in endpoint_names(t):
                return ref
        return None


def resolver_for(workflow: WorkflowSpec | SubworkflowSpec) -> Resolver:
    """The resolver of one workflow or subworkflow, for callers that need to resolve a single written text."""
    if isinstance(workflow, WorkflowSpec):
        return Resolver(workflow.name, workflow.all_agents(), list(workflow.sources), list(workflow.targets), [])
    return Resolver(workflow.name, list(workflow.agents), [], [], list(workflow.inputs))


def looks_like_expression(text: str) -> bool:
    """Whether a written input is an expression (``a ?? b``) rather than one reference."""
    return bool(_EXPRESSION_HINT.search(text))


_WORDS = frozenset({"true", "false", "null", "and", "or", "not", "in", "True", "False", "None"})


def paths_in(text: str) -> list[str]:
    """The dotted paths an expression-like input reads, quoted strings and keywords left out."""
    return [
        m.group(0).replace("?.", ".")
        for m in _PATH_IN_TEXT.finditer(_strip_quoted(text))
        if m.group(0) not in _WORDS
    ]


def _strip_quoted(text: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", " ", text)


def _split_field(rest: str) -> tuple[str, ...]:
    rest = rest.lstrip("./")
    return tuple(p for p in re.split(r"[./]", rest) if p) if rest else ()


def _written(value: Any) -> str:
    return str(value)  # a Ref's text is its path as written


def _router_rules(router: Router) -> Iterator[tuple[str | None, Any, SourceSpan | None]]:
    """(condition, destination, span) for each rule of a Router, in order; ``None`` condition means default."""
    rules = router.rules
    span = router.span_for("rules")
    if isinstance(rules, dict):
        for cond, dest in rules.items():
            condition = None if str(cond).strip() == "default" else str(cond)
            yield condition, dest, span_of(dest, span_of(cond, span))
    elif isinstance(rules, list):
        for rule in rules:
            if isinstance(rule, dict):
                cond = rule.get("when", rule.get("condition", rule.get("if")))
                dest = rule.get("to", rule.get("target", rule.get("then")))
                yield (None if cond in (None, "default") else str(cond)), dest, span_of(dest, span_of(cond, span))
    if router.default is not None:
        yield None, router.default, router.span_for("default")


def build_graph(workflow: WorkflowSpec | SubworkflowSpec) -> WorkflowGraph:
    """Resolve every reference of a workflow (or subworkflow) into nodes and edges; never raises."""
    resolver = resolver_for(workflow)
    agents = resolver.agents
    nodes: dict[str, AgentNode] = {}
    edges: list[Edge] = []
    unresolved: list[Unresolved] = []
    ref: NodeRef | None  # a resolved reference; None where resolving a destination fails
    for agent in agents:
        if not agent.id or agent.id in nodes:
            continue  # duplicates are validation's to report; the first one wins here
        node = AgentNode(agent)
        nodes[agent.id] = node
        me = NodeRef("agent", agent.id)
        for part, value in _input_parts(agent.input):
            if value is None:
                for ref in resolver.source_refs:
                    node.inputs.append(Binding(ref, part, (), "source", agent.span))
                    edges.append(Edge(ref, me, "data"))
                continue
            written = _written(value)
            span = span_of(value, agent.span_for("input")) if not isinstance(value, Ref) else (
                value.span or agent.span_for("input"))
            result = resolver.resolve_input(written)
            if result is None or result[1]:
                unresolved.append(Unresolved(agent.id, written, span, "input", resolver.candidates(),
                                             tuple(result[1]) if result else ()))
                continue
            for ref, field in result[0]:
                node.inputs.append(Binding(ref, part, field, written, span))
                edges.append(Edge(ref, me, "data"))
        if isinstance(agent, Router):
            for condition, dest, span in _router_rules(agent):
                if dest is None:
                    continue
                ref = resolver.resolve_destination(_written(dest))
                if ref is None:
                    unresolved.append(Unresolved(agent.id, _written(dest), span, "route",
                                                 resolver.target_candidates()))
                    continue
                node.routes.append(Route(condition, ref, _written(dest), span))
                edges.append(Edge(me, ref, "route"))
        if isinstance(agent.fallback, (str, Ref)) and not _looks_like_value(agent.fallback):
            ref = resolver.resolve_destination(_written(agent.fallback))
            if ref is not None and ref.kind == "agent":
                node.fallback = ref
                edges.append(Edge(me, ref, "fallback"))
        if agent.output_channel and agent.output_channel.startswith("target."):
            ref = resolver.resolve_destination(agent.output_channel)
            if ref is None:
                unresolved.append(Unresolved(agent.id, agent.output_channel, agent.span_for("output_channel"),
                                             "output", resolver.target_candidates()))
            else:
                node.targets.append(ref)
                edges.append(Edge(me, ref, "data"))
    # Sinks of the seed dialect: an agent nobody consumes, that routes nowhere and declares no output channel,
    # delivers to every target of the workflow.
    consumed = {b.node.name for n in nodes.values() for b in n.inputs if b.node.kind == "agent"}
    for node in nodes.values():
        if node.id in consumed or node.routes or node.targets or isinstance(node.agent, Router):
            continue
        if node.agent.output_channel:
            continue
        for ref in resolver.target_refs:
            node.targets.append(ref)
            edges.append(Edge(NodeRef("agent", node.id), ref, "data"))
    return WorkflowGraph(workflow.name, nodes, resolver.source_refs, resolver.target_refs, edges, unresolved)


def _looks_like_value(value: Any) -> bool:
    return isinstance(value, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", value)


def _input_parts(value: Any) -> Iterable[tuple[str | None, Any]]:
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, list):
        return [(str(i), v) for i, v in enumerate(value)]
    return [(None, value)]
