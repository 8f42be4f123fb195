"""Prompt templates: ``{{path}}`` inserts a value of the event, ``{{#if path}}…{{else}}…{{/if}}`` keeps a block.

The whole language, on purpose (nothing in a template is ever evaluated, imported or called):

- ``{{amount}}``, ``{{customer.name}}``, ``{{items.0.sku}}``: a path of keys (letters, digits, ``_``, ``-``) and list
  indexes, looked up in plain dicts and lists only (never an attribute, so ``{{x.__class__}}`` is just a missing
  key). Strings are inserted as they are; numbers and booleans as JSON (``850``, ``0.52``, ``true``); objects and
  lists as compact JSON; null and **unknown paths render as the empty string**.
- ``{{#if path}} … {{/if}}`` and ``{{#if path}} … {{else}} … {{/if}}``, nestable. Falsy: missing, null, false,
  0, ``""``, ``[]``, ``{}``; everything else is truthy.
- ``\\{{`` is a literal ``{{``. Values are inserted once: a value that itself contains ``{{x}}`` is not expanded.

Anything else between ``{{`` and ``}}`` (``{{__import__('os')}}``, ``{{a + b}}``), an unclosed ``{{#if``, a stray
``{{else}}``/``{{/if}}`` or a ``{{`` without ``}}`` is a :class:`KumeoSyntaxError` when the template is compiled,
which the LLM agent does once, in ``start()``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Union

from kumeo_iac.errors import KumeoSyntaxError, SourceSpan

__all__ = ["MISSING", "Template", "compile_template", "lookup", "render_value", "truthy"]

_TAG = re.compile(r"(\\?)\{\{(.*?)\}\}", re.DOTALL)
_SEGMENT = r"(?:[A-Za-z_][A-Za-z0-9_\-]*|[0-9]+)"
_PATH = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
_IF = re.compile(r"#if\s+(\S.*)", re.DOTALL)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: What :func:`lookup` returns for a path the data does not have.
MISSING: Any = _Missing()


@dataclasses.dataclass(frozen=True)
class _Var:
    path: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _If:
    path: tuple[str, ...]
    then: tuple[_Node, ...]
    otherwise: tuple[_Node, ...]


_Node = Union[str, _Var, _If]  # noqa: UP007 - a runtime alias, used before _If is complete


def lookup(data: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` in nested dicts and lists, or :data:`MISSING`; never touches attributes."""
    value = data
    for key in path:
        if isinstance(value, Mapping):
            if key not in value:
                return MISSING
            value = value[key]
        elif isinstance(value, (list, tuple)) and key.isdigit():
            index = int(key)
            if index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def truthy(value: Any) -> bool:
    """The truth of a value for ``{{#if}}``: missing, null, false, 0, NaN and empty strings/lists/objects are false."""
    if value is MISSING or value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, Mapping)):
        return bool(value)
    return True


def render_value(value: Any) -> str:
    """How a value is written into a prompt (see the module docstring)."""
    if value is MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class Template:
    """A compiled template; :meth:`render` fills it from one event's data."""

    def __init__(self, source: str, nodes: tuple[_Node, ...], paths: frozenset[str]) -> None:
        self.source = source
        self._nodes = nodes
        #: Every path the template reads, dotted (``customer.name``), so callers can see what it depends on.
        self.paths = paths

    def render(self, data: Any) -> str:
        out: list[str] = []
        _render(self._nodes, data, out)
        return "".join(out)

    def uses_root(self, name: str) -> bool:
        """Whether any path starts with ``name`` (``uses_root("context")`` for ``{{context.guide}}``)."""
        return any(p == name or p.startswith(name + ".") for p in self.paths)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _render(nodes: tuple[_Node, ...], data: Any, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Var):
            out.append(render_value(lookup(data, node.path)))
        else:
            _render(node.then if truthy(lookup(data, node.path)) else node.otherwise, data, out)


@dataclasses.dataclass
class _Frame:
    path: tuple[str, ...]
    offset: int
    then: list[_Node]
    otherwise: list[_Node] | None = None

    @property
    def current(self) -> list[_Node]:
        return self.then if self.otherwise is None else self.otherwise


def compile_template(source: str, name: str = "template") -> Template:
    """Parse ``source`` once; ``name`` says where it came from in error messages (``LLM 'explain' prompt``)."""
    if not isinstance(source, str):
        raise KumeoSyntaxError(f"{name} must be a string, got {type(source).__name__}", SourceSpan(name, 1, 1))

    def error(message: str, offset: int, hint: str | None = None) -> KumeoSyntaxError:
        line = source.count("\n", 0, offset) + 1
        column = offset - (source.rfind("\n", 0, offset) + 1) + 1
        return KumeoSyntaxError(message, SourceSpan(name, line, column), hint)

    root: list[_Node] = []
    stack: list[_Frame] = []
    paths: set[str] = set()

    def emit(node: _Node) -> None:
        target = stack[-1].current if stack else root
        if isinstance(node, str) and target and isinstance(target[-1], str):
            target[-1] += node
        elif node != "":
            target.append(node)

    def text(chunk: str, offset: int) -> None:
        stray = chunk.find("{{")
        if stray >= 0:
            raise error("'{{' without a closing '}}'", offset + stray, "write \\{{ for literal braces")
        emit(chunk)

    def path_of(text_: str, offset: int) -> tuple[str, ...]:
        text_ = text_.strip()
        if not _PATH.fullmatch(text_):
            raise error(f"not a path: {{{{{text_}}}}}", offset,
                        "a template only inserts values ({{field}}, {{a.b}}, {{items.0}}) and keeps blocks "
                        "({{#if field}}…{{else}}…{{/if}}); nothing in it is evaluated")
        paths.add(text_)
        return tuple(text_.split("."))

    position = 0
    for match in _TAG.finditer(source):
        text(source[position:match.start()], position)
        position = match.end()
        if match.group(1):  # \{{…}}: literal
            emit(match.group(0)[1:])
            continue
        inner = match.group(2).strip()
        offset = match.start()
        if inner.startswith("#"):
            m = _IF.fullmatch(inner)
            if not m:
                helper = inner.split()[0] if inner.split() else inner
                raise error(f"unknown block {{{{{helper}}}}}", offset, "only {{#if path}}…{{/if}} blocks exist")
            stack.append(_Frame(path_of(m.group(1), offset), offset, []))
        elif inner == "else":
            if not stack:
                raise error("{{else}} outside an {{#if}} block", offset)
            if stack[-1].otherwise is not None:
                raise error("a second {{else}} in the same {{#if}} block", offset)
            stack[-1].otherwise = []
        elif inner.startswith("/"):
            if inner != "/if":
                raise error(f"unknown closing tag {{{{{inner}}}}}", offset, "close blocks with {{/if}}")
            if not stack:
                raise error("{{/if}} without an opening {{#if}}", offset)
            frame = stack.pop()
            emit(_If(frame.path, tuple(frame.then), tuple(frame.otherwise or ())))
        else:
            emit(_Var(path_of(inner, offset)))
    text(source[position:], position)
    if stack:
        frame = stack[-1]
        raise error(f"unclosed {{{{#if {'.'.join(frame.path)}}}}}", frame.offset, "close it with {{/if}}")
    return Template(source, tuple(root), frozenset(paths))
