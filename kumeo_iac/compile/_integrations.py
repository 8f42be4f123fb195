"""Integrations: a subworkflow used inside a workflow is inlined into it before planning.

``integration { workflow: W, use: S, input_mapping: {x: …}, output_mapping: {y: …} }`` copies S's agents into W:

* each agent id gets the prefix ``<s>_`` (``s`` = snake_case of the subworkflow name; a second use of the same
  subworkflow in one workflow gets ``<s>_2_``), so its subjects become ``kumeo.<wf>.<s>_<agent>.out`` etc.;
* references between S's agents follow the rename; S's output channels get the prefix ``<s>.``;
* ``input.x`` (an input S declares) is replaced by what ``input_mapping.x`` names in W (``source``,
  ``fraud_detector.output``, ``"validated.tx"``…), keeping any selected field;
* an input mapped to a value that is not a path (``Database("policies", "SELECT …")``) is a lookup, not a stream:
  the join part that read it is removed and the agent gets ``settings["lookups"][part]`` = that value;
* ``output_mapping.y: dest`` makes the agent S calls ``y`` publish under ``dest``: a target (``target.alerts``) or
  a channel name W's agents read as their input. ``y`` is an agent id or output channel of S, or one of S's declared
  ``outputs``: the n-th declared output is the n-th sink agent of S (no other agent of S reads it), or the last
  agent when S has a single sink.

The result is an ordinary workflow, so the graph, subjects, consumers and Kubernetes objects need no special case.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from typing import Any

from kumeo_iac.compile._names import snake
from kumeo_iac.compile._values import compile_error, to_json
from kumeo_iac.graph import build_graph
from kumeo_iac.spec import IntegrationSpec, Program, Ref, Router, SubworkflowSpec, WorkflowSpec

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:(?:\?\.|\.|/)[A-Za-z_][A-Za-z0-9_]*)*")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def expand_integrations(program: Program) -> list[WorkflowSpec]:
    """The program's workflows with every integration inlined (the Program itself is not changed)."""
    by_name = {wf.name: wf for wf in program.workflows}
    extra: dict[str, list[Any]] = {name: [] for name in by_name}
    used: dict[tuple[str, str], int] = {}
    for integration in program.integrations:
        wf = by_name.get(integration.workflow)
        if wf is None:
            raise compile_error(
                f"integration uses workflow {integration.workflow!r}, which the program does not declare",
                span=integration.span, hint=f"declared workflows: {', '.join(sorted(by_name)) or 'none'}")
        try:
            sub = program.subworkflow(integration.use)
        except KeyError:
            raise compile_error(
                f"integration uses subworkflow {integration.use!r}, which the program does not declare",
                workflow=wf.name, span=integration.span) from None
        n = used.get((wf.name, sub.name), 0) + 1
        used[(wf.name, sub.name)] = n
        prefix = snake(sub.name) if n == 1 else f"{snake(sub.name)}_{n}"
        extra[wf.name] += _inline(wf, sub, integration, prefix)
    out = []
    for wf in program.workflows:
        if extra[wf.name]:
            taken = {a.id for a in wf.all_agents()}
            for agent in extra[wf.name]:
                if agent.id in taken:
                    raise compile_error(
                        f"inlining an integration gives agent id {agent.id!r}, which the workflow already uses",
                        workflow=wf.name, agent=agent.id, span=agent.span, hint="rename one of the agents")
                taken.add(agent.id)
            wf = wf.model_copy(update={"agents": [*wf.agents, *extra[wf.name]]})
        out.append(wf)
    return out


