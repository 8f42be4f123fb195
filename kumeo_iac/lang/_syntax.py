"""The concrete syntax tree the parser hands to the builder: values exactly as written, with their positions.

These are plain slotted classes rather than Spec nodes because the parser must not decide what a key means; the
builder does, so it can report a misplaced or misspelled key as a diagnostic with a hint instead of a grammar error.
Positions are 1-based; ``end_column`` is the column of the last character (inclusive), like :class:`SourceSpan`.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class Comment:
    """A ``//`` or ``/* */`` comment as written (markers included), kept so the formatter can put it back."""

    text: str
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def position(self) -> tuple[int, int]:
        return (self.line, self.column)


class Node:
    """Anything with a position: the start of its first token and the end of its last."""

    __slots__ = ("column", "end_column", "end_line", "line")

    line: int
    column: int
    end_line: int
    end_column: int

    def place(self, line: int, column: int, end_line: int, end_column: int) -> None:
        self.line, self.column, self.end_line, self.end_column = line, column, end_line, end_column


class Scalar(Node):
    """A string, number, boolean or null. ``quote`` is 0 (not a string), 1 (``"…"``) or 3 (``\"\"\"…\"\"\"``)."""

    __slots__ = ("quote", "value")

    def __init__(self, value: Any, quote: int) -> None:
        self.value = value
        self.quote = quote

    @property
    def content_column(self) -> int:
        return self.column + self.quote


class PathNode(Node):
    """A bare dotted path such as ``risk.output``."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str, ...]) -> None:
        self.parts = parts


class EntryNode(Node):
    """``key: value`` in an object or a declaration body; the node's position is the key's."""

    __slots__ = ("key", "quoted", "value")

    def __init__(self, key: str, quoted: bool, value: ValueNode) -> None:
        self.key = key
        self.quoted = quoted
        self.value = value


class ObjectNode(Node):
    """``{ key: value, … }``; the position runs from ``{`` to ``}``."""

    __slots__ = ("entries",)

    def __init__(self, entries: list[EntryNode]) -> None:
        self.entries = entries


class ArrayNode(Node):
    """``[ value, … ]``; the position runs from ``[`` to ``]``."""

    __slots__ = ("items",)

    def __init__(self, items: list[ValueNode]) -> None:
        self.items = items


class ArgNode(Node):
    """One argument of a call: positional (``name`` is None) or named; the position is the name's, or the value's."""

    __slots__ = ("name", "value")

    def __init__(self, name: str | None, value: ValueNode) -> None:
        self.name = name
        self.value = value


class CallNode(Node):
    """``Name(arg, name: value, …)``; the position runs from the name to ``)``."""

    __slots__ = ("args", "name")

    def __init__(self, name: str, args: list[ArgNode]) -> None:
        self.name = name
        self.args = args


class DeclNode(Node):
    """A top-level ``keyword [Name] { … }``; ``name_node`` holds the name's position when there is one."""

    __slots__ = ("body", "keyword", "name", "name_node")

    def __init__(self, keyword: str, name: str | None, name_node: Node | None, body: ObjectNode) -> None:
        self.keyword = keyword
        self.name = name
        self.name_node = name_node
        self.body = body


ValueNode = Scalar | PathNode | ObjectNode | ArrayNode | CallNode
