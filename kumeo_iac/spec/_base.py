"""Building blocks shared by every Spec node: source spans, references, calls and argument metadata.

A Spec compares by meaning, not by origin: two nodes are equal when every field but their source spans is equal,
so a workflow imported from `.kumeo` text equals the same workflow built in Python.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
from types import FrameType
from typing import Any, ClassVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from kumeo_iac.errors import PythonSpan, SourceSpan


class LocatedStr(str):
    """A string that remembers where it was written, so a diagnostic about a nested value can point at it.

    It compares and hashes like the plain string, so it never changes the meaning of a Spec.
    """

    span: SourceSpan | None
    content_start: SourceSpan | None

    def __new__(
        cls, value: str, span: SourceSpan | None = None, content_start: SourceSpan | None = None
    ) -> LocatedStr:
        obj = super().__new__(cls, value)
        obj.span = span  # the opening quote
        obj.content_start = content_start  # the first character inside the quotes (for positions in expressions)
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (LocatedStr, (str(self), self.span, self.content_start))

    def __deepcopy__(self, memo: dict[int, Any]) -> LocatedStr:
        return self

    def __copy__(self) -> LocatedStr:
        return self


def span_of(value: Any, fallback: SourceSpan | None = None) -> SourceSpan | None:
    """The span a value was written at, or ``fallback`` when it carries none."""
    span = getattr(value, "span", None)
    return span if isinstance(span, SourceSpan) else fallback


def arg(
    description: str,
    *,
    default: Any = None,
    required: bool = False,
    alias: str | None = None,
    example: str | None = None,
) -> Any:
    """Declare one argument of a kind; the declaration feeds validation, the DSL signature and docs/language.md."""
    extra: dict[str, Any] = {"kumeo_required": required}
    if example is not None:
        extra["kumeo_example"] = example
    return Field(default=default, description=description, alias=alias, json_schema_extra=extra)


_SPEC_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_PACKAGE_DIR = os.path.dirname(_SPEC_DIR.rstrip(os.sep)) + os.sep
_PYDANTIC_DIR = os.path.dirname(os.path.abspath(pydantic.__file__ or "")) + os.sep


def caller_span() -> SourceSpan | None:
    """Where user code built the node being constructed: the file and line of its call (the DSL's ``span``).

    The walk passes over the Spec's own frames (``__init__``, validators that re-type a node) and pydantic's, and
    stops at the first other frame. When that frame is elsewhere in Kumeo (the importer, compile, a component
    building a Program), the node is an internal one and gets no span: only a user's call is a place to point at.
    Cost: a few frame hops and one cached line lookup per node, paid only by nodes built in Python.
    """
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith((_SPEC_DIR, _PYDANTIC_DIR)):
            frame = frame.f_back
            continue
        if filename.startswith((_PACKAGE_DIR, "<frozen ")):
            return None
        line = frame.f_lineno or 1
        text = linecache.getline(filename, line)
        column = len(text) - len(text.lstrip()) + 1 if text.strip() else 1
        return PythonSpan(filename, line, column)
    return None


class SpecNode(BaseModel):
    """Base of every Spec model: typed fields, spans that never take part in equality, unknown args kept aside."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        arbitrary_types_allowed=True,
        validate_assignment=False,
        protected_namespaces=(),
    )

    #: Where the node starts in its `.kumeo` file, or the file and line of the Python call that built it
    #: (``None`` for nodes Kumeo builds itself, and for nodes read from JSON).
    span: SourceSpan | None = Field(default=None, exclude=True, repr=False)
    #: Where each argument's value was written, by argument name.
    arg_spans: dict[str, SourceSpan] = Field(default_factory=dict, exclude=True, repr=False)

    _compared_fields: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, /, **data: Any) -> None:
        if data.get("span") is None:
            data["span"] = caller_span()
        super().__init__(**data)

    @classmethod
    def meaningful_fields(cls) -> tuple[str, ...]:
        """Every field but the bookkeeping ones, in declaration order."""
        if cls.__dict__.get("_compared_fields") is None:
            cls._compared_fields = tuple(n for n in cls.model_fields if n not in ("span", "arg_spans"))
        return cls._compared_fields  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpecNode) or type(self) is not type(other):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.meaningful_fields())

    def __hash__(self) -> int:  # nodes are mutable while a program is built; identity hashing is the honest choice
        return id(self)

    def span_for(self, argument: str) -> SourceSpan | None:
        """The span of one argument's value, falling back to the node's own span."""
        return self.arg_spans.get(argument, self.span)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_identifier(text: str) -> bool:
    return bool(_IDENT.match(text))


class Ref(SpecNode):
    """A bare path written without quotes (``risk.output``, ``LLM.output``, ``input.transaction_data``).

    In Python, ``agent.output`` gives a Ref bound to that agent; the workflow fills in the agent's id once ids are
    assigned, so a Python reference and the same reference written in `.kumeo` compare equal.
    """

    path: tuple[str, ...]
    _agent: Any = PrivateAttr(default=None)

    @classmethod
    def to_agent(cls, agent: Any, *rest: str) -> Ref:
        ref = cls(path=(agent.id or "", "output", *rest))
        ref._agent = agent
        return ref

    @property
    def head(self) -> str:
        return self.path[0] if self.path else ""

    def bind(self) -> None:
        """Refresh the path from the bound agent's id (used after the workflow has assigned ids)."""
        if self._agent is not None and self._agent.id:
            self.path = (self._agent.id, *self.path[1:])

    def __getattr__(self, name: str) -> Any:
        # `llm.output.score` selects a field of the output; private and dunder names keep pydantic's behaviour.
        if name.startswith("_"):
            return super().__getattr__(name)  # type: ignore[misc]
        ref = Ref(path=(*self.path, name))
        ref._agent = self._agent
        return ref

    def __str__(self) -> str:
        return ".".join(self.path)

    def __eq__(self, other: object) -> bool:
        # `input: source` and `input: "source"` say the same thing; resolution treats both as text.
        if isinstance(other, str):
            return str(self) == other
        if isinstance(other, Ref):
            return self.path == other.path
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


class Call(SpecNode):
    """A call that is a value rather than an agent, e.g. ``Database("customers", "SELECT …")`` in a mapping."""

    name: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
