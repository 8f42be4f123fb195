"""Spec → canonical `.kumeo` text (`kumeo fmt`), putting comments back where they were.

The formatter prints from the Spec, not from the text, so its output is canonical by construction: 2-space
indentation, ``name: value`` arguments, one argument per line for calls with two or more, strings re-escaped.
Entries keep the order they were written in (their spans say so); nodes built in Python print in declaration order.

Comments are not part of the Spec. Each one is printed before the first entry that starts after it, at that entry's
indentation; a comment on the same line as a one-line entry stays at the end of that line; comments left at the
end of a block stay there when the block's end is known and otherwise move before whatever comes next. Because the
placement depends only on positions, and the output keeps the order of the input, formatting twice changes nothing.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from kumeo_iac.errors import KumeoSpecError, PythonSpan, SourceSpan
from kumeo_iac.lang._syntax import Comment
from kumeo_iac.spec import (
    Agent,
    Call,
    Context,
    IntegrationSpec,
    KindSpec,
    Program,
    Ref,
    SpecNode,
    SubworkflowSpec,
    WorkflowSpec,
)

if TYPE_CHECKING:
    from kumeo_iac.spec import AnyContext

Pos = tuple[int, int]

WIDTH = 100
_INDENT = "  "
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYWORD_VALUES = frozenset({"true", "false", "null"})
# Control characters and the Unicode line separators are escaped so every tool sees the same lines.
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]')
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BOOKKEEPING = frozenset({"span", "arg_spans", "extra", "extra_args", "kind"})


# -- scalars -------------------------------------------------------------------------------------------------------


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def format_string(value: str) -> str:
    """A string literal: triple-quoted when it spans lines and can be, otherwise ``"…"`` with escapes."""
    if "\n" in value and _fits_triple(value):
        return f'"""{value}"""'
    return _quoted(value)


def _quoted(value: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape, value) + '"'


def _fits_triple(value: str) -> bool:
    # Triple-quoted strings have no escapes: the content must not close them early or hide control characters.
    if '"""' in value or value.endswith('"'):
        return False
    return not any(
        (ch < " " and ch not in "\n\t") or "\x7f" <= ch <= "\x9f" or ch in "\u2028\u2029" for ch in value
    )


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise KumeoSpecError(f"object keys must be strings to be written as .kumeo, got {key!r}")
    if _IDENTIFIER.match(key) and key not in _KEYWORD_VALUES:
        return key
    return _quoted(key)  # keys are never triple-quoted


