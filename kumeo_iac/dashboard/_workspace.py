"""The `.kumeo` files the dashboard edits: diagnostics (the same checks as `kumeo check`), the editor model of the
visual editor, the edits it makes on the Spec, and saving.

The visual editor never edits text. Text becomes a Spec (``lang.parse``); an edit (add an agent, connect two nodes,
set an argument) changes the Spec; ``lang.format_program`` prints it back, comments kept. So the text the canvas
produces is always canonical and always means exactly what the canvas shows. Argument values travel as `.kumeo`
value text (``{ required_fields: ["id"] }``, ``risk.output``): one syntax in the code editor, the property panel and
the file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kumeo_iac.errors import Diagnostic, KumeoError, SourceSpan, sort_diagnostics

__all__ = ["EditError", "Workspace", "apply_edits", "check_text", "editor_model", "kinds_catalog"]

_VALUE_WORKFLOW = "KumeoDashboardValue"


class EditError(Exception):
    """A visual-editor edit that cannot be applied (unknown agent, bad value text); the message says why."""


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    span = d.span
    out: dict[str, Any] = {"severity": d.severity.value, "message": d.message, "code": d.code}
    if d.hint:
        out["hint"] = d.hint
    if span is not None:
        out.update(line=span.line, column=span.column, end_line=span.end_line or span.line,
                   end_column=span.end_column or span.column)
    else:
        out.update(line=1, column=1, end_line=1, end_column=1)
    return out


def _parse(text: str, path: str) -> tuple[Any, list[Diagnostic]]:
    """(ParseResult or None, diagnostics of parsing); a syntax error is a diagnostic, never raised."""
    from kumeo_iac._load import diagnostics_of
    from kumeo_iac.lang import parse

    try:
        result = parse(text, path)
    except KumeoError as exc:
        return None, sort_diagnostics(diagnostics_of(exc, Path(path)))
    return result, list(result.diagnostics)


def check_text(text: str, path: str, base_dir: Path | None, *, strict_files: bool = False) -> list[Diagnostic]:
    """Every diagnostic of `.kumeo` text: what ``kumeo check`` prints for the same file content (one loader)."""
    from kumeo_iac._load import load_text

    return load_text(text, path, base_dir=base_dir, strict_files=strict_files).diagnostics


# -- the editor model -----------------------------------------------------------------------------------------


def value_text(value: Any) -> str:
    """A Spec value as `.kumeo` text (what the formatter would print after ``name:``)."""
    from kumeo_iac.lang import format_value

    return format_value(value)


def _arguments(node: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in type(node).meaningful_fields():
        if name in ("kind", "extra_args", "id"):
            continue
        value = getattr(node, name)
        if value is None or value == {} or value == []:
            continue
        field = type(node).model_fields[name]
        out[field.alias or name] = value_text(value)
    return out


def kinds_catalog() -> list[dict[str, Any]]:
    """Every agent kind with its arguments (name, description, required), from the Spec models."""
    from kumeo_iac.spec import AGENT_KINDS

    out = []
    for name, cls in sorted(AGENT_KINDS.items()):
        args = []
        for field_name, field in cls.model_fields.items():
            if field_name in ("span", "arg_spans", "extra_args", "kind", "id"):
                continue
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            args.append({"name": field.alias or field_name, "description": field.description or "",
                         "required": bool(extra.get("kumeo_required")),
                         "example": extra.get("kumeo_example")})
        out.append({"kind": name, "summary": cls.summary, "positional": list(cls.positional),
                    "required_one_of": [list(g) for g in cls.required_one_of], "arguments": args,
                    "default_id": cls.default_id()})
    return out


def _flow_model(flow: Any, kind: str) -> dict[str, Any]:
    from kumeo_iac.graph import build_graph

    graph = build_graph(flow)
    agents = []
    for agent in flow.all_agents() if kind == "workflow" else flow.agents:
        span = agent.span
        agents.append({"id": agent.id, "kind": agent.kind_name, "arguments": _arguments(agent),
                       "line": span.line if span else None,
                       "preprocessor": kind == "workflow" and agent in flow.preprocessors})
    nodes_in = [{"key": ref.key, "name": ref.name, "kind": ref.kind} for ref in graph.sources]
    nodes_out = [{"key": ref.key, "name": ref.name, "kind": ref.kind} for ref in graph.targets]
    edges = [{"from": e.source.key, "to": e.target.key, "kind": e.kind} for e in graph.edges]
    return {"name": flow.name, "type": kind, "sources": nodes_in, "targets": nodes_out, "agents": agents,
            "edges": edges, "order": graph.topological_order() if not graph.cycles() else [a["id"] for a in agents]}


def editor_model(text: str, path: str, base_dir: Path | None) -> dict[str, Any]:
    """What the visual editor draws for ``text``, with the diagnostics of ``kumeo check``."""
    diagnostics = check_text(text, path, base_dir)
    result, _ = _parse(text, path)
    flows: list[dict[str, Any]] = []
    if result is not None and result.program is not None:
        for wf in result.program.workflows:
            flows.append(_flow_model(wf, "workflow"))
        for sw in result.program.subworkflows:
            flows.append(_flow_model(sw, "subworkflow"))
    return {"ok": result is not None and result.ok, "flows": flows,
            "diagnostics": [diagnostic_json(d) for d in diagnostics]}


# -- edits ----------------------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A `.kumeo` value written as text (``"x"``, ``42``, ``{ a: 1 }``, ``risk.output``) as a Spec value."""
    from kumeo_iac.lang import parse

    source = (f"workflow {_VALUE_WORKFLOW} {{\n  agents: [\n    Custom(id: \"v\", entrypoint: \"m:f\", config: {text}\n"
              "    )\n  ]\n}\n")
    try:
        result = parse(source, "<value>")
    except KumeoError as exc:
        raise EditError(f"not a .kumeo value: {text.strip()[:80]!r} ({exc})") from None
    if not result.ok or not result.program.workflows or not result.program.workflows[0].agents:
        problems = "; ".join(d.message for d in result.diagnostics) or "not a value"
        raise EditError(f"not a .kumeo value: {text.strip()[:80]!r} ({problems})")
    return result.program.workflows[0].agents[0].config


