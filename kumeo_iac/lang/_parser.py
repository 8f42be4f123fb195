"""Text → concrete syntax tree, with lark (LALR, contextual lexer) and human-sized syntax errors.

The grammar is compiled once per process (about 20 ms) and the tree is built by lark's inline transformer, so no
intermediate parse tree is allocated: a 500-agent workflow parses in well under the `kumeo check` budget.
Every lark exception is turned into a :class:`KumeoSyntaxError` here; nothing from lark escapes this module.
"""

from __future__ import annotations

import functools
import re
import threading
from importlib import resources
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from kumeo_iac.errors import KumeoSyntaxError, SourceSpan
from kumeo_iac.lang._syntax import (
    ArgNode,
    ArrayNode,
    CallNode,
    Comment,
    DeclNode,
    EntryNode,
    Node,
    ObjectNode,
    PathNode,
    Scalar,
    ValueNode,
)
from kumeo_iac.spec import closest

#: Words that may open a top-level declaration.
DECLARATION_KEYWORDS = ("workflow", "subworkflow", "integration")
#: The keywords of the upstream language specification, offered as did-you-mean suggestions.
SPEC_KEYWORDS = (
    "workflow",
    "subworkflow",
    "integration",
    "source",
    "target",
    "context",
    "agents",
    "input",
    "output",
    "mapping",
    "use",
    "config",
    "preprocessors",
    "monitor",
    "deployment",
)


class _Problem(Exception):
    """A syntax problem found inside a transformer callback, before the file's path is at hand."""

    def __init__(self, message: str, line: int, column: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.hint = message, line, column, hint


_local = threading.local()


def _start(token: Token) -> tuple[int, int]:
    """Where a token starts. lark types positions as optional (a Token built by hand has none); every token the
    lexer makes has them, so 1:1 is only a fallback."""
    return token.line or 1, token.column or 1


def _on_comment(token: Token) -> Token:
    sink = getattr(_local, "comments", None)
    if sink is not None:
        end_line = token.end_line if token.end_line is not None else token.line
        end_column = (token.end_column or 2) - 1
        sink.append(Comment(str(token), token.line or 1, token.column or 1, end_line or 1, end_column))
    return token


def _place(node: Node, first: Any, last: Any) -> Node:
    """Give ``node`` the span from the start of ``first`` to the end of ``last`` (tokens or nodes)."""
    line, column = first.line, first.column
    if isinstance(last, Token):
        end_line, end_column = last.end_line or 1, (last.end_column or 1) - 1
    else:
        end_line, end_column = last.end_line, last.end_column
    node.place(line, column, end_line, end_column)
    return node


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_ESCAPE_RE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)")


def _decode_string(token: Token) -> str:
    """The value of a ``"…"`` token: JSON-style escapes, reported at the backslash when one is not valid."""
    body = str(token)[1:-1]
    if "\\" not in body:
        return body

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code in _ESCAPES:
            return _ESCAPES[code]
        if len(code) == 5:
            return chr(int(code[1:], 16))
        line, start = _start(token)
        raise _Problem(
            f"invalid escape '\\{code}' in string",
            line,
            start + 1 + match.start(),
            'valid escapes are \\" \\\\ \\n \\r \\t and \\uXXXX; write \\\\ for a backslash',
        )

    value = _ESCAPE_RE.sub(replace, body)
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        try:
            value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:
            raise _Problem("invalid \\u escape: unpaired surrogate", *_start(token)) from None
    return value


def _scalar(token: Token) -> Scalar:
    kind = token.type
    if kind == "STRING":
        node = Scalar(_decode_string(token), 1)
    elif kind == "TRIPLE":
        node = Scalar(str(token)[3:-3], 3)
    elif kind == "NUMBER":
        text = str(token)
        node = Scalar(float(text) if any(c in text for c in ".eE") else int(text), 0)
    elif kind == "TRUE":
        node = Scalar(True, 0)
    elif kind == "FALSE":
        node = Scalar(False, 0)
    else:  # NULL
        node = Scalar(None, 0)
    _place(node, token, token)
    return node


def _value(item: Any) -> ValueNode:
    return _scalar(item) if isinstance(item, Token) else item


