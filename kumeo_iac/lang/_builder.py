"""Concrete syntax → typed Spec, collecting importer diagnostics instead of stopping at the first problem.

The builder decides what each key means. Problems that only concern one argument (a value of the wrong type, an
unknown kind, too many positional arguments, a duplicate key) become diagnostics at that argument's span and the
rest of the program is still built, so `kumeo check` can report everything wrong with a file in one run. Names the
language does not know (unknown agent arguments, unknown workflow blocks) are kept in ``extra_args`` /
``extra_blocks`` for validation to report with a did-you-mean; the importer does not judge them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from kumeo_iac.errors import Diagnostic, KumeoSpecError, KumeoSyntaxError, Severity, SourceSpan
from kumeo_iac.lang._describe import describe_type, describe_value
from kumeo_iac.lang._parser import DECLARATION_KEYWORDS, SPEC_KEYWORDS, did_you_mean
from kumeo_iac.lang._syntax import (
    ArgNode,
    ArrayNode,
    CallNode,
    DeclNode,
    EntryNode,
    Node,
    ObjectNode,
    PathNode,
    Scalar,
    ValueNode,
)
from kumeo_iac.spec import (
    AGENT_KIND_NAMES,
    CONTEXT_KINDS,
    SOURCE_KINDS,
    TARGET_KINDS,
    Call,
    Deployment,
    IntegrationSpec,
    KindSpec,
    Leaf,
    LocatedStr,
    Monitor,
    Program,
    Ref,
    Resources,
    Scaling,
    SpecNode,
    SubworkflowSpec,
    WorkflowSpec,
)

N = TypeVar("N", bound=SpecNode)

#: Kinds accepted in each position, and an example shown when something else is written there.
_ROLES: dict[str, tuple[dict[str, type[KindSpec]], str]] = {
    "source": (SOURCE_KINDS, 'NATS("subject")'),  # type: ignore[dict-item]
    "target": (TARGET_KINDS, 'NATS("subject")'),  # type: ignore[dict-item]
    "context": (CONTEXT_KINDS, 'KnowledgeBase("docs/")'),  # type: ignore[dict-item]
    "agent": (AGENT_KIND_NAMES, 'LLM("ollama/llama3", prompt: "…")'),  # type: ignore[dict-item]
}

_WORKFLOW_FIELDS = {
    "source": "sources",
    "target": "targets",
    "context": "contexts",
    "preprocessors": "preprocessors",
    "agents": "agents",
    "monitor": "monitor",
    "deployment": "deployment",
    "nats": "nats",
    "models": "models",
    "data": "data",
    "schemas": "schemas",
    "config": "config",
}
_SUBWORKFLOW_FIELDS = {"input": "inputs", "output": "outputs", "context": "contexts", "agents": "agents"}
_INTEGRATION_KEYS = ("workflow", "use", "mapping")
_DISPLAY = {
    "sources": "source",
    "targets": "target",
    "contexts": "context",
    "inputs": "input",
    "outputs": "output",
    "input_mapping": "mapping.input",
    "output_mapping": "mapping.output",
}
_BOOKKEEPING = frozenset({"span", "arg_spans", "extra", "extra_args", "extra_blocks", "kind"})


@functools.cache
def _adapter(cls: type[SpecNode], field: str) -> TypeAdapter[Any]:
    annotation = cls.model_fields[field].annotation  # None only for a field declared without one
    return TypeAdapter(type(None) if annotation is None else annotation)


def _argument_name(cls: type[SpecNode], field: str) -> str:
    info = cls.model_fields.get(field)
    if info is not None and info.alias:
        return info.alias
    return _DISPLAY.get(field, field)


def _keep_located_keys(node: N, fields: dict[str, Any]) -> N:
    """Put back the objects as written where pydantic copied them (``dict[str, Any]`` fields).

    The copy has plain ``str`` keys; the original's keys are :class:`LocatedStr`, which validation needs to point
    at a bad key and the formatter needs to put comments back. The two compare equal, so nothing else changes.
    """
    for name, written in fields.items():
        if isinstance(written, dict) and name not in ("span", "arg_spans"):
            stored = getattr(node, name, None)
            if stored is not written and isinstance(stored, dict) and stored == written:
                setattr(node, name, written)
    return node


class Builder:
    """Turns the declarations of one file into a :class:`Program`; ``diagnostics`` holds what went wrong."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.diagnostics: list[Diagnostic] = []
        #: Each object built from ``{ … }`` by identity, with the span from its ``{`` to its ``}`` (for the formatter).
        self.objects: dict[int, tuple[Any, SourceSpan]] = {}

    def _object(self, built: dict[str, Any], node: ObjectNode) -> dict[str, Any]:
        """Remember where an object's braces were written (the dict itself is kept so its id stays unique)."""
        self.objects[id(built)] = (built, self.span(node))
        return built

    # -- positions and diagnostics ------------------------------------------------------------------------------

    def span(self, node: Node) -> SourceSpan:
        return SourceSpan(self.path, node.line, node.column, node.end_line, node.end_column)

    def point(self, line: int, column: int) -> SourceSpan:
        return SourceSpan(self.path, line, column)

    def error(self, message: str, span: SourceSpan | None, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(message, span, Severity.ERROR, hint, code="import"))

    # -- declarations -------------------------------------------------------------------------------------------

    def program(self, decls: list[DeclNode]) -> Program:
        program = Program(path=self.path, span=self.point(1, 1))
        for decl in decls:
            if decl.keyword == "workflow":
                workflow = self.workflow(decl)
                if workflow is not None:
                    program.workflows.append(workflow)
            elif decl.keyword == "subworkflow":
                subworkflow = self.subworkflow(decl)
                if subworkflow is not None:
                    program.subworkflows.append(subworkflow)
            elif decl.keyword == "integration":
                integration = self.integration(decl)
                if integration is not None:
                    program.integrations.append(integration)
            else:
                raise KumeoSyntaxError(
                    f"expected 'workflow', 'subworkflow' or 'integration', found '{decl.keyword}'",
                    self.point(decl.line, decl.column),
                    did_you_mean(decl.keyword, DECLARATION_KEYWORDS) or did_you_mean(decl.keyword, SPEC_KEYWORDS),
                )
        return program

    def _require_name(self, decl: DeclNode) -> str:
        if decl.name is None:
            raise KumeoSyntaxError(
                f"expected a name after '{decl.keyword}'",
                self.point(decl.body.line, decl.body.column),
                f"write `{decl.keyword} MyName {{ … }}`",
            )
        return decl.name

    def _entries(self, node: ObjectNode, where: str) -> Iterator[EntryNode]:
        """The entries of an object, reporting a key written twice (the first one wins)."""
        seen: dict[str, EntryNode] = {}
        for entry in node.entries:
            first = seen.get(entry.key)
            if first is not None:
                self.error(
                    f"duplicate '{entry.key}' in {where}",
                    self.point(entry.line, entry.column),
                    f"first given at line {first.line}, column {first.column}",
                )
                continue
            seen[entry.key] = entry
            yield entry

    def workflow(self, decl: DeclNode) -> WorkflowSpec | None:
        name = self._require_name(decl)
        where = f"workflow '{name}'"
        fields: dict[str, Any] = {"name": name}
        spans: dict[str, SourceSpan] = {"name": self.span(decl.name_node)} if decl.name_node else {}
        extra: dict[str, Any] = {}
        for entry in self._entries(decl.body, where):
            key, node = entry.key, entry.value
            field = _WORKFLOW_FIELDS.get(key)
            if field is None:
                extra[self.key(entry)] = self.value(node)
                spans["extra:" + key] = self.span(node)
                continue
            if field in ("sources", "targets", "contexts"):
                fields[field] = self.kinds(node, key)
            elif field in ("preprocessors", "agents"):
                fields[field] = self.kinds(node, "agent")
            elif field == "monitor":
                fields[field] = self.settings(node, Monitor, "monitor", where)
            elif field == "deployment":
                fields[field] = self.deployment(node, where)
            else:
                fields[field] = self.value(node)
            spans[field] = self.span(node)
        if extra:
            fields["extra_blocks"] = extra
        return self.construct(WorkflowSpec, fields, spans, self.span(decl), where)

    def subworkflow(self, decl: DeclNode) -> SubworkflowSpec | None:
        name = self._require_name(decl)
        where = f"subworkflow '{name}'"
        fields: dict[str, Any] = {"name": name}
        spans: dict[str, SourceSpan] = {"name": self.span(decl.name_node)} if decl.name_node else {}
        for entry in self._entries(decl.body, where):
            field = _SUBWORKFLOW_FIELDS.get(entry.key)
            if field is None:
                self.error(
                    f"unknown key '{entry.key}' in {where}",
                    self.point(entry.line, entry.column),
                    did_you_mean(entry.key, _SUBWORKFLOW_FIELDS) or "a subworkflow has input, output, context, agents",
                )
                continue
            if field == "contexts":
                fields[field] = self.kinds(entry.value, "context")
            elif field == "agents":
                fields[field] = self.kinds(entry.value, "agent")
            else:
                fields[field] = self.value(entry.value)
            spans[field] = self.span(entry.value)
        return self.construct(SubworkflowSpec, fields, spans, self.span(decl), where)

    def integration(self, decl: DeclNode) -> IntegrationSpec | None:
        where = "integration"
        fields: dict[str, Any] = {}
        spans: dict[str, SourceSpan] = {}
        for entry in self._entries(decl.body, where):
            key, node = entry.key, entry.value
            if key in ("workflow", "use"):
                if isinstance(node, PathNode) and len(node.parts) == 1:
                    fields[key] = node.parts[0]
                elif isinstance(node, Scalar) and node.quote:
                    fields[key] = node.value
                else:
                    self.error(
                        f"'{key}' of integration expects a {'workflow' if key == 'workflow' else 'subworkflow'} name, "
                        f"got {self.describe(node)}",
                        self.span(node),
                    )
                    continue
                spans[key] = self.span(node)
            elif key == "mapping":
                self.mapping(node, fields, spans)
            else:
                self.error(
                    f"unknown key '{key}' in integration",
                    self.point(entry.line, entry.column),
                    did_you_mean(key, _INTEGRATION_KEYS) or "an integration has workflow, use and mapping",
                )
        missing = [k for k in ("workflow", "use") if k not in fields]
        if missing:
            self.error(
                f"integration is missing {' and '.join(repr(k) for k in missing)}",
                self.point(decl.line, decl.column),
                "write `integration { workflow: MyWorkflow, use: MySubworkflow, mapping: { … } }`",
            )
            return None
        if decl.name:
            fields["name"] = decl.name
        return self.construct(IntegrationSpec, fields, spans, self.span(decl), where)

    def mapping(self, node: ValueNode, fields: dict[str, Any], spans: dict[str, SourceSpan]) -> None:
        if not isinstance(node, ObjectNode):
            self.error(
                f"'mapping' of integration expects an object {{ input: {{…}}, output: {{…}} }}, "
                f"got {self.describe(node)}",
                self.span(node),
            )
            return
        for entry in self._entries(node, "mapping"):
            if entry.key not in ("input", "output"):
                self.error(
                    f"unknown key '{entry.key}' in mapping",
                    self.point(entry.line, entry.column),
                    did_you_mean(entry.key, ("input", "output")) or "a mapping has input and output",
                )
                continue
            field = f"{entry.key}_mapping"
            fields[field] = self.value(entry.value)
            spans[field] = self.span(entry.value)

    # -- calls ---------------------------------------------------------------------------------------------------

    def kinds(self, node: ValueNode, role: str) -> list[Any]:
        """A single call or a list of calls of the kinds allowed in ``role`` (source, target, context, agent)."""
        items = node.items if isinstance(node, ArrayNode) else [node]
        out: list[Any] = []
        for item in items:
            if not isinstance(item, CallNode):
                example = _ROLES[role][1]
                self.error(
                    f"expected {'an' if role[0] in 'aeiou' else 'a'} {role} like {example}, "
                    f"got {self.describe(item)}",
                    self.span(item),
                )
                continue
            built = self.kind(item, role)
            if built is not None:
                out.append(built)
        return out

    def kind(self, call: CallNode, role: str) -> KindSpec | None:
        """One call as its kind: positional arguments fill ``positional``, unknown names go to ``extra_args``."""
        table = _ROLES[role][0]
        cls = table.get(call.name)
        if cls is None:
            self._unknown_kind(call, role)
            return None
        fields: dict[str, Any] = {}
        spans: dict[str, SourceSpan] = {}
        extra: dict[str, Any] = {}
        given: dict[str, Node] = {}
        positional = [a for a in call.args if a.name is None]
        if len(positional) > len(cls.positional):
            self._too_many_positional(call, cls, positional)
        index = 0
        for argument in call.args:
            if argument.name is None:
                if index >= len(cls.positional):
                    continue
                field: str | None = cls.positional[index]
                index += 1
            else:
                field = cls.field_for_argument(argument.name)
                if field is None:
                    if argument.name in extra:
                        self._given_twice(argument.name, call.name, argument, given[f"extra:{argument.name}"])
                        continue
                    name = LocatedStr(argument.name, self.point(argument.line, argument.column))
                    extra[name] = self.value(argument.value)
                    spans[f"extra:{argument.name}"] = self.span(argument.value)
                    given[f"extra:{argument.name}"] = argument
                    continue
            assert field is not None
            if field in fields:
                self._given_twice(_argument_name(cls, field), call.name, argument, given[field])
                continue
            fields[field] = self.value(argument.value)
            spans[field] = self.span(argument.value)
            given[field] = argument
        if extra:
            fields["extra_args"] = extra
        return self.construct(cls, fields, spans, self.span(call), call.name)

    def _too_many_positional(self, call: CallNode, cls: type[KindSpec], positional: list[ArgNode]) -> None:
        count = len(cls.positional)
        if count:
            plural = "s" if count != 1 else ""
            message = (
                f"{call.name}() takes at most {count} positional argument{plural} "
                f"({', '.join(cls.positional)}), {len(positional)} given"
            )
        else:
            message = f"{call.name}() takes no positional arguments, {len(positional)} given"
        surplus = positional[count]
        self.error(message, self.span(surplus.value), "name the other arguments, e.g. `input: source`")

    def _given_twice(self, name: str, kind: str, argument: Node, first: Node) -> None:
        self.error(
            f"argument '{name}' of {kind} given twice",
            self.point(argument.line, argument.column),
            f"first given at line {first.line}, column {first.column}",
        )

    def _unknown_kind(self, call: CallNode, role: str) -> None:
        table = _ROLES[role][0]
        elsewhere = [r for r, (kinds, _) in _ROLES.items() if r != role and call.name in kinds]
        if elsewhere:
            self.error(
                f"'{call.name}' is {'an' if elsewhere[0][0] in 'aeiou' else 'a'} {elsewhere[0]} kind, "
                f"not {'an' if role[0] in 'aeiou' else 'a'} {role} kind",
                self.span(call),
                f"{role} kinds are {', '.join(sorted(set(table)))}",
            )
        else:
            self.error(
                f"unknown {role} kind '{call.name}'",
                self.span(call),
                did_you_mean(call.name, table) or f"{role} kinds are {', '.join(sorted(set(table)))}",
            )

    # -- monitor and deployment ---------------------------------------------------------------------------------

    def settings(
        self,
        node: ValueNode,
        cls: type[N],
        name: str,
        owner: str,
        nested: dict[str, Callable[[ValueNode, str], Any]] | None = None,
    ) -> N | None:
        """An object whose known keys are fields of ``cls`` and whose other keys go into its ``extra``."""
        if not isinstance(node, ObjectNode):
            self._type_error(name, owner, "an object", node)
            return None
        nested = nested or {}
        where = name
        fields: dict[str, Any] = {}
        spans: dict[str, SourceSpan] = {}
        extra: dict[str, Any] = {}
        for entry in self._entries(node, where):
            key, value = entry.key, entry.value
            if key in cls.model_fields and key not in _BOOKKEEPING:
                convert = nested.get(key)
                fields[key] = convert(value, where) if convert else self.value(value)
                spans[key] = self.span(value)
            else:
                extra[self.key(entry)] = self.value(value)
                spans["extra:" + key] = self.span(value)
        if extra:
            fields["extra"] = extra
        return self.construct(cls, fields, spans, self.span(node), where)

    def deployment(self, node: ValueNode, owner: str) -> Deployment | None:
        return self.settings(
            node,
            Deployment,
            "deployment",
            owner,
            nested={
                "resources": self._resources,
                "scaling": lambda value, where: self.settings(value, Scaling, "scaling", where),
                "leaf": lambda value, where: self.settings(value, Leaf, "leaf", where),
            },
        )

    def _resources(self, node: ValueNode, owner: str) -> Any:
        if not isinstance(node, ObjectNode):
            return self.value(node)  # construct() reports the type
        out: dict[str, Resources] = {}
        for entry in self._entries(node, "resources"):
            resources = self.settings(entry.value, Resources, f"resources.{entry.key}", owner)
            if resources is not None:
                out[entry.key] = resources
        return self._object(out, node)

    def _type_error(self, name: str, owner: str, expected: str, node: ValueNode) -> None:
        self.error(
            f"invalid value for '{name}' of {owner}: expected {expected}, got {self.describe(node)}",
            self.span(node),
        )

    def describe(self, node: ValueNode) -> str:
        """Like :func:`describe_value`, without converting (and so without reporting anything twice)."""
        if isinstance(node, Scalar):
            return describe_value(node.value)
        if isinstance(node, PathNode):
            return f"the bare path {'.'.join(node.parts)}"
        if isinstance(node, ObjectNode):
            return "an object"
        if isinstance(node, ArrayNode):
            return "a list"
        return f"a call to {node.name}()"

    # -- values --------------------------------------------------------------------------------------------------

    def value(self, node: ValueNode) -> Any:
        """A value as the Spec stores it in loosely typed fields: strings located, paths as Ref, calls as Call."""
        if isinstance(node, Scalar):
            if node.quote:
                return LocatedStr(
                    node.value, self.span(node), self.point(node.line, node.content_column)
                )
            return node.value
        if isinstance(node, PathNode):
            return Ref(path=node.parts, span=self.span(node))
        if isinstance(node, ObjectNode):
            entries = self._entries(node, "object")
            built: dict[str, Any] = {self.key(entry): self.value(entry.value) for entry in entries}
            return self._object(built, node)
        if isinstance(node, ArrayNode):
            return [self.value(item) for item in node.items]
        return self.call_value(node)

    def key(self, entry: EntryNode) -> LocatedStr:
        """An object key as a located string (its span is the key's first character, or its opening quote)."""
        return LocatedStr(
            entry.key,
            self.point(entry.line, entry.column),
            self.point(entry.line, entry.column + (1 if entry.quoted else 0)),
        )

    def call_value(self, call: CallNode) -> Call:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        spans: dict[str, SourceSpan] = {}
        first: dict[str, Node] = {}
        for argument in call.args:
            if argument.name is None:
                spans[str(len(args))] = self.span(argument.value)
                args.append(self.value(argument.value))
            elif argument.name in kwargs:
                self._given_twice(argument.name, call.name, argument, first[argument.name])
            else:
                kwargs[argument.name] = self.value(argument.value)
                spans[argument.name] = self.span(argument.value)
                first[argument.name] = argument
        return Call(name=call.name, args=args, kwargs=kwargs, span=self.span(call), arg_spans=spans)

    # -- construction --------------------------------------------------------------------------------------------

    def construct(
        self, cls: type[N], fields: dict[str, Any], spans: dict[str, SourceSpan], span: SourceSpan, what: str
    ) -> N | None:
        """Build ``cls`` with its constructor; on a type error, report and drop each bad argument, then retry."""
        try:
            return _keep_located_keys(cls(**fields, span=span, arg_spans=spans), fields)
        except (KumeoSpecError, ValidationError, ValueError):
            pass
        for field in list(fields):
            if field in _BOOKKEEPING or field not in cls.model_fields:
                continue
            try:
                _adapter(cls, field).validate_python(fields[field])
            except ValidationError:
                expected = describe_type(cls.model_fields[field].annotation)
                self.error(
                    f"invalid value for '{_argument_name(cls, field)}' of {what}: expected {expected}, "
                    f"got {describe_value(fields[field])}",
                    spans.get(field, span),
                )
                del fields[field]
                spans.pop(field, None)
        try:
            return _keep_located_keys(cls(**fields, span=span, arg_spans=spans), fields)
        except (KumeoSpecError, ValidationError, ValueError) as exc:
            self.error(f"cannot build {what}: {exc}", span)
            return None