def _flow(program: Any, name: str | None) -> Any:
    flows = [*program.workflows, *program.subworkflows]
    if not flows:
        raise EditError("the file declares no workflow; write `workflow Name { }` first")
    if name is None:
        return flows[0]
    for flow in flows:
        if flow.name == name:
            return flow
    raise EditError(f"no workflow or subworkflow named {name!r}")


def _agents_of(flow: Any) -> list[Any]:
    return flow.all_agents() if hasattr(flow, "preprocessors") else list(flow.agents)


def _agent(flow: Any, agent_id: str) -> Any:
    for agent in _agents_of(flow):
        if agent.id == agent_id:
            return agent
    raise EditError(f"{flow.name} has no agent {agent_id!r}")


def _ref_to(node_key: str) -> Any:
    """The input reference that reads node ``key`` (an agent id, ``source:<name>``, ``input:<name>``)."""
    from kumeo_iac.spec import Ref

    kind, sep, name = node_key.partition(":")
    if not sep:
        return Ref(path=(node_key, "output"))
    if kind == "source":
        return Ref(path=("source",)) if name in ("", "source") else name
    if kind == "input":
        return Ref(path=("input", name))
    raise EditError(f"a {kind} cannot be an agent's input")


def _set_argument(agent: Any, name: str, value: Any) -> None:
    field = type(agent).field_for_argument(name)
    if field is None:
        raise EditError(f"{agent.kind_name} has no argument {name!r}; it takes "
                        f"{', '.join(type(agent).argument_names())}")
    if field == "id":
        raise EditError("rename an agent with the 'rename' edit")
    setattr(agent, field, value)
    agent.arg_spans.pop(name, None)