class _ToSyntax(Transformer):  # type: ignore[type-arg]
    """Lark callbacks building :mod:`._syntax` nodes directly while the LALR parser reduces."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)

    def start(self, children: list[DeclNode]) -> list[DeclNode]:
        return children

    def decl(self, children: list[Any]) -> DeclNode:
        keyword, body = children[0], children[-1]
        name_node = None
        name = None
        if len(children) == 3:
            name = str(children[1])
            name_node = _place(Node(), children[1], children[1])
        return _place(DeclNode(str(keyword), name, name_node, body), keyword, body)  # type: ignore[return-value]

    def object(self, children: list[Any]) -> ObjectNode:
        return _place(ObjectNode(children[1:-1]), children[0], children[-1])  # type: ignore[return-value]

    def entry(self, children: list[Any]) -> EntryNode:
        key_token, value = children[0], _value(children[1])
        quoted = key_token.type == "STRING"
        key = _decode_string(key_token) if quoted else str(key_token)
        return _place(EntryNode(key, quoted, value), key_token, value)  # type: ignore[return-value]

    def path(self, children: list[Token]) -> PathNode:
        return _place(PathNode(tuple(str(t) for t in children)), children[0], children[-1])  # type: ignore[return-value]

    def array(self, children: list[Any]) -> ArrayNode:
        items = [_value(c) for c in children[1:-1]]
        return _place(ArrayNode(items), children[0], children[-1])  # type: ignore[return-value]

    def call(self, children: list[Any]) -> CallNode:
        args: list[ArgNode] = []
        for item in children[2:-1]:
            if isinstance(item, ArgNode):
                args.append(item)
            else:
                value = _value(item)
                args.append(_place(ArgNode(None, value), value, value))  # type: ignore[arg-type]
        return _place(CallNode(str(children[0]), args), children[0], children[-1])  # type: ignore[return-value]

    def named(self, children: list[Any]) -> ArgNode:
        value = _value(children[1])
        return _place(ArgNode(str(children[0]), value), children[0], value)  # type: ignore[return-value]


@functools.cache
def _lark() -> Lark:
    """The compiled parser; built on first use so that importing :mod:`kumeo_iac.lang` stays cheap."""
    grammar = resources.files("kumeo_iac.lang").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        maybe_placeholders=False,
        transformer=_ToSyntax(),
        lexer_callbacks={"COMMENT": _on_comment},
    )


def parse_syntax(text: str, path: str) -> tuple[list[DeclNode], list[Comment]]:
    """Parse ``text`` into declarations and the comments found on the way; raise KumeoSyntaxError if it is not valid."""
    comments: list[Comment] = []
    _local.comments = comments
    try:
        # the Transformer built into the parser turns the tree into declarations
        decls = cast("list[DeclNode]", _lark().parse(text))
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, path) from None
    except _Problem as problem:
        raise KumeoSyntaxError(problem.message, SourceSpan(path, problem.line, problem.column), problem.hint) from None
    finally:
        _local.comments = None
    return decls, comments


# -- error messages ----------------------------------------------------------------------------------------------

_VALUE_START = frozenset({"STRING", "TRIPLE", "NUMBER", "TRUE", "FALSE", "NULL", "NAME", "LBRACE", "LSQB"})
_OPENERS = {"LBRACE": "{", "LSQB": "[", "LPAR": "("}
_CLOSERS = {"LBRACE": "}", "LSQB": "]", "LPAR": ")"}
_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "TRIPLE": "a string",
    "NUMBER": "a number",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "NULL": "'null'",
    "_COLON": "':'",
    "_EQ": "'='",
    "_COMMA": "','",
    "_DOT": "'.'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "$END": "end of file",
}
_TERMINAL_ORDER = list(_TERMINAL_WORDS)


def _join(words: list[str]) -> str:
    unique = list(dict.fromkeys(words))
    if len(unique) <= 1:
        return "".join(unique)
    return ", ".join(unique[:-1]) + " or " + unique[-1]


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type in ("STRING", "TRIPLE"):
        text = str(token)
        return "string " + (text if len(text) <= 24 else text[:20] + '…"')
    if token.type == "NUMBER":
        return f"number {token}"
    return f"'{token}'"


def _describe_expected(expected: set[str]) -> str:
    if expected <= {"NAME", "$END"}:
        return "'workflow', 'subworkflow' or 'integration'"
    if expected == {"NAME", "STRING", "RBRACE"}:
        return "a key or '}'"
    words: list[str] = []
    rest = set(expected)
    if {"STRING", "NUMBER", "LBRACE", "LSQB"} <= rest:
        words.append("a value")
        rest -= _VALUE_START
    words += [_TERMINAL_WORDS[t] for t in _TERMINAL_ORDER if t in rest]
    words += sorted(t for t in rest if t not in _TERMINAL_WORDS)
    return _join(words) or "something else"


def _end_position(text: str) -> tuple[int, int]:
    """Just after the last character that is not white space: where 'unexpected end of file' points."""
    stripped = text.rstrip()
    line = stripped.count("\n") + 1
    column = len(stripped) - (stripped.rfind("\n") + 1) + 1
    return line, column


def did_you_mean(word: str, candidates: Any) -> str | None:
    """``did you mean 'x'?`` for the closest candidate (the rule validation and compile use), or None."""
    match = closest(word, [str(c) for c in candidates])
    return f"did you mean '{match}'?" if match else None


def _syntax_error(exc: UnexpectedInput, text: str, path: str) -> KumeoSyntaxError:
    if isinstance(exc, UnexpectedCharacters):
        return _unexpected_character(exc, text, path)
    if isinstance(exc, UnexpectedToken):
        return _unexpected_token(exc, text, path)
    line, column = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1  # pragma: no cover - lark EOF
    return KumeoSyntaxError("unexpected end of file", SourceSpan(path, max(line, 1), max(column, 1)))


def _unexpected_character(exc: UnexpectedCharacters, text: str, path: str) -> KumeoSyntaxError:
    pos = exc.pos_in_stream if exc.pos_in_stream is not None else len(text)
    span = SourceSpan(path, exc.line, exc.column)
    char = text[pos] if 0 <= pos < len(text) else ""
    if text.startswith('"""', pos):
        return KumeoSyntaxError("unterminated triple-quoted string", span, 'close it with """')
    if char == '"':
        return KumeoSyntaxError(
            "unterminated string",
            span,
            'a "string" ends on the line it starts; use """…""" for text over several lines',
        )
    if text.startswith("/*", pos):
        return KumeoSyntaxError("unterminated comment", span, "close it with */")
    if char == "'":
        return KumeoSyntaxError("unexpected character \"'\"", span, 'strings use double quotes: "…"')
    shown = f"'{char}'" if char.isprintable() and not char.isspace() else f"U+{ord(char or ' '):04X}"
    return KumeoSyntaxError(f"unexpected character {shown}", span)