def _scalar(value: Any) -> str | None:
    """The text of a value that is always one token (or a path), or None."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise KumeoSpecError(f"{value!r} cannot be written in .kumeo")
        return repr(value)
    if isinstance(value, str):
        return format_string(value)
    if isinstance(value, Ref):
        if not value.path or not all(_IDENTIFIER.match(part) for part in value.path):
            raise KumeoSpecError(f"reference {value.path!r} cannot be written as a bare path")
        return ".".join(value.path)
    return None


# -- positions -----------------------------------------------------------------------------------------------------


def _in_text(span: Any) -> TypeGuard[SourceSpan]:
    """A span in the `.kumeo` text being formatted (a Python node's call site is not one)."""
    return isinstance(span, SourceSpan) and not isinstance(span, PythonSpan)


def _span_start(span: SourceSpan | None) -> Pos | None:
    return (span.line, span.column) if _in_text(span) else None


def _span_end(span: SourceSpan | None) -> Pos | None:
    if span is None or not _in_text(span):
        return None
    if span.end_line is not None and span.end_column is not None:
        return (span.end_line, span.end_column)
    return (span.line, span.column)


def _start(value: Any) -> Pos | None:
    """Where a value was written: its own span, or that of the first located thing inside it."""
    span = getattr(value, "span", None)
    if _in_text(span):
        return (span.line, span.column)
    if isinstance(value, dict):
        for key, item in value.items():
            found = _start(key) or _start(item)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for item in value:
            found = _start(item)
            if found:
                return found
    return None


def _end(value: Any) -> Pos | None:
    """Where a value ends, as far as can be known: its span's end, or the last located thing inside it."""
    span = getattr(value, "span", None)
    if _in_text(span):
        return _span_end(span)
    if isinstance(value, dict):
        for key, item in reversed(value.items()):
            found = _end(item) or _end(key)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for item in reversed(value):
            found = _end(item)
            if found:
                return found
    return None


# -- what gets printed ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Child:
    """One line-level entry of a block: ``prefix`` (``"key: "``, ``"name: "`` or ``""``) and its value."""

    prefix: str
    value: Any
    start: Pos | None = None
    end: Pos | None = None


@dataclasses.dataclass
class _Block:
    """A synthetic object (``mapping: { input: …, output: … }``) whose entries come from several fields."""

    children: list[_Child]
    end: Pos | None = None


def _order(children: list[tuple[_Child, int]]) -> list[_Child]:
    """Written order first (by position), then what was built in Python, in declaration order."""
    return [
        child
        for child, _ in sorted(
            children, key=lambda pair: (0, *pair[0].start, 0) if pair[0].start else (1, 0, 0, pair[1])
        )
    ]


def _is_default(node: SpecNode, field: str, value: Any) -> bool:
    """Whether leaving the field out gives the same value (``registry: []`` is not the default ``None``)."""
    if value is None:
        return True
    default = type(node).model_fields[field].get_default(call_default_factory=True)
    return default is not None and type(value) is type(default) and value == default


def _default_ids(agents: Iterable[Agent]) -> set[int]:
    """Agents whose id may be left out because the workflow would assign the same one (by object identity)."""
    agents = list(agents)
    counts: dict[str | None, int] = {}
    for agent in agents:
        counts[agent.id] = counts.get(agent.id, 0) + 1
    omitted = {
        id(a): a for a in agents if a.id and counts[a.id] == 1 and a.id.startswith(type(a).default_id())
    }
    # Replay the workflow's id assignment (kind in snake_case, then _2, _3 … past the ids that are written) and
    # keep an id written whenever the replay would not give it back; repeat until nothing changes.
    while True:
        taken = {a.id for a in agents if id(a) not in omitted}
        wrong = None
        for agent in omitted.values():
            base = type(agent).default_id()
            candidate, n = base, 2
            while candidate in taken:
                candidate, n = f"{base}_{n}", n + 1
            taken.add(candidate)
            if candidate != agent.id:
                wrong = agent
                break
        if wrong is None:
            return set(omitted)
        del omitted[id(wrong)]


def _default_context_id(context: Context) -> str | None:
    """The id a workflow gives this context when none is written (asked of the Spec, not re-implemented)."""
    data = {name: getattr(context, name) for name in context.positional[:1]}
    try:
        probe = type(context)(**data)
        # type(context) is one of the context kinds, which is what the workflow's list holds
        return WorkflowSpec(name="_", contexts=[cast("AnyContext", probe)]).contexts[0].id
    except Exception:  # noqa: BLE001 - a context the Spec cannot rebuild simply keeps its id
        return None


class _Formatter:
    def __init__(
        self, comments: Iterable[Comment], objects: Mapping[int, tuple[Any, SourceSpan]] | None = None
    ) -> None:
        self.lines: list[str] = []
        self.comments = sorted(comments, key=lambda c: c.position)
        self.positions = [c.position for c in self.comments]
        self.next_comment = 0
        self.omit_ids: set[int] = set()
        self.objects = objects or {}

    # -- objects ---------------------------------------------------------------------------------------------------

    def braces(self, value: Any) -> tuple[Pos, Pos] | None:
        """Where an object's ``{`` and ``}`` were written: a Spec node's span, or the parser's record of a dict."""
        span = getattr(value, "span", None) if isinstance(value, SpecNode) else None
        if isinstance(value, dict):
            found = self.objects.get(id(value))
            span = found[1] if found is not None and found[0] is value else None
        if isinstance(span, SourceSpan) and span.end_line is not None and span.end_column is not None:
            return (span.line, span.column), (span.end_line, span.end_column)
        return None

    def comment_inside(self, braces: tuple[Pos, Pos]) -> bool:
        index = bisect.bisect_right(self.positions, braces[0])
        return index < len(self.positions) and self.positions[index] < braces[1]

    def inline_object(self, value: Any, entries: list[tuple[str, Any]], in_array: bool) -> str | None:
        """``{ key: value, … }`` when every value is a scalar, a reference, a list of those or such an object, and no
        comment is inside.

        Objects written in the text need their braces' positions to know that; when those are unknown (but what is
        inside was written) the object takes several lines, except inside an array as before.
        """
        braces = self.braces(value)
        if braces is not None:
            if self.comment_inside(braces):
                return None
        elif not in_array and _start(value) is not None:
            return None
        parts = []
        for prefix, item in entries:
            part = _scalar(item)
            if part is None and (isinstance(item, dict) or _is_object(item)):
                part = self.inline(item, in_array)
            elif part is None and isinstance(item, (list, tuple)) and all(_scalar(x) is not None for x in item):
                part = self.inline(item)  # a flat list of scalars, like ["a", "b"]
            if part is None or "\n" in part:
                return None
            parts.append(prefix + part)
        return "{ " + ", ".join(parts) + " }"

    # -- comments --------------------------------------------------------------------------------------------------

    def _pending_before(self, pos: Pos | None) -> bool:
        return pos is not None and self.next_comment < len(self.comments) and (
            self.comments[self.next_comment].position < pos
        )

    def flush(self, before: Pos | None, indent: int, everything: bool = False) -> None:
        """Print, at ``indent``, every comment not yet printed that starts before ``before``.

        An unknown position (None) flushes nothing, unless ``everything`` is asked for (the end of the file).
        """
        if before is None and not everything:
            return
        while self.next_comment < len(self.comments):
            comment = self.comments[self.next_comment]
            if before is not None and comment.position >= before:
                return
            self.lines.append(_INDENT * indent + comment.text)
            self.next_comment += 1

    def trail(self, start: Pos | None, limit: Pos | None) -> None:
        """Keep one-line comments that followed a one-line entry on its line, at the end of that line."""
        if start is None:
            return
        while self.next_comment < len(self.comments):
            comment = self.comments[self.next_comment]
            if comment.line != start[0] or comment.end_line != comment.line:
                return
            if limit is not None and comment.position >= limit:
                return
            self.lines[-1] += "  " + comment.text
            self.next_comment += 1

    # -- program ---------------------------------------------------------------------------------------------------

    def program(self, program: Program) -> str:
        decls: list[tuple[_Child, int]] = []
        for index, decl in enumerate([*program.workflows, *program.subworkflows, *program.integrations]):
            decls.append((_Child("", decl, _span_start(decl.span), _span_end(decl.span)), index))
        for index, child in enumerate(_order(decls)):
            if index:
                self.lines.append("")
            self.flush(child.start, 0)
            decl = child.value
            if isinstance(decl, WorkflowSpec):
                self.omit_ids = _default_ids(decl.all_agents())
                self.body(f"workflow {decl.name} {{", self.workflow_children(decl), child.end)
            elif isinstance(decl, SubworkflowSpec):
                self.omit_ids = _default_ids(decl.agents)
                self.body(f"subworkflow {decl.name} {{", self.subworkflow_children(decl), child.end)
            else:
                head = f"integration {decl.name} {{" if decl.name else "integration {"
                self.body(head, self.integration_children(decl), child.end)
        self.flush(None, 0, everything=True)
        return "\n".join(self.lines) + "\n" if self.lines else ""

    def body(self, head: str, children: list[_Child], end: Pos | None) -> None:
        """A declaration body: entries without commas, a blank line around entries that take several lines."""
        if not children and not self._pending_before(end):
            self.lines.append(head + "}")
            return
        self.lines.append(head)
        previous_multi = False
        for index, child in enumerate(children):
            mark = len(self.lines)
            limit = children[index + 1].start if index + 1 < len(children) else end
            taken = self.item(1, child, "", limit)
            multi = taken > 1
            if index and (multi or previous_multi):
                self.lines.insert(mark, "")
            previous_multi = multi
        self.flush(end, 1)
        self.lines.append("}")

    def _field(
        self, node: SpecNode, key: str, field: str, value: Any, index: int, span_key: str | None = None
    ) -> tuple[_Child, int]:
        span = node.arg_spans.get(span_key or field)
        return (_Child(f"{_key(key)}: ", value, _span_start(span), _span_end(span)), index)

    def workflow_children(self, wf: WorkflowSpec) -> list[_Child]:
        out: list[tuple[_Child, int]] = []
        if wf.nats is not None:
            out.append(self._field(wf, "nats", "nats", wf.nats, len(out)))
        for key, field in (("source", "sources"), ("target", "targets"), ("context", "contexts")):
            items = getattr(wf, field)
            if items:
                out.append(self._field(wf, key, field, items[0] if len(items) == 1 else list(items), len(out)))
        for field in ("models", "data", "schemas", "config", "preprocessors", "agents"):
            value = getattr(wf, field)
            if value:
                out.append(self._field(wf, field, field, value, len(out)))
        for field in ("monitor", "deployment"):
            value = getattr(wf, field)
            if value is not None:
                out.append(self._field(wf, field, field, value, len(out)))
        for key, value in wf.extra_blocks.items():
            out.append(self._field(wf, key, key, value, len(out), "extra:" + key))
        return _order(out)

    def subworkflow_children(self, sw: SubworkflowSpec) -> list[_Child]:
        out: list[tuple[_Child, int]] = []
        for key, field in (("input", "inputs"), ("output", "outputs")):
            value = getattr(sw, field)
            if value:
                out.append(self._field(sw, key, field, list(value), len(out)))
        if sw.contexts:
            contexts = sw.contexts[0] if len(sw.contexts) == 1 else list(sw.contexts)
            out.append(self._field(sw, "context", "contexts", contexts, len(out)))
        if sw.agents:
            out.append(self._field(sw, "agents", "agents", sw.agents, len(out)))
        return _order(out)

    def integration_children(self, integration: IntegrationSpec) -> list[_Child]:
        out: list[tuple[_Child, int]] = []
        for key in ("workflow", "use"):
            name = getattr(integration, key)
            value: Any = Ref(path=(name,)) if _IDENTIFIER.match(name) and name not in _KEYWORD_VALUES else name
            out.append(self._field(integration, key, key, value, len(out)))
        mapping: list[tuple[_Child, int]] = []
        for key in ("input", "output"):
            value = getattr(integration, f"{key}_mapping")
            if value:
                mapping.append(self._field(integration, key, f"{key}_mapping", value, len(mapping)))
        if mapping:
            children = _order(mapping)
            starts = [c.start for c in children if c.start]
            ends = [c.end for c in children if c.end]
            block = _Block(children, max(ends) if ends else None)
            out.append((_Child("mapping: ", block, min(starts) if starts else None, None), len(out)))
        return _order(out)

    # -- items -----------------------------------------------------------------------------------------------------

    def item(self, indent: int, child: _Child, suffix: str, limit: Pos | None, in_array: bool = False) -> int:
        """Print one entry on new lines at ``indent``; returns how many lines it took (comments not counted)."""
        start = child.start or _start(child.value)
        if start is not None:
            self.flush(start, indent)
        braces = None if child.end else self.braces(child.value)
        end = child.end or (braces[1] if braces else _span_end(getattr(child.value, "span", None)))
        known_end = end
        end = end or _end(child.value)
        text = None if self._pending_before(end) else self.inline(child.value, in_array)
        pad = _INDENT * indent
        if text is not None and (len(pad) + len(child.prefix) + len(text) + len(suffix) <= WIDTH or "\n" in text):
            self.lines.append(pad + child.prefix + text + suffix)
            self.trail(start, limit)
            return 1
        before = len(self.lines)
        # A derived end (the last located thing inside) is no bound for comments that follow it on its line.
        self.block(indent, child.prefix, child.value, suffix, known_end)
        return len(self.lines) - before

    def inline(self, value: Any, in_array: bool = False) -> str | None:
        """The one-line form of a value, or None when it must take several lines."""
        text = _scalar(value)
        if text is not None:
            return text
        if isinstance(value, (list, tuple)):
            parts = []
            for item in value:
                part = self.inline(item, in_array=True)
                if part is None or "\n" in part or isinstance(item, (list, tuple)):
                    return None
                if isinstance(item, SpecNode) and not isinstance(item, Ref):
                    return None
                parts.append(part)
            return "[" + ", ".join(parts) + "]"
        if isinstance(value, dict):
            if not value:
                return "{}"
            return self.inline_object(value, [(f"{_key(key)}: ", item) for key, item in value.items()], in_array)
        if isinstance(value, (KindSpec, Call)):
            name, children = self.call_children(value)
            if not children:
                return f"{name}()"
            if len(children) > 1:
                return None
            only = children[0]
            if isinstance(only.value, dict) and only.value:
                return None
            part = self.inline(only.value)
            if part is None or "\n" in part:
                return None
            return f"{name}({only.prefix}{part})"
        if isinstance(value, SpecNode):
            children = self.object_children(value)
            if not children:
                return "{}"
            return self.inline_object(value, [(child.prefix, child.value) for child in children], in_array)
        if isinstance(value, _Block):
            return "{}" if not value.children else None
        raise KumeoSpecError(f"a {type(value).__name__} cannot be written in .kumeo: {value!r}")

    def block(self, indent: int, prefix: str, value: Any, suffix: str, end: Pos | None) -> None:
        pad = _INDENT * indent
        blank_lines = False
        in_array = False
        if isinstance(value, (KindSpec, Call)):
            name, children = self.call_children(value)
            head, tail = f"{name}(", ")"
        elif isinstance(value, (list, tuple)):
            children = [_Child("", item) for item in value]
            head, tail = "[", "]"
            blank_lines = all(isinstance(item, KindSpec) for item in value)
            in_array = True
        elif isinstance(value, dict):
            children = [
                _Child(f"{_key(key)}: ", item, _start(key) or _start(item), None) for key, item in value.items()
            ]
            head, tail = "{", "}"
        elif isinstance(value, _Block):
            children, head, tail = value.children, "{", "}"
            end = end or value.end
        elif isinstance(value, SpecNode):
            children = self.object_children(value)
            head, tail = "{", "}"
        else:  # a multi-line string too long for one line: strings never break, so print it anyway
            self.lines.append(pad + prefix + (_scalar(value) or "") + suffix)
            return
        self.lines.append(pad + prefix + head)
        previous_multi = False
        for index, child in enumerate(children):
            last = index + 1 == len(children)
            limit = end if last else (children[index + 1].start or _start(children[index + 1].value))
            mark = len(self.lines)
            taken = self.item(indent + 1, child, "" if last else ",", limit, in_array)
            if blank_lines:
                multi = taken > 1
                if index and (multi or previous_multi):
                    self.lines.insert(mark, "")
                previous_multi = multi
        self.flush(end, indent + 1)
        self.lines.append(pad + tail + suffix)

    # -- calls and objects -----------------------------------------------------------------------------------------

    def call_children(self, node: KindSpec | Call) -> tuple[str, list[_Child]]:
        """The arguments of a call in print order, positional ones without a name."""
        if isinstance(node, Call):
            children = []
            for index, arg in enumerate(node.args):
                span = node.arg_spans.get(str(index))
                children.append(_Child("", arg, _span_start(span), _span_end(span)))
            for name, arg in node.kwargs.items():
                span = node.arg_spans.get(name)
                children.append(_Child(f"{_key(name)}: ", arg, _span_start(span), _span_end(span)))
            return node.name, children

        cls = type(node)
        written: list[tuple[_Child, int]] = []
        names: list[str] = []
        positional_rank = {name: rank for rank, name in enumerate(cls.positional)}
        fields = sorted(
            (f for f in cls.meaningful_fields() if f not in _BOOKKEEPING),
            key=lambda f: positional_rank.get(f, len(positional_rank)),
        )
        for field in fields:
            value = getattr(node, field)
            if _is_default(node, field, value):
                continue
            if field == "id" and self._default_id(node):
                continue
            span = node.arg_spans.get(field)
            name = cls.model_fields[field].alias or field
            written.append((_Child(f"{name}: ", value, _span_start(span), _span_end(span)), len(written)))
            names.append(field)
        for name, value in node.extra_args.items():
            span = node.arg_spans.get("extra:" + name)
            child = _Child(f"{_key(name)}: ", value, _span_start(span), _span_end(span))
            written.append((child, len(written)))
            names.append("extra:" + name)
        ordered = _order(written)
        field_of = {id(child): names[index] for child, index in written}
        rank = 0
        for child in ordered:
            if rank < len(cls.positional) and field_of[id(child)] == cls.positional[rank]:
                child.prefix = ""
                rank += 1
            else:
                break
        return node.kind_name, ordered

    def _default_id(self, node: KindSpec) -> bool:
        if isinstance(node, Agent):
            return id(node) in self.omit_ids
        if isinstance(node, Context):
            # Agents name contexts by id, so an id the author wrote stays visible even when it is the default.
            return node.id is not None and "id" not in node.arg_spans and node.id == _default_context_id(node)
        return False

    def object_children(self, node: SpecNode) -> list[_Child]:
        """Monitor, Deployment, Resources, Scaling: their set fields, then their ``extra`` keys."""
        written: list[tuple[_Child, int]] = []
        for field in node.meaningful_fields():
            if field in _BOOKKEEPING:
                continue
            value = getattr(node, field)
            if _is_default(node, field, value):
                continue
            written.append(self._field(node, field, field, value, len(written)))
        for key, value in getattr(node, "extra", {}).items():
            written.append(self._field(node, key, key, value, len(written), "extra:" + key))
        return _order(written)


def _is_object(value: Any) -> bool:
    """A Spec node printed as ``{ … }`` (Monitor, Deployment, Resources, Scaling), not as a call."""
    return isinstance(value, SpecNode) and not isinstance(value, (KindSpec, Call, Ref))


def format_program(
    program: Program,
    comments: list[Comment] | None = None,
    objects: Mapping[int, tuple[Any, SourceSpan]] | None = None,
) -> str:
    """The canonical `.kumeo` text of a program; ``comments`` (from :func:`parse`) are put back where they were.

    ``objects`` (also from :func:`parse`) says where each object's braces were, so an object with a comment inside
    keeps its lines; without it, written objects take several lines (objects built in Python fit on one if short).
    """
    try:
        return _Formatter(comments or [], objects or {}).program(program)
    except RecursionError:
        raise KumeoSpecError("values are nested too deeply to be written as .kumeo") from None


def format_value(value: Any) -> str:
    """A Spec value as `.kumeo` text: what :func:`format_program` writes after ``name:`` (a long value on several
    lines)."""
    formatter = _Formatter([])
    inline = formatter.inline(value)
    if inline is not None:
        return inline
    formatter.lines = []
    formatter.block(0, "", value, "", None)
    return "\n".join(formatter.lines)
