"""Semantic checks of a parsed program: everything that parses but does not make sense, reported all at once.

:func:`validate` is pure: it takes a :class:`~kumeo_iac.spec.Program` and returns every
:class:`~kumeo_iac.errors.Diagnostic` it finds, sorted by file, line and column, each pointing at the exact place
(``PATH:LINE:COL``) and saying what is wrong and what to do, with a did-you-mean where a name was misspelt.
:func:`check_file` and :func:`load` add the file handling the CLI and Python users need.

Files a workflow refers to (models, networks, decision tables, rule files, wasm modules) that do not exist, and
references to a workflow-level block that the file does not declare at all (``"models.x"`` with no ``models``
block: an external registry may provide it), are warnings here, because ``kumeo check`` is also used while a
project is being put together; ``strict_files=True`` (what ``render``, ``run`` and ``up`` use) makes them errors.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from kumeo_iac._names import (
    Subjects,
    covers,
    dns_name,
    is_dns_label,
    is_token,
    minimal_subjects,
    overlap,
    slugify,
    snake,
    valid_subject,
)
from kumeo_iac._paths import data_roots, declared_roots, escapes, escapes_lexically
from kumeo_iac.errors import (
    Diagnostic,
    KumeoError,
    KumeoExpressionError,
    KumeoValidationError,
    Severity,
    SourceSpan,
    sort_diagnostics,
)
from kumeo_iac.graph import WorkflowGraph, build_graph, looks_like_expression, paths_in, resolver_for
from kumeo_iac.spec import (
    DURATION_HINT,
    Agent,
    BayesianNetworkContext,
    Call,
    Deployment,
    KindProblem,
    KindSpec,
    KnowledgeBase,
    NoSettings,
    Problem,
    Program,
    Ref,
    SubworkflowSpec,
    WorkflowSpec,
    block_ref,
    edge_problems,
    is_edge,
    kubernetes_quantity,
    literal_secrets,
    parse_duration,
    partition_problems,
    partition_scaling_conflict,
    plain,
    problems_for_type,
    problems_in,
    resolve,
    retry_problems,
    span_of,
)
from kumeo_iac.spec import did_you_mean as _did_you_mean

__all__ = ["WORKFLOW_BLOCKS", "check_file", "check_program", "dedupe", "load", "validate"]

#: Every block a workflow may contain (the singular spellings are accepted for lists).
WORKFLOW_BLOCKS = (
    "source",
    "sources",
    "target",
    "targets",
    "context",
    "contexts",
    "preprocessors",
    "agents",
    "monitor",
    "deployment",
    "nats",
    "models",
    "data",
    "schemas",
    "config",
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Agent fields that are not settings (compile keeps them out of the agent's settings).
_COMMON_AGENT_FIELDS = frozenset({"extra_args", "kind", "id", "input", "output_channel", "when", "timeout", "retry",
                                  "fallback", "partitions", "partition_key"})


# -- public API ---------------------------------------------------------------------------------------------------


def validate(program: Program, *, base_dir: Path | None = None, strict_files: bool = False) -> list[Diagnostic]:
    """Every problem of a program, sorted by position; an empty list means the program is valid.

    ``base_dir`` is where relative file paths are looked up (default: the directory of ``program.path``; without
    either, files are not checked). ``strict_files`` turns missing files and absent workflow-level blocks from
    warnings into errors.
    """
    if base_dir is None and program.path:
        base_dir = Path(program.path).parent
    checker = _Checker(program, base_dir, strict_files)
    checker.run()
    return sort_diagnostics(dedupe(checker.diagnostics))


def check_program(program: Program, *, base_dir: Path | None = None, strict_files: bool = False) -> Program:
    """Return the program unchanged if it is valid; raise :class:`KumeoValidationError` listing every error."""
    diagnostics = validate(program, base_dir=base_dir, strict_files=strict_files)
    if any(d.is_error for d in diagnostics):
        raise KumeoValidationError(diagnostics)
    return program


def check_file(path: str | Path, *, strict_files: bool = False) -> list[Diagnostic]:
    """Parse and validate one `.kumeo` file; syntax errors, unreadable files and bad bytes become diagnostics."""
    from kumeo_iac.lang import parse_file

    path = Path(path)
    try:
        result = parse_file(path)
    except KumeoError as exc:
        return sort_diagnostics(_diagnostics_of(exc, str(path)))
    diagnostics = list(result.diagnostics)
    if result.program is not None:
        diagnostics += validate(result.program, base_dir=path.parent, strict_files=strict_files)
    return sort_diagnostics(dedupe(diagnostics))


def load(path: str | Path, *, strict_files: bool = False) -> Program:
    """The same as :func:`kumeo_iac.load`, kept for callers that found it here: every entry point reads a workflow
    through that one function."""
    from kumeo_iac._load import load as load_workflow

    return load_workflow(path, strict_files=strict_files)


def _diagnostics_of(exc: KumeoError, path: str) -> list[Diagnostic]:
    """The diagnostics a Kumeo error carries, with a file position even when the error had none."""
    found = list(getattr(exc, "diagnostics", None) or [])
    if not found:
        found = [Diagnostic(str(exc) or type(exc).__name__, None)]
    return [d if d.span is not None else Diagnostic(d.message, SourceSpan(path, 1, 1), d.severity, d.hint, d.code)
            for d in found]


def dedupe(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics with each problem once (two checks, or the importer and a check, may see the same one)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for d in diagnostics:
        key = (d.span, d.message, d.severity)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


# -- helpers ------------------------------------------------------------------------------------------------------


def _a(noun: str) -> str:
    """``noun`` with the article a sentence needs (``an engine``, ``a provider``, ``rules``)."""
    if noun.endswith("s") and not noun.endswith("ss"):
        return noun
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    start = text.rfind("\n", 0, index) + 1
    return line, index - start + 1


def _index_of(text: str, line: int, column: int) -> int:
    index = 0
    for _ in range(line - 1):
        nl = text.find("\n", index)
        if nl < 0:
            break
        index = nl + 1
    return min(index + max(column, 1) - 1, len(text))


def _text(value: Any) -> str | None:
    """The written text of a string or bare path, or ``None`` for anything else."""
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, str):
        return str(value)
    return None


def _is_duration(value: Any, *, positive: bool = False) -> bool:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return False
    return seconds > 0 or not positive


def _strings(value: Any) -> Iterator[Any]:
    """Every string inside a value (objects, lists, nested), as written (LocatedStr keeps its span)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _expression_module() -> Any:
    try:
        import kumeo_iac.expr as expr
    except ImportError:  # pragma: no cover - only while the expression package is being written
        return None
    return expr if hasattr(expr, "compile_expression") else None


# -- the checker --------------------------------------------------------------------------------------------------