def _unexpected_token(exc: UnexpectedToken, text: str, path: str) -> KumeoSyntaxError:
    token: Token = exc.token
    if token.type == "$END":
        line, column = _end_position(text)
    else:
        line, column = _start(token)
    span = SourceSpan(path, max(line, 1), max(column, 1))
    stack: list[Any] = list(exc.state.value_stack) if exc.state is not None else []
    expected = _expected_terminals(exc)

    opener = _innermost_open_bracket(stack)
    hint = None
    if opener is not None:
        where = f"the '{_OPENERS[opener.type]}' at line {opener.line}, column {opener.column} is not closed"
        if token.type == "$END":
            return KumeoSyntaxError(f"unexpected end of file; expected '{_CLOSERS[opener.type]}'", span, where)
        if token.type in ("RBRACE", "RSQB", "RPAR") and str(token) != _CLOSERS[opener.type]:
            hint = where

    if opener is None:
        # At the top level: a misspelled declaration keyword deserves a did-you-mean.
        names = [t for t in stack if isinstance(t, Token) and t.type == "NAME"]
        if names and str(names[0]) not in DECLARATION_KEYWORDS:
            word = names[0]
            return KumeoSyntaxError(
                f"expected 'workflow', 'subworkflow' or 'integration', found '{word}'",
                SourceSpan(path, *_start(word)),
                did_you_mean(str(word), SPEC_KEYWORDS),
            )

    previous = stack[-1] if stack else None
    if expected and expected <= {"_COLON", "_EQ"} and isinstance(previous, Token):
        key = _decode_key(previous)
        return KumeoSyntaxError(f"expected ':' after '{key}'", span, hint)

    message = f"unexpected {_describe_token(token)}; expected {_describe_expected(expected)}"
    if token.type == "NAME" and "_COLON" in expected and isinstance(previous, Token) and previous.type == "NAME":
        hint = hint or f"a ':' is missing after '{previous}'"
    return KumeoSyntaxError(message, span, hint)


def _innermost_open_bracket(stack: list[Any]) -> Token | None:
    """The last bracket still open on the parser stack (a closer not yet reduced cancels its opener)."""
    open_tokens: list[Token] = []
    for item in stack:
        if isinstance(item, Token):
            if item.type in _OPENERS:
                open_tokens.append(item)
            elif item.type in ("RBRACE", "RSQB", "RPAR") and open_tokens:
                open_tokens.pop()
    return open_tokens[-1] if open_tokens else None


def _expected_terminals(exc: UnexpectedToken) -> set[str]:
    """What the parser could have shifted; the contextual lexer's own guess (``exc.expected``) is less exact."""
    state = exc.state
    try:
        return {name for name in state.parse_conf.states[state.position] if name.isupper()}
    except (AttributeError, KeyError, TypeError):
        return set(exc.expected or ())


def _decode_key(token: Token) -> str:
    if token.type == "STRING":
        try:
            return _decode_string(token)
        except _Problem:
            return str(token)
    return str(token)