def _apply(program: Any, edit: dict[str, Any]) -> None:
    from kumeo_iac.spec import AGENT_KINDS

    op = edit.get("op")
    flow = _flow(program, edit.get("workflow"))
    if op == "add_agent":
        kind = str(edit.get("kind") or "")
        cls = AGENT_KINDS.get(kind)
        if cls is None:
            raise EditError(f"unknown agent kind {kind!r}; kinds: {', '.join(sorted(AGENT_KINDS))}")
        existing = {a.id for a in _agents_of(flow)}
        agent_id = str(edit.get("id") or cls.default_id())
        base, n = agent_id, 2
        while agent_id in existing:
            agent_id, n = f"{base}_{n}", n + 1
        kwargs: dict[str, Any] = {"id": agent_id}
        for name, text in (edit.get("arguments") or {}).items():
            field = cls.field_for_argument(name)
            if field is None:
                raise EditError(f"{kind} has no argument {name!r}")
            kwargs[field] = parse_value(str(text))
        if edit.get("input"):
            kwargs["input"] = _ref_to(str(edit["input"]))
        flow.agents.append(cls(**kwargs))
    elif op == "remove_agent":
        agent = _agent(flow, str(edit.get("agent")))
        for block in ("agents", "preprocessors"):
            items = getattr(flow, block, None)
            if items is not None and agent in items:
                items.remove(agent)
    elif op == "connect":
        target = _agent(flow, str(edit.get("to")))
        ref = _ref_to(str(edit.get("from")))
        if edit.get("part"):  # a join: one named part more
            current = target.input if isinstance(target.input, dict) else ({} if target.input is None else
                                                                            {"main": target.input})
            target.input = {**current, str(edit["part"]): ref}
        else:
            target.input = ref
        target.arg_spans.pop("input", None)
    elif op == "disconnect":
        target = _agent(flow, str(edit.get("to")))
        source = str(edit.get("from") or "")
        if isinstance(target.input, dict) and source:
            kept = {k: v for k, v in target.input.items() if str(v) != str(_ref_to(source))}
            target.input = kept or None
        else:
            target.input = None
        target.arg_spans.pop("input", None)
    elif op == "set_argument":
        agent = _agent(flow, str(edit.get("agent")))
        name = str(edit.get("name") or "")
        text = edit.get("value")
        _set_argument(agent, name, None if text is None or str(text).strip() == "" else parse_value(str(text)))
    elif op == "rename":
        agent = _agent(flow, str(edit.get("agent")))
        new = str(edit.get("id") or "")
        from kumeo_iac.spec import is_identifier

        if not is_identifier(new):
            raise EditError(f"{new!r} is not a valid agent id (letters, digits, _; not starting with a digit)")
        if any(a.id == new for a in _agents_of(flow)):
            raise EditError(f"{flow.name} already has an agent {new!r}")
        old = agent.id
        agent.id = new
        for other in _agents_of(flow):  # keep every reference to it pointing at it
            other.input = _renamed(other.input, old, new)
    else:
        raise EditError(f"unknown edit {op!r}: use add_agent, remove_agent, connect, disconnect, set_argument, "
                        "rename")


def _renamed(value: Any, old: str, new: str) -> Any:
    from kumeo_iac.spec import Ref

    if isinstance(value, Ref) and value.path and value.path[0] == old:
        return Ref(path=(new, *value.path[1:]))
    if isinstance(value, dict):
        return {k: _renamed(v, old, new) for k, v in value.items()}
    return value


def apply_edits(text: str, path: str, edits: Iterable[dict[str, Any]]) -> str:
    """Apply visual-editor edits to `.kumeo` text through the Spec; returns the new canonical text."""
    from kumeo_iac.lang import format_program

    result, diagnostics = _parse(text, path)
    if result is None:
        first = diagnostics[0] if diagnostics else None
        raise EditError(f"fix the syntax error first: {first.format() if first else 'the text does not parse'}")
    if not result.ok:
        first = next(d for d in result.diagnostics if d.is_error)
        raise EditError(f"fix this first (the canvas cannot keep what it cannot read): {first.format()}")
    for edit in edits:
        if not isinstance(edit, dict):
            raise EditError("each edit must be an object {op, …}")
        _apply(result.program, edit)
    return format_program(result.program, result.comments, result.objects)


# -- files ----------------------------------------------------------------------------------------------------


class Workspace:
    """The `.kumeo` files under the dashboard's PATH (one file, or every file of a directory)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        root = Path(path) if path else Path.cwd()
        self.root = root.resolve()
        self.single = self.root.is_file()

    @property
    def base(self) -> Path:
        return self.root.parent if self.single else self.root

    def files(self) -> list[str]:
        """The editable files, relative to the workspace (the single file's name when PATH is a file)."""
        if self.single:
            return [self.root.name]
        if not self.root.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*.kumeo")
                      if not any(part.startswith(".") for part in p.relative_to(self.root).parts))

    def resolve(self, name: str | None) -> Path:
        """The file called ``name`` (default: the first); never a path outside the workspace."""
        files = self.files()
        if not name:
            if not files:
                raise FileNotFoundError(f"no .kumeo file under {self.root}")
            name = files[0]
        candidate = (self.base / name).resolve()
        if candidate.suffix != ".kumeo" or not candidate.is_relative_to(self.base):
            raise PermissionError(f"{name}: only .kumeo files inside {self.base} can be opened")
        if self.single and candidate != self.root:
            raise PermissionError(f"{name}: this dashboard edits {self.root.name} only")
        return candidate

    def display(self, file: Path) -> str:
        return str(file.relative_to(self.base))

    def read(self, name: str | None) -> tuple[Path, str]:
        file = self.resolve(name)
        return file, file.read_text(encoding="utf-8") if file.exists() else ""

    def save(self, name: str | None, text: str) -> Path:
        """Write ``text`` atomically (same permissions); the caller checks it first."""
        file = self.resolve(name)
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            if file.exists():
                os.chmod(tmp, file.stat().st_mode & 0o7777)
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return file


def span_json(span: SourceSpan | None) -> dict[str, Any] | None:
    if span is None:
        return None
    return {"line": span.line, "column": span.column}