def _inline(wf: WorkflowSpec, sub: SubworkflowSpec, integration: IntegrationSpec, prefix: str) -> list[Any]:
    ids = {a.id for a in sub.agents if a.id}
    channels = {a.output_channel for a in sub.agents if a.output_channel}
    for name in integration.input_mapping:
        if name not in sub.inputs:
            raise compile_error(
                f"input_mapping names {name!r}, but subworkflow {sub.name!r} declares inputs "
                f"{', '.join(sub.inputs) or 'none'}", workflow=wf.name, span=integration.span)
    outputs: dict[str, str] = {}
    sinks = _sinks(sub)
    for name, dest in integration.output_mapping.items():
        name = str(name)
        if name not in ids and name not in channels:
            if name not in sub.outputs or not sinks:
                raise compile_error(
                    f"output_mapping names {name!r}, which is no agent or output of subworkflow {sub.name!r}",
                    workflow=wf.name, span=integration.span)
            index = sub.outputs.index(name)
            name = sinks[index] if len(sinks) == len(sub.outputs) else sinks[-1]
        outputs[name] = str(dest)
    lookups = {name: value for name, value in integration.input_mapping.items()
               if not isinstance(value, (str, Ref))}

    def rename_path(path: str) -> str:
        flat = path.replace("?.", ".")
        head, _, rest = flat.partition(".")
        if head == "input":
            name, _, field = rest.partition(".")
            if name in integration.input_mapping:
                mapped = str(integration.input_mapping[name])
                return mapped if not field or mapped in ("source", "sources") else f"{mapped}.{field}"
            if name in sub.inputs:
                return "source" if not field else f"source.{field}"
            return path
        for channel in sorted(channels, key=len, reverse=True):
            if path == channel or path.startswith((channel + "/", channel + ".")):
                return out_channel(channel) + path[len(channel):]
        if head in ids:
            return f"{prefix}_{head}" + path[len(head):]
        return path

    def rewrite(text: str) -> str:
        text = str(text)
        if _PATH.fullmatch(text.strip()):
            return rename_path(text.strip())
        pieces, last = [], 0
        stripped = _QUOTED.sub(lambda m: " " * len(m.group(0)), text)
        for m in _PATH.finditer(stripped):
            pieces.append(text[last:m.start()])
            pieces.append(rename_path(m.group(0)))
            last = m.end()
        pieces.append(text[last:])
        return "".join(pieces)

    def out_channel(channel: str) -> str:
        return outputs.get(channel, f"{prefix}.{channel}")

    def lookup_of(value: Any) -> str | None:
        text = str(value).strip() if isinstance(value, (str, Ref)) else ""
        if text.startswith("input."):
            name = text.split(".")[1]
            return name if name in lookups else None
        return None

    def rewrite_input(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, dict):
            return {k: rewrite_input(v) for k, v in value.items() if lookup_of(v) is None}
        if isinstance(value, list):
            return [rewrite_input(v) for v in value]
        return rewrite(str(value) if isinstance(value, Ref) else value)

    inlined = []
    for agent in sub.agents:
        new_id = f"{prefix}_{agent.id}"
        update: dict[str, Any] = {"id": new_id, "input": rewrite_input(agent.input)}
        if agent.input is None and sub.inputs:
            first = sub.inputs[0]
            update["input"] = rewrite(f"input.{first}")
        if agent.output_channel:
            update["output_channel"] = out_channel(agent.output_channel)
        if agent.id in outputs:
            update["output_channel"] = outputs[agent.id]
        if isinstance(agent.fallback, (str, Ref)) and str(agent.fallback) in ids:
            update["fallback"] = f"{prefix}_{agent.fallback}"
        if isinstance(agent, Router):
            update["rules"] = _rename_rules(agent.rules, ids, prefix)
            if isinstance(agent.default, (str, Ref)) and str(agent.default) in ids:
                update["default"] = f"{prefix}_{agent.default}"
        if isinstance(agent.input, dict):
            named = {str(k): lookup_of(v) for k, v in agent.input.items()}
            found = {k: to_json(lookups[name]) for k, name in named.items() if name is not None}
            if found:
                update["extra_args"] = {**agent.extra_args, "lookups": found}
        copy = agent.model_copy(update=update)
        inlined.append(copy)
    return inlined


def _sinks(sub: SubworkflowSpec) -> list[str]:
    """Agents of a subworkflow whose output no other agent of it reads, in written order."""
    graph = build_graph(sub)
    read = {b.node.name for n in graph.nodes.values() for b in n.inputs if b.node.kind == "agent"}
    return [a for a in graph.nodes if a not in read]


def _rename_rules(rules: Any, ids: AbstractSet[str | None], prefix: str) -> Any:
    def dest(value: Any) -> Any:
        return f"{prefix}_{value}" if isinstance(value, (str, Ref)) and str(value) in ids else value

    if isinstance(rules, dict):
        return {k: dest(v) for k, v in rules.items()}
    if isinstance(rules, list):
        out = []
        for rule in rules:
            if isinstance(rule, dict):
                rule = {k: (dest(v) if k in ("to", "target", "then") else v) for k, v in rule.items()}
            out.append(rule)
        return out
    return rules