class _Checker:
    """Walks one program once and collects diagnostics; never raises on a malformed Spec."""

    def __init__(self, program: Program, base_dir: Path | None, strict_files: bool) -> None:
        self.program = program
        self.base_dir = base_dir
        self.strict = strict_files
        self.diagnostics: list[Diagnostic] = []
        self.default_span = SourceSpan(program.path, 1, 1) if program.path else None
        self.expr = _expression_module()
        self._compiled: dict[str, Any] = {}
        self._expanded: dict[str, WorkflowSpec] = {}  # host workflows with their integrations inlined, by name

    # diagnostics

    def error(self, message: str, span: SourceSpan | None, code: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(message, span or self.default_span, Severity.ERROR, hint, code))

    def warning(self, message: str, span: SourceSpan | None, code: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(message, span or self.default_span, Severity.WARNING, hint, code))

    def soft(self, message: str, span: SourceSpan | None, code: str) -> None:
        """A warning while a project is put together, an error under ``strict_files``."""
        (self.error if self.strict else self.warning)(message, span, code)

    # program

    def run(self) -> None:
        p = self.program
        if not (p.workflows or p.subworkflows or p.integrations):
            self.warning("the file declares no workflow; add `workflow NAME { … }`", self.default_span, "empty")
        self._check_names()
        self.inlined = self._inlined_agents()
        hosts: dict[str, list[WorkflowSpec]] = {}
        for integration in p.integrations:
            wf = next((w for w in p.workflows if w.name == integration.workflow), None)
            if wf is not None:
                hosts.setdefault(str(integration.use), []).append(wf)
        for wf in p.workflows:
            self._check_workflow(wf)
        for sw in p.subworkflows:
            self._check_subworkflow(sw, hosts.get(sw.name, []))
        for integration in p.integrations:
            self._check_integration(integration)
        self._check_source_streams()

    def _inlined_agents(self) -> dict[str, list[tuple[str, Agent, Any]]]:
        """By host workflow: ``(id, subworkflow agent, integration)`` for each agent an integration inlines, with
        the id compile gives it (``<subworkflow>_<agent>``, ``<subworkflow>_2_<agent>`` for a second use)."""
        out: dict[str, list[tuple[str, Agent, Any]]] = {}
        used: dict[tuple[str, str], int] = {}
        for integration in self.program.integrations:
            wf = next((w for w in self.program.workflows if w.name == str(integration.workflow)), None)
            sw = next((s for s in self.program.subworkflows if s.name == str(integration.use)), None)
            if wf is None or sw is None:
                continue
            n = used[(wf.name, sw.name)] = used.get((wf.name, sw.name), 0) + 1
            prefix = snake(sw.name) if n == 1 else f"{snake(sw.name)}_{n}"
            out.setdefault(wf.name, []).extend((f"{prefix}_{a.id}", a, integration) for a in sw.agents if a.id)
        return out

    def _check_source_streams(self) -> None:
        """JetStream keeps a subject in one stream: the source subjects of the file's workflows must not partly
        overlap one another (one covering the other is fine, the later workflow reads the earlier one's stream)."""
        registered: list[tuple[str, str]] = [(Subjects(slugify(w.name)).all, w.name) for w in self.program.workflows]
        for wf in self.program.workflows:
            own: list[str] = []
            registered += [(str(e.address), wf.name) for e in wf.sources
                           if e.kind_name == "NATS" and getattr(e, "stream", None)]
            nats = [e for e in wf.sources if e.kind_name == "NATS" and not getattr(e, "stream", None)
                    and valid_subject(str(e.address), wildcards=True)]
            for subject in minimal_subjects([str(e.address) for e in nats]):
                if any(covers(s, subject) for s, _ in registered):
                    continue
                clash = next(((s, name) for s, name in registered if overlap(s, subject)), None)
                if clash is not None:
                    e = next(e for e in nats if str(e.address) == subject)
                    self.error(f"source subject '{subject}' of workflow '{wf.name}' overlaps '{clash[0]}' of workflow "
                               f"'{clash[1]}' without either covering the other; JetStream keeps a subject in one "
                               f"stream only — use the same subject, or one that covers the other",
                               span_of(e.address, e.span_for(e.positional[0] if e.positional else "subject")),
                               "bad-subject")
                    continue
                own.append(subject)
            registered += [(s, wf.name) for s in own]

    def _check_names(self) -> None:
        first: dict[str, tuple[str, SourceSpan | None]] = {}
        named: list[tuple[str, WorkflowSpec | SubworkflowSpec]] = [
            *(("workflow", w) for w in self.program.workflows),
            *(("subworkflow", s) for s in self.program.subworkflows)]
        for kind, node in named:
            span = node.span_for("name")
            if node.name in first:
                other_kind, other_span = first[node.name]
                where = f" on line {other_span.line}" if other_span else ""
                self.error(
                    f"{kind} name '{node.name}' is already used by the {other_kind}{where}; "
                    f"give each workflow and subworkflow its own name",
                    span, "duplicate-workflow",
                )
            else:
                first[node.name] = (kind, span)

    # workflows

    def _check_workflow(self, wf: WorkflowSpec) -> None:
        for name in wf.extra_blocks:
            span = wf.arg_spans.get(f"extra:{name}") or wf.arg_spans.get(name) or span_of(name, wf.span)
            self.error(
                f"workflow '{wf.name}' has no block '{name}'"
                + (_did_you_mean(name, WORKFLOW_BLOCKS) or f"; the blocks are {', '.join(_BLOCK_LIST)}"),
                span, "unknown-block",
            )
        for source in wf.sources:
            self._check_arguments(source, f"source {source.kind_name}('{source.address}')")
        for target in wf.targets:
            self._check_arguments(target, f"target {target.kind_name}('{target.address}')")
        self._check_contexts(wf.contexts)
        agents = wf.all_agents()
        self._check_agents(agents, wf.name)
        graph = build_graph(wf)
        if graph.unresolved:  # perhaps a name an integration's output mapping gives: check as compile sees it
            graph = build_graph(self._with_integrations(wf))
        self._check_graph(graph, agents, has_sources=bool(wf.sources), owner=wf, workflow_label="workflow",
                          inlined={new_id for new_id, _, _ in self.inlined.get(wf.name, [])})
        context_ids = [c.id for c in wf.contexts if c.id]
        ids = {a.id for a in agents if a.id}
        for agent in agents:
            self._check_agent_values(agent, [wf], context_ids, ids)
        self._check_deployment(wf)
        self._check_platform(wf, agents)
        for ctx in wf.contexts:
            self._check_context_files(ctx, [wf])

    def _with_integrations(self, wf: WorkflowSpec) -> WorkflowSpec:
        """The workflow as compile sees it, with the agents its integrations inline: a host agent may read a channel
        an integration's output mapping names. The workflow as written when an integration cannot be inlined (its
        errors are reported where it is written)."""
        integrations = [i for i in self.program.integrations if str(i.workflow) == wf.name]
        if not integrations:
            return wf
        if wf.name not in self._expanded:
            from kumeo_iac.compile import expand_integrations  # only then: compile costs ~0.2 s to import

            host = Program(workflows=[wf], subworkflows=self.program.subworkflows, integrations=integrations)
            try:
                self._expanded[wf.name] = expand_integrations(host)[0]
            except KumeoError:
                self._expanded[wf.name] = wf
        return self._expanded[wf.name]

    def _read_in_host(self, wf: WorkflowSpec, channel: str) -> bool:
        """Whether an agent of ``wf`` itself (not one an integration inlines) reads ``channel`` as an integration
        publishes it (an output mapping's name). ``target.…`` names a target, never such a channel."""
        channel = channel.strip()
        if channel.startswith("target."):
            return False
        expanded = self._with_integrations(wf)
        publisher = resolver_for(expanded).channels.get(channel) if expanded is not wf else None
        if publisher is None:
            return False
        own = {a.id for a in wf.all_agents()}
        graph = build_graph(expanded)
        return any(b.node.kind == "agent" and b.node.name == publisher.id
                   for agent_id, node in graph.nodes.items() if agent_id in own for b in node.inputs)

    def _check_platform(self, wf: WorkflowSpec, agents: list[Agent]) -> None:
        """What compile refuses about names, subjects, replicas, quantities and secrets, said at its place."""
        slug = slugify(wf.name)
        other = next((w for w in self.program.workflows if w is not wf and slugify(w.name) == slug
                      and w.name != wf.name), None)
        if other is not None and self.program.workflows.index(other) < self.program.workflows.index(wf):
            self.error(f"workflow '{wf.name}' gets the same name in subjects and Kubernetes objects ('{slug}') as "
                       f"workflow '{other.name}'; rename one of them", wf.span_for("name"), "duplicate-workflow")
        internal = Subjects(slug).all
        seen: dict[str, str] = {}
        taken = {a.id for a in agents if a.id}
        named = [(a.id, a, "") for a in agents if a.id]
        for new_id, agent, integration in getattr(self, "inlined", {}).get(wf.name, []):
            if new_id in taken:
                self.error(f"the integration of '{integration.use}' inlines agent '{agent.id}' as '{new_id}', an id "
                           f"workflow '{wf.name}' already uses; rename one of them", integration.span, "duplicate-id")
                continue
            taken.add(new_id)
            named.append((new_id, agent, f" (inlined from subworkflow '{integration.use}')"))
        for agent_id, agent, origin in named:
            if not is_token(agent_id):
                self.error(f"agent id '{agent_id}'{origin} cannot be part of a NATS subject; use letters, digits, '_' "
                           f"and '-' only", agent.span_for("id"), "bad-name")
                continue
            dns = dns_name(agent_id, limit=40)
            if dns in seen and seen[dns] != agent_id:
                self.error(f"agents '{seen[dns]}' and '{agent_id}'{origin} get the same Kubernetes name '{dns}'; "
                           f"rename one of them", agent.span_for("id"), "duplicate-id")
            seen.setdefault(dns, agent_id)
        for role, endpoints in (("source", wf.sources), ("target", wf.targets)):
            for e in endpoints:
                if e.kind_name != "NATS":
                    continue
                subject = str(e.address)
                span = span_of(e.address, e.span_for(e.positional[0] if e.positional else "subject"))
                if not valid_subject(subject, wildcards=role == "source"):
                    rule = "" if role == "source" else ", no wildcards in a target"
                    self.error(f"{role} subject '{subject}' is not a valid NATS subject (dot-separated tokens without "
                               f"spaces{rule})", span, "bad-subject")
                elif overlap(subject, internal):
                    self.error(f"{role} subject '{subject}' overlaps the workflow's own subjects '{internal}'; choose "
                               f"a subject outside the kumeo.* namespace", span, "bad-subject")
        deployment = wf.deployment
        if deployment is None:
            return
        if deployment.namespace is not None and not is_dns_label(str(deployment.namespace)):
            self.error(f"namespace '{deployment.namespace}' is not a valid Kubernetes name: lower-case letters, digits "
                       f"and '-', at most 63 characters", deployment.span_for("namespace"), "bad-value")
        scaling = deployment.scaling
        if scaling is not None:
            low = scaling.min_replicas if scaling.min_replicas is not None else 1
            high = scaling.max_replicas if scaling.max_replicas is not None else max(low, 1)
            if low < 1 or high < low:
                self.error(f"scaling needs 1 <= min_replicas <= max_replicas (got {low} and {high})",
                           scaling.span or deployment.span_for("scaling"), "bad-value")
        self._check_edge(deployment, agents)
        for name, resources in deployment.resources.items():
            for attr in ("cpu", "memory"):
                value = getattr(resources, attr)
                if value is not None and kubernetes_quantity(value) is None:
                    self.error(f"{attr} {_show(value)} of resources '{name}' is not a Kubernetes quantity; write "
                               f"e.g. \"500m\", \"1Gi\"", span_of(value, resources.span_for(attr)), "bad-value")

    def _check_edge(self, deployment: Deployment, agents: list[Agent]) -> None:
        """``profile``/``leaf`` (kumeo_iac.spec._edge); an edge workflow's agents share one pod, so no partitions."""
        for problem in edge_problems(deployment):
            head, _, rest = problem.argument.partition(".")
            node = deployment.leaf if rest and deployment.leaf is not None else deployment
            self.error(f"{problem.argument} {problem.message}", node.span_for(rest or head), "bad-deployment")
        if is_edge(deployment):
            for agent in agents:
                if agent.partitions is not None:
                    self.error(f"agent '{agent.id}' has partitions, but an edge workflow runs every agent in one "
                               "process; remove `partitions` or deploy with the cluster profile",
                               agent.span_for("partitions"), "bad-partitions")

    def _check_secrets(self, agent: Agent, label: str, hosts: list[WorkflowSpec]) -> None:
        """A credential written literally in an agent's settings would land in a ConfigMap: compile refuses it."""
        for field in type(agent).meaningful_fields():
            if field in _COMMON_AGENT_FIELDS:
                continue
            value = getattr(agent, field)
            values = [value]
            if isinstance(value, (str, Ref)):
                values = [r.value for r in (resolve(wf, str(value)) for wf in hosts) if r.resolved]
            for item in values:
                for path in literal_secrets(item, ()):
                    self.error(f"'{path[-1]}' in {field} of {label} is a credential written literally: it would "
                               f"end up in a ConfigMap; write \"${{env.NAME}}\" (the worker reads the variable) or "
                               f"keep it in a Kubernetes Secret",
                               span_at(value if item is value else item, path, agent.span_for(field)), "secret")

    def _check_subworkflow(self, sw: SubworkflowSpec, hosts: list[WorkflowSpec]) -> None:
        self._check_contexts(sw.contexts)
        self._check_agents(list(sw.agents), sw.name)
        graph = build_graph(sw)
        self._check_graph(graph, list(sw.agents), has_sources=bool(sw.inputs), owner=sw,
                          workflow_label="subworkflow")
        context_ids = [c.id for c in sw.contexts if c.id]
        ids = {a.id for a in sw.agents if a.id}
        for agent in sw.agents:
            self._check_agent_values(agent, hosts, context_ids, ids)
        for ctx in sw.contexts:
            self._check_context_files(ctx, hosts)

    def _check_integration(self, integration: Any) -> None:
        p = self.program
        workflow_names = [w.name for w in p.workflows]
        sub_names = [s.name for s in p.subworkflows]
        wf = next((w for w in p.workflows if w.name == str(integration.workflow)), None)
        sw = next((s for s in p.subworkflows if s.name == str(integration.use)), None)
        if wf is None:
            hint = _did_you_mean(str(integration.workflow), workflow_names)
            if not hint and str(integration.workflow) in sub_names:
                hint = "; it is a subworkflow: name it in `use:` and the workflow that hosts it in `workflow:`"
            self.error(
                f"integration names workflow '{integration.workflow}', which this file does not declare"
                + (hint or f"; declared workflows: {', '.join(workflow_names) or 'none'}"),
                integration.span_for("workflow"), "unknown-workflow",
            )
        if sw is None:
            self.error(
                f"integration uses subworkflow '{integration.use}', which this file does not declare"
                + (_did_you_mean(str(integration.use), sub_names)
                   or f"; declared subworkflows: {', '.join(sub_names) or 'none'}"),
                integration.span_for("use"), "unknown-workflow",
            )
            return
        resolver = None
        wf_name = ""  # read only where a resolver exists, that is where there is a workflow
        if wf is not None:
            resolver = resolver_for(wf)
            wf_name = wf.name
        for mapping, declared, what, field in (
            (integration.input_mapping, sw.inputs, "input", "input_mapping"),
            (integration.output_mapping, sw.outputs, "output", "output_mapping"),
        ):
            fallback = integration.span_for(field)
            for key, value in mapping.items():
                # Mapping keys are stored as plain str; the value sits on the key's line.
                span = span_of(key) or integration.arg_spans.get(f"{field}:{key}") or span_of(value, fallback)
                if str(key) not in declared:
                    self.error(
                        f"subworkflow '{sw.name}' declares no {what} '{key}'"
                        + (_did_you_mean(str(key), declared)
                           or f"; its {what}s are: {', '.join(declared) or 'none'}"),
                        span, "unknown-mapping",
                    )
                text = _text(value)
                if resolver is None or text is None or isinstance(value, Call):
                    continue
                value_span = span_of(value, span)
                if what == "input":
                    if resolver.resolve_input(text) is None:
                        self.error(
                            f"input mapping '{key}' of the integration of '{sw.name}' refers to '{text}', which is "
                            f"nothing in workflow '{wf_name}'" + _did_you_mean(text, resolver.candidates()),
                            value_span, "unresolved-reference",
                        )
                elif resolver.resolve_destination(text) is None and not (
                        wf is not None and self._read_in_host(wf, text)):
                    self.error(
                        f"output mapping '{key}' of the integration of '{sw.name}' sends to '{text}', which is no "
                        f"target or agent of workflow '{wf_name}', nor a name one of its agents reads"
                        + _did_you_mean(text, resolver.target_candidates()),
                        value_span, "unresolved-reference",
                    )
            for name in declared:
                if what == "input" and name not in {str(k) for k in mapping}:
                    self.warning(
                        f"input '{name}' of subworkflow '{sw.name}' is not mapped by this integration, so its "
                        f"agents receive nothing from it; add it to `mapping: {{ input: {{ … }} }}`",
                        integration.span, "unmapped-input",
                    )

    # arguments

    def _check_arguments(self, node: KindSpec, label: str) -> None:
        names = node.argument_names()
        for name in node.extra_args:
            span = node.arg_spans.get(f"extra:{name}") or node.span
            self.error(
                f"{label} has no argument '{name}'"
                + (_did_you_mean(name, names) or f"; {node.kind_name} takes: {', '.join(names)}"),
                span, "unknown-argument",
            )
        missing = [a for a in node.required_arguments() if not node.given(a)]
        for a in missing:
            self.error(f"{label} needs {_a(a)}: add `{a}: …`", node.span, "missing-argument")
        for group in node.required_one_of:
            if not any(node.given(a) for a in group):
                self.error(
                    f"{label} needs {' or '.join(_a(a) for a in group)}: add one of "
                    + ", ".join(f"`{a}: …`" for a in group),
                    node.span, "missing-argument",
                )

    def _check_contexts(self, contexts: list[Any]) -> None:
        first: dict[str, Any] = {}
        for ctx in contexts:
            self._check_arguments(ctx, f"context {ctx.kind_name} '{ctx.id}'")
            if ctx.id in first:
                other = first[ctx.id].span
                where = f" on line {other.line}" if other else ""
                self.error(
                    f"context id '{ctx.id}' is already used by the context{where}; give one of them another "
                    f"`id:`", ctx.span_for("id"), "duplicate-id",
                )
            elif ctx.id:
                first[ctx.id] = ctx

    def _check_agents(self, agents: list[Agent], owner: str) -> None:
        first: dict[str, Agent] = {}
        for agent in agents:
            self._check_arguments(agent, f"{agent.kind_name} '{agent.id}'")
            if agent.id in first:
                other = first[agent.id].span
                where = f" on line {other.line}" if other else ""
                self.error(
                    f"agent id '{agent.id}' is already used by the {first[agent.id].kind_name} agent{where} of "
                    f"'{owner}'; give one of them another `id:`", agent.span_for("id"), "duplicate-id",
                )
            elif agent.id:
                first[agent.id] = agent

    # the graph

    def _check_graph(self, graph: WorkflowGraph, agents: list[Agent], *, has_sources: bool,
                     owner: WorkflowSpec | SubworkflowSpec, workflow_label: str,
                     inlined: AbstractSet[str] = frozenset()) -> None:
        """The graph's problems. The ``inlined`` agents (an integration's, in a host workflow's graph) are there for
        what they connect; their own inputs and reach are checked in their subworkflow and integration."""
        by_kind: dict[str, list[str]] = {}
        for a in agents:
            by_kind.setdefault(a.kind_name, []).append(a.id or "")
        bad_inputs: set[str] = set()
        for u in graph.unresolved:
            if u.agent in inlined:
                continue
            if u.what == "input":
                bad_inputs.add(u.agent)
                if self._input_is_broken_expression(u.written):
                    continue  # reported where the expression fails to parse
                if u.ambiguous:
                    kind = u.ambiguous[0]
                    ids = by_kind.get(kind, [])
                    self.error(
                        f"input '{u.written}' of agent '{u.agent}' is ambiguous: {workflow_label} '{graph.name}' "
                        f"has {len(ids)} {kind} agents ({', '.join(ids)}); name one by id, e.g. '{ids[0]}.output'",
                        u.span, "ambiguous-reference",
                    )
                    continue
                self.error(self._unresolved_input_message(u, graph), u.span, "unresolved-reference")
            elif u.what == "route":
                self.error(
                    f"route '{u.written}' of router '{u.agent}' leads nowhere: no target or agent has that name"
                    + (_did_you_mean(u.written, u.candidates)
                       or f"; write `target.<subject>` or an agent id ({', '.join(u.candidates) or 'none'})"),
                    u.span, "unresolved-reference",
                )
            else:
                self.error(
                    f"output '{u.written}' of agent '{u.agent}' names no target of {workflow_label} '{graph.name}'"
                    + (_did_you_mean(u.written, u.candidates)
                       or "; declare the target in `target:` or use a plain channel name"),
                    u.span, "unresolved-reference",
                )
        order = {a.id: i for i, a in enumerate(agents)}
        in_cycle: set[str] = set()
        for cycle in graph.cycles():
            in_cycle.update(cycle)
            k = min(range(len(cycle)), key=lambda i: order.get(cycle[i], 0))
            cycle = cycle[k:] + cycle[:k]
            node = graph.nodes[cycle[0]]
            self.error(
                f"agents form a cycle: {' → '.join([*cycle, cycle[0]])}; an event would go round forever — "
                f"change the input of one of them",
                node.agent.span, "cycle",
            )
        self._check_partitioned_inputs(graph)
        if not graph.nodes:
            return
        if not has_sources:
            if isinstance(owner, WorkflowSpec):
                self.error(
                    f"workflow '{owner.name}' has agents but no source; add e.g. `source: NATS(\"subject\")`",
                    owner.span, "no-source",
                )
            else:
                self.error(
                    f"subworkflow '{owner.name}' has agents but declares no inputs; add e.g. "
                    f"`input: [\"name\"]` and read it with `input.name`",
                    owner.span, "no-source",
                )
            return
        reachable = graph.reachable_from_sources()
        tainted = set(bad_inputs) | in_cycle
        succ: dict[str, set[str]] = {}
        for upstream, downstream in graph.agent_edges():
            succ.setdefault(upstream, set()).add(downstream)
        todo = list(tainted)
        while todo:
            for m in succ.get(todo.pop(), ()):
                if m not in tainted:
                    tainted.add(m)
                    todo.append(m)
        for agent_id, node in graph.nodes.items():
            if agent_id in reachable or agent_id in tainted or agent_id in inlined:
                continue
            self.warning(
                f"agent '{agent_id}' receives no events: nothing from a source reaches its input; "
                f"connect its `input:` to a source or another agent, or remove it",
                node.agent.span, "unreachable",
            )

    def _check_partitioned_inputs(self, graph: WorkflowGraph) -> None:
        """A partitioned agent reads exactly one other agent's output: that agent puts the key on the subject (the
        rule compile applies; see kumeo_iac.compile._partitions)."""
        handed: set[str] = {r.destination.name for n in graph.nodes.values() for r in n.routes
                            if r.destination.kind == "agent"}
        handed |= {n.fallback.name for n in graph.nodes.values() if n.fallback is not None}
        for agent_id, node in graph.nodes.items():
            if node.agent.partitions is None:
                continue
            inputs = list(node.inputs)
            if node.is_join or len(inputs) != 1 or inputs[0].node.kind != "agent" or agent_id in handed:
                self.error(f"partitioned agent '{agent_id}' must read exactly one other agent's output (its publisher "
                           f"puts the key on the subject), not a source, a join, a route or a fallback; put a "
                           f"DataProcessor in front of it and make that its input",
                           node.agent.span_for("input"), "bad-partitions")

    def _input_is_broken_expression(self, written: str) -> bool:
        if self.expr is None or not looks_like_expression(written):
            return False
        return self._compile(written) is None

    def _unresolved_input_message(self, u: Any, graph: WorkflowGraph) -> str:
        written = u.written
        if looks_like_expression(written):
            # Name the one path of the expression that resolves to nothing.
            for path in paths_in(written):
                if not self._path_resolves(graph, path):
                    return (
                        f"input '{written}' of agent '{u.agent}': '{path}' refers to nothing"
                        + (_did_you_mean(path, u.candidates) or "; write `source`, an agent id or an output name")
                    )
        return (
            f"input '{written}' of agent '{u.agent}' refers to nothing"
            + (_did_you_mean(written, u.candidates)
               or "; write `source`, `<agent id>.output` or a name another agent declared with `output:`")
        )

    def _path_resolves(self, graph: WorkflowGraph, path: str) -> bool:
        resolver = getattr(self, "_resolvers", {}).get(graph.name)
        if resolver is None:
            owner = next((w for w in self.program.workflows if w.name == graph.name), None) or next(
                (s for s in self.program.subworkflows if s.name == graph.name), None
            )
            if owner is None:
                return True
            resolver = resolver_for(owner)
            self.__dict__.setdefault("_resolvers", {})[graph.name] = resolver
        result = resolver.resolve_input(path)
        return result is not None

    # values of one agent

    def _check_output_typo(self, written: Any, label: str, fallback: SourceSpan | None, agent_ids: set[str]) -> None:
        """``risk.outptu`` resolves (as field ``outptu`` of risk's output) but is almost surely a typo."""
        head, _, rest = str(written).strip().partition(".")
        second = re.split(r"[./]", rest)[0] if rest else ""
        if head not in agent_ids or not second or second == "output":
            return
        if difflib.SequenceMatcher(None, second, "output").ratio() >= 0.7:
            fixed = f"{head}.output{rest[len(second):]}"
            self.error(f"input '{written}' of {label} reads field '{second}' of agent '{head}'; did you mean "
                       f"'{fixed}'?", span_of(written, fallback), "unresolved-reference")

    def _check_agent_values(self, agent: Agent, hosts: list[WorkflowSpec], context_ids: list[str],
                            agent_ids: set[str]) -> None:
        label = f"{agent.kind_name} '{agent.id}'"
        # expressions
        if agent.when is not None:
            self._check_expression(agent.located("when"), f"`when` of {label}",
                                   agent.span_for("when"), hosts)
        for item in agent.expressions():  # the kind's own arguments (Agent.expressions)
            fallback = agent.span_for(item.argument)
            if isinstance(item, KindProblem):
                self.error(f"{item.what} of {label}{item.detail}", span_of(item.value, fallback), item.code)
            else:
                self._check_expression(item.text, f"{item.what} of {label}", span_of(item.text, fallback), hosts,
                                       offset=item.offset)
        for part in _input_texts(agent.input):
            self._check_output_typo(part, label, agent.span_for("input"), agent_ids)
            if isinstance(part, Ref):
                continue
            if looks_like_expression(str(part)):
                self._check_expression(part, f"input '{part}' of {label}", span_of(part, agent.span_for("input")),
                                       hosts, config_paths=False)
        # references to workflow-level entries and files
        self._check_entry_refs(agent, label, hosts)
        self._check_context_refs(agent, label, hosts, context_ids)
        self._check_agent_files(agent, label, hosts)
        # timeout, retry, fallback
        if agent.timeout is not None and not _is_duration(agent.timeout):
            self.error(f"timeout {_show(agent.timeout)} of {label} is not a duration; {DURATION_HINT}",
                       span_of(agent.timeout, agent.span_for("timeout")), "bad-duration")
        elif agent.timeout is not None and not _is_duration(agent.timeout, positive=True):
            self.error(f"timeout {_show(agent.timeout)} of {label} must be more than 0; {DURATION_HINT}",
                       span_of(agent.timeout, agent.span_for("timeout")), "bad-duration")
        self._check_retry(agent, label)
        self._check_partitions(agent, label, hosts)
        self._check_secrets(agent, label, hosts)
        config_hosts: list[WorkflowSpec | None] = [*hosts] or [None]
        for host in config_hosts:
            self._check_config(agent, label, host)

    def _check_expression(self, written: Any, where: str, span: SourceSpan | None, hosts: list[WorkflowSpec],
                          *, offset: int = 0, config_paths: bool = True) -> None:
        if self.expr is None:
            return
        text = str(written)[offset:]
        try:
            expression = self._compile_or_raise(text)
        except KumeoExpressionError as exc:
            self.error(f"{where} does not parse: {exc.message}", self._locate(written, offset, exc.span, span),
                       "expression", exc.hint)
            return
        if not config_paths:
            return
        for path in _paths_of(expression):
            if len(path) < 2 or path[0] != "config":
                continue
            for wf in hosts:
                self._check_config_path(wf, path, where, written, offset, text, span)

    def _compile(self, text: str) -> Any:
        try:
            return self._compile_or_raise(text)
        except KumeoExpressionError:
            return None

    def _compile_or_raise(self, text: str) -> Any:
        """The compiled expression, or its KumeoExpressionError; either is kept, so each text is parsed once."""
        if text in self._compiled:
            cached = self._compiled[text]
            if isinstance(cached, KumeoExpressionError):
                raise cached.with_traceback(None)
            return cached
        try:
            compiled = self.expr.compile_expression(text)
        except KumeoExpressionError as exc:
            self._compiled[text] = exc
            raise
        except KumeoError as exc:  # any other failure of the compiler, reported like a syntax error
            self._compiled[text] = KumeoExpressionError(str(exc))
            raise self._compiled[text] from None
        self._compiled[text] = compiled
        return compiled

    def _locate(self, written: Any, offset: int, rel: SourceSpan | None, fallback: SourceSpan | None
                ) -> SourceSpan | None:
        """The file position of a position inside an expression that starts ``offset`` characters into a string."""
        start = getattr(written, "content_start", None)
        if start is None:
            return fallback
        content = str(written)
        expr_text = content[offset:]
        index = offset + (_index_of(expr_text, rel.line, rel.column) if rel is not None else 0)
        line, column = _line_col(content, index)
        inner = SourceSpan(start.path, line, column)
        try:
            located: SourceSpan = self.expr.locate(inner, start)
            return located
        except Exception:  # noqa: BLE001  # pragma: no cover - defensive: a position is never worth a crash
            if line == 1:
                return SourceSpan(start.path, start.line, start.column + column - 1)
            return SourceSpan(start.path, start.line + line - 1, column)

    def _check_config_path(self, wf: WorkflowSpec, path: tuple[str, ...], where: str, written: Any, offset: int,
                           text: str, span: SourceSpan | None) -> None:
        dotted = ".".join(path)
        position = self._path_position(written, offset, text, path, span)
        if not wf.config:
            self.soft(
                f"{where} reads '{dotted}' but workflow '{wf.name}' has no `config` block; add "
                f"`config: {{ {path[1]}: … }}`", position, "missing-block",
            )
            return
        current: Any = wf.config
        for i, part in enumerate(path[1:], start=1):
            if not isinstance(current, dict):
                return  # a file reference or a value: nothing more to check statically
            if part not in current:
                prefix = ".".join(path[:i])
                self.error(
                    f"{where} reads '{dotted}', but '{prefix}' has no entry '{part}'"
                    + (_did_you_mean(part, [str(k) for k in current])
                       or f"; its entries are: {', '.join(str(k) for k in current) or 'none'}"),
                    position, "unknown-entry",
                )
                return
            current = current[part]

    def _path_position(self, written: Any, offset: int, text: str, path: tuple[str, ...],
                       fallback: SourceSpan | None) -> SourceSpan | None:
        pattern = r"\b" + r"\s*(?:\?\.|\.)\s*".join(re.escape(p) for p in path) + r"\b"
        m = re.search(pattern, _blank_quoted(text))
        if m is None:
            return fallback
        line, column = _line_col(text, m.start())
        return self._locate(written, offset, SourceSpan("", line, column), fallback)

    def _check_entry_refs(self, agent: Agent, label: str, hosts: list[WorkflowSpec]) -> None:
        for field, what in (("model", "model"), ("output_schema", "output schema"), ("config", "config"),
                            ("rules", "rules"), ("network", "network"), ("matrix", "matrix"),
                            ("config_schema", "config schema")):
            if field not in type(agent).model_fields:
                continue
            value = getattr(agent, field)
            fallback = agent.span_for(field)
            direct = _text(value)
            if direct is not None:
                if block_ref(direct) is not None:
                    for wf in hosts:
                        self._resolve_entry(wf, direct, span_of(value, fallback), f"{what} of {label}")
                continue
            if field in ("config", "model", "rules") and isinstance(value, (dict, list)):
                for s in _strings(value):
                    if block_ref(s) is not None:
                        for wf in hosts:
                            self._resolve_entry(wf, s, span_of(s, fallback), f"{what} of {label}")

    def _resolve_entry(self, wf: WorkflowSpec, text: str, span: SourceSpan | None, where: str,
                       *, quiet: bool = False) -> Any:
        """The entry a ``block.name[.more]`` reference points at (``None`` when it names nothing or is no
        reference), reporting why it names nothing unless ``quiet`` (already reported where first checked)."""
        resolution = resolve(wf, text)
        if resolution.problem is not None:
            if not quiet:
                if resolution.problem.code == "missing-block":
                    self.soft(f"{where} {resolution.problem.message}", span, "missing-block")
                else:
                    self.error(f"{where} {resolution.problem.message}", span, "unknown-entry")
            return None
        return resolution.value if resolution.ref is not None else None

    def _check_context_refs(self, agent: Agent, label: str, hosts: list[WorkflowSpec],
                            context_ids: list[str]) -> None:
        value = agent.context
        items = value if isinstance(value, list) else [value]
        fallback = agent.span_for("context")
        for item in items:
            text = _text(item)
            if text is None:
                continue
            text = text.strip()
            span = span_of(item, fallback)
            if block_ref(text) is not None:
                for wf in hosts:
                    self._resolve_entry(wf, text, span, f"context of {label}")
                continue
            if not _IDENTIFIER.fullmatch(text):
                continue  # an inline query or text, read as written
            if text in context_ids:
                continue
            data_names = [f"data.{k}" for wf in hosts for k in wf.data]
            self.error(
                f"context '{text}' of {label} names no context"
                + (_did_you_mean(text, [*context_ids, *data_names])
                   or (f"; declared contexts: {', '.join(context_ids)}" if context_ids
                       else "; declare it in the workflow's `context:` (e.g. `KnowledgeBase(\"kb.json\", "
                            f"id: \"{text}\")`) or use a `data` entry (`\"data.{text}\"`)")),
                span, "unresolved-reference",
            )

    def _check_retry(self, agent: Agent, label: str) -> None:
        retry = agent.retry
        span = span_of(retry, agent.span_for("retry"))
        for problem in retry_problems(retry):
            self._report_problem(problem, retry, span, "retry", label,
                                 "bad-duration" if "not a duration" in problem.message else "bad-retry")

    def _check_partitions(self, agent: Agent, label: str, hosts: list[WorkflowSpec]) -> None:
        """``partitions``/``partition_key`` (kumeo_iac.spec._partitions), and no replica scaling on top of them."""
        for problem in partition_problems(agent.partitions, agent.partition_key):
            self.error(f"{problem.argument} of {label} {problem.message}", agent.span_for(problem.argument),
                       "bad-partitions")
        if agent.partitions is None:
            return
        for wf in hosts:
            scaling = wf.deployment.scaling if wf.deployment else None
            if scaling is not None and partition_scaling_conflict(scaling.min_replicas, scaling.max_replicas):
                self.error(f"{label} has {agent.partitions} partitions, one pod each, but workflow '{wf.name}' "
                           f"scales its agents with deployment.scaling (min_replicas/max_replicas); a partitioned "
                           f"agent scales by its number of partitions: remove the scaling or the partitions",
                           agent.span_for("partitions"), "bad-partitions")

    def _report_problem(self, problem: Problem, written: Any, span: SourceSpan | None, what: str, label: str,
                        code: str, origin: str = "") -> None:
        """One problem of a typed setting, at the key it is about (or the value, when that has a position)."""
        where = span_at(written, problem.path, span)
        subject = what if not problem.path else f"{what} {_quote_path(problem)}"
        if problem.unknown_key:
            subject = what if len(problem.path) <= 1 else f"{what} {_quote_path(problem, drop_last=True)}"
        joint = " " if problem.message.startswith(("must", "has no", "is missing")) else ": "
        self.error(f"{subject} of {label}{origin}{joint}{problem.message}", where, code)

    def _check_config(self, agent: Agent, label: str, wf: WorkflowSpec | None) -> None:
        """The agent's ``config`` against its kind's settings model: unknown keys and wrong types, at the key."""
        value = agent.config
        if value is None:
            return
        span = span_of(value, agent.span_for("config"))
        origin = ""
        if isinstance(value, (str, Ref)):
            if wf is None:
                return
            resolution = resolve(wf, str(value))
            if resolution.ref is None or not resolution.resolved:
                return  # a JSON file the runtime reads, or a reference reported where it is checked
            origin = f" (from '{resolution.ref.text}')"
            value = resolution.value
            if isinstance(value, str):
                return  # the entry names a file
        if isinstance(value, dict) and isinstance(value.get("file"), str):
            return  # `{ file: "settings.json" }`: read at run time
        if not isinstance(value, dict):
            self.error(f"config of {label}{origin} must be an object of settings, a `config` entry or a JSON file, "
                       f"not {_show(plain(value))}", span, "bad-config")
            return
        kind = type(agent)
        arguments = kind.config_arguments
        own = {k: v for k, v in value.items() if str(k) not in arguments}
        for problem in problems_in(kind.config_model, own, also=arguments):
            if problem.unknown_key and len(problem.path) == 1 and kind.config_model is NoSettings:
                key = str(problem.path[0])
                own_args = [a for a in kind.argument_names() if a not in Agent.argument_names()]
                problem = Problem(problem.path, (
                    f"has no setting '{key}'"
                    + _did_you_mean(key, own_args).replace("did you mean '", "did you mean the argument '")
                    + f"; {kind.kind_name} takes its settings as arguments ({', '.join(own_args) or 'none'}), "
                      f"and its `config` may hold only `join_timeout`"), True)
            self._report_problem(problem, value, span, "config", label, "bad-config", origin)
        for key, item in value.items():
            if str(key) in arguments:
                field = kind.field_for_argument(str(key))
                annotation = kind.model_fields[field].annotation if field else Any
                for problem in problems_for_type(annotation, item, (str(key),)):
                    self._report_problem(problem, value, span, "config", label, "bad-config", origin)
        schema_argument = kind.config_schema_argument
        if schema_argument is not None and agent.located(schema_argument) is not None:
            declared = set(kind.config_model.model_fields) | {"join_timeout"}
            self._check_config_schema(agent, schema_argument, label, wf,
                                      {k: v for k, v in own.items() if str(k) not in declared}, value, span, origin)

    def _check_config_schema(self, agent: Agent, argument: str, label: str, wf: WorkflowSpec | None,
                             free: dict[Any, Any], written: dict[Any, Any], span: SourceSpan | None,
                             origin: str) -> None:
        """The free-form entries of an agent's config against the JSON Schema its ``argument`` holds
        (``Agent.config_schema_argument``: Custom's ``config_schema``)."""
        schema: Any = getattr(agent, type(agent).field_for_argument(argument) or argument, None)
        schema_span = span_of(schema, agent.span_for(argument))
        if isinstance(schema, (str, Ref)):
            if wf is None:
                return
            resolution = resolve(wf, str(schema))
            if not resolution.resolved:
                return  # a schema file (read by whoever runs the agent) or a reference reported elsewhere
            schema = resolution.value
        if not isinstance(schema, dict):
            if not isinstance(schema, str):
                self.error(f"{argument} of {label} must be a JSON Schema object, a `schemas` entry or a file",
                           schema_span, "bad-config")
            return
        try:
            import jsonschema
        except ImportError:
            self.warning(f"config of {label} is not checked against its {argument}: jsonschema is not "
                         f"installed (pip install 'kumeo-iac[runtime]')", schema_span, "unchecked")
            return
        schema = plain(schema)
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as exc:
            self.error(f"{argument} of {label} is not a valid JSON Schema: {exc.message}", schema_span,
                       "bad-config")
            return
        for error in sorted(validator_class(schema).iter_errors(plain(free)), key=lambda e: list(e.path)):
            path = tuple(error.path)
            problem = Problem(path, f"does not match {argument}: {error.message}")
            self._report_problem(problem, written, span, "config", label, "bad-config", origin)

    # files

    def _check_agent_files(self, agent: Agent, label: str, hosts: list[WorkflowSpec]) -> None:
        # The files the kind declares (``Agent.file_arguments``): a string names a file; a ``model`` may also be a
        # `models` entry or an inline object naming one.
        kind = type(agent)
        if self.base_dir is None:
            # No folder to look in: still refuse what leaves any folder by its text (compile refuses it too).
            roots = declared_roots(hosts)
            for field in dict.fromkeys(("model", "output_schema", "config", *kind.file_arguments)):
                value = getattr(agent, kind.field_for_argument(field) or field, None)
                if field != "model" and not isinstance(value, str):
                    continue
                for file, written_span in self._files_of(value, hosts, agent.span_for(field)):
                    if file and "${" not in file and "://" not in file and escapes_lexically(file, roots):
                        self.error(f"{field} path '{file}' of {label} leaves the workflow's folder; keep the file "
                                   f"under it (or declare a data root: `deployment: {{ storage: {{ data_root: "
                                   f"\"…\" }} }}`)", written_span, "path-escape")
            return
        checks = [(name, getattr(agent, kind.field_for_argument(name) or name, None)) for name in kind.file_arguments]
        for field, value in checks:
            if field != "model" and not isinstance(value, str):
                continue
            for file, written_span in self._files_of(value, hosts, agent.span_for(field)):
                self._check_file(file, written_span, f"{field} file '{file}' of {label}",
                                 hosts=hosts, escape=f"{field} path '{file}' of {label}")

    def _files_of(self, value: Any, hosts: list[WorkflowSpec], fallback: SourceSpan | None
                  ) -> Iterator[tuple[str, SourceSpan | None]]:
        if value is None:
            return
        text = _text(value)
        span = span_of(value, fallback)
        if text is not None:
            ref = block_ref(text)
            if ref is not None:
                refs = [resolve(wf, text) for wf in hosts]
                if not refs and not ref.could_be_file:
                    return  # a subworkflow no integration hosts: nothing to resolve against
                if any(r.ref is not None for r in refs):
                    for r in refs:
                        if r.resolved:
                            yield from self._files_of(r.value, [], span)
                    return
            yield text, span
        elif isinstance(value, dict):
            file = value.get("file", value.get("path"))
            if isinstance(file, str):
                yield file, span_of(file, fallback)

    def _check_context_files(self, ctx: Any, hosts: list[WorkflowSpec]) -> None:
        if self.base_dir is None or not isinstance(ctx, (BayesianNetworkContext, KnowledgeBase)):
            return
        if isinstance(ctx.path, str):
            label = f"context {ctx.kind_name} '{ctx.id}'"
            self._check_file(ctx.path, span_of(ctx.path, ctx.span_for("path")), f"file '{ctx.path}' of {label}",
                             hosts=hosts, escape=f"path '{ctx.path}' of {label}")

    def _check_file(self, file: str, span: SourceSpan | None, what: str, *, hosts: list[WorkflowSpec],
                    escape: str | None = None) -> None:
        assert self.base_dir is not None
        if not file or "${" in file or "://" in file or "{{" in file:
            return
        if self._check_contained(file, span, escape or what, hosts):
            return
        path = Path(file)
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            if path.exists():
                return
        except (OSError, ValueError) as exc:  # a name too long for the file system: no such file can exist
            self.soft(f"{what} is not a usable path ({getattr(exc, 'strerror', None) or exc}); fix the path",
                      span, "missing-file")
            return
        self.soft(
            f"{what} does not exist (looked for {path}); `kumeo render`, `run` and `up` will refuse it — "
            f"create the file or fix the path", span, "missing-file",
        )

    def _check_contained(self, file: str, span: SourceSpan | None, what: str, hosts: list[WorkflowSpec]) -> bool:
        """An error (whatever ``strict_files`` says) when ``file`` resolves outside the workflow's folder and its
        data roots: an absolute path elsewhere, a ``..`` escape or a symlink pointing out. True when reported."""
        assert self.base_dir is not None
        try:
            outside = escapes(file, self.base_dir, data_roots(hosts, self.base_dir))
        except (OSError, ValueError):
            return False
        if outside is None:
            return False
        folder = _resolved_dir(self.base_dir)
        lexical = Path(file) if Path(file).is_absolute() else self.base_dir / file
        via = ""
        if Path(os.path.normpath(os.path.abspath(lexical))).is_relative_to(folder):
            via = f" (through a symlink, to {outside})"
        self.error(
            f"{what} leaves the workflow's folder {folder}{via}; keep the file under it (or declare a data root: "
            f"`deployment: {{ storage: {{ data_root: \"…\" }} }}`)", span, "path-escape",
        )
        return True

    # deployment

    def _check_deployment(self, wf: WorkflowSpec) -> None:
        if wf.deployment is None:
            return
        for name, resources in wf.deployment.resources.items():
            image = resources.image
            if isinstance(image, str) and image.startswith("base_images."):
                self._resolve_entry(wf, image, span_of(image, resources.span_for("image")),
                                    f"image of resources '{name}'")


_BLOCK_LIST = ("source", "target", "context", "preprocessors", "agents", "monitor", "deployment", "nats", "models",
               "data", "schemas", "config")




def _resolved_dir(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def span_at(value: Any, path: tuple[str | int, ...], fallback: SourceSpan | None) -> SourceSpan | None:
    """Where the item at ``path`` inside a written value was written: its key (the last one with a position
    on the way), or the item itself when it is a located string."""
    span = fallback
    current = value
    for part in path:
        if isinstance(current, dict):
            key = next((k for k in current if str(k) == str(part)), None)
            if key is None:
                break
            span = span_of(key, span)
            current = current[key]
        elif isinstance(current, (list, tuple)) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            span = span_of(current, span)
        else:
            break
    return span


def _quote_path(problem: Problem, *, drop_last: bool = False) -> str:
    path = problem.path[:-1] if drop_last else problem.path
    return "'" + Problem(path, "").dotted + "'"


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _blank_quoted(text: str) -> str:
    """The text with quoted literals blanked out (same length), so a search never matches inside a string."""
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", lambda m: " " * len(m.group(0)), text)


def _input_texts(value: Any) -> Iterator[Any]:
    """Every written reference of an input (strings and bare paths), joins included."""
    if isinstance(value, (str, Ref)):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _input_texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _input_texts(v)


def _paths_of(expression: Any) -> list[tuple[str, ...]]:
    """The dotted paths an expression reads, as tuples of names (whatever shape the expression reports them in)."""
    out = []
    for path in getattr(expression, "paths", ()) or ():
        if isinstance(path, str):
            out.append(tuple(p for p in re.split(r"\?\.|\.", path) if p))
        elif isinstance(path, (tuple, list)):
            out.append(tuple(str(p) for p in path if isinstance(p, str)))
    return out

