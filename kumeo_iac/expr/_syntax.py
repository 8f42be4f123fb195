"""Parsing expression text into a lark tree, and turning lark's failures into messages a workflow author can act on.

The parser is built once per process from ``grammar.lark`` (LALR, contextual lexer) and reused. The happy path
is a single ``Lark.parse``; only when it fails do we replay the text through lark's interactive parser, because
that is what tells us the token *before* the problem ("expected an expression after '&&'"), which lark's own
exception does not carry.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from kumeo_iac.errors import KumeoExpressionError, SourceSpan

__all__ = ["EXPRESSION_PATH", "RESERVED_WORDS", "parse_tree", "span_at", "token_span"]

#: The `path` of every SourceSpan this package produces; `locate()` maps it into the enclosing file.
EXPRESSION_PATH: Final = "<expr>"

#: Words that are operators or literals, so they cannot name a path root, a function or a loop variable.
RESERVED_WORDS: Final = frozenset({"and", "or", "not", "in", "for", "true", "false", "null", "True", "False", "None"})

_BINARY_OPERATORS: Final = frozenset(
    {"||", "&&", "or", "and", "==", "!=", "<", "<=", ">", ">=", "in", "??", "+", "-", "*", "/", "%"}
)
_PREFIX_OPERATORS: Final = frozenset({"not", "!"})
_OPENERS: Final = {"(": ")", "[": "]", "{": "}"}
_CLOSERS: Final = frozenset(_OPENERS.values())
_CHARACTER_HINTS: Final = {
    "=": ("unexpected '='", "use '==' to compare values"),
    "&": ("unexpected '&'", "use '&&' (or 'and') for a logical and"),
    "|": ("unexpected '|'", "use '||' (or 'or') for a logical or"),
    "?": ("unexpected '?'", "there is no `c ? a : b`; use `??` for a default value or `?.` for optional access"),
}


@functools.cache
def _parser() -> Lark:
    grammar = Path(__file__).with_name("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=False)


def span_at(line: int, column: int, end_line: int | None = None, end_column: int | None = None) -> SourceSpan:
    """A span inside the expression text (1-based line and column of the first and last character)."""
    return SourceSpan(EXPRESSION_PATH, line, column, end_line, end_column)


def token_span(token: Token) -> SourceSpan:
    """Where a token sits; lark's end column is exclusive, ours names the last character."""
    line = token.line or 1
    column = token.column or 1
    end_line = token.end_line or line
    end_column = (token.end_column - 1) if token.end_column else column
    return span_at(line, column, end_line, max(end_column, 1))


def parse_tree(text: str) -> Tree[Token]:
    """Parse expression text into a lark tree, or raise KumeoExpressionError pointing at the first problem."""
    if not text.strip():
        raise KumeoExpressionError(
            "empty expression", span_at(1, 1), hint="write a condition such as `amount > 1000`"
        )
    try:
        return _parser().parse(text)
    except LarkError:
        pass  # diagnosed below, outside the except block so users never see lark's traceback chained
    raise _diagnose(text)


def _diagnose(text: str) -> KumeoExpressionError:
    """Replay a failed parse token by token to describe the failure in the author's terms."""
    interactive = _parser().parse_interactive(text)
    tokens: list[Token] = []
    try:
        for token in interactive.iter_parse():
            tokens.append(token)
        # lark's InteractiveParser.feed_eof has no annotations
        interactive.feed_eof(tokens[-1] if tokens else None)  # type: ignore[no-untyped-call]
    except UnexpectedCharacters as error:
        return _bad_character(text, error)
    except UnexpectedToken as error:
        return _bad_token(text, error, tokens)
    except UnexpectedInput as error:  # pragma: no cover - lark raises the two above for LALR
        return KumeoExpressionError("invalid expression", span_at(error.line or 1, error.column or 1))
    return KumeoExpressionError("invalid expression", span_at(1, 1))  # pragma: no cover - parse() had failed


def _bad_character(text: str, error: UnexpectedCharacters) -> KumeoExpressionError:
    pos = error.pos_in_stream if error.pos_in_stream is not None else len(text)
    char = text[pos] if 0 <= pos < len(text) else ""
    span = span_at(error.line, error.column, error.line, error.column)
    if char in "\"'":
        return KumeoExpressionError("unterminated string", span, hint=f"close the string with a matching {char}")
    if char in _CHARACTER_HINTS:
        message, hint = _CHARACTER_HINTS[char]
        return KumeoExpressionError(message, span, hint=hint)
    return KumeoExpressionError(f"unexpected character {char!r}", span)


def _describe(token: Token) -> str:
    if token.type == "NAME":
        return f"name '{token.value}'"
    if token.type in ("INT", "FLOAT"):
        return f"number {token.value}"
    if token.type == "STRING":
        shown = token.value if len(token.value) <= 30 else token.value[:29] + "…"
        return f"string {shown}"
    return f"'{token.value}'"


def _unclosed(tokens: list[Token]) -> Token | None:
    """The innermost bracket still open at the end of the tokens, if any."""
    stack: list[Token] = []
    for token in tokens:
        if token.value in _OPENERS and token.type != "STRING":
            stack.append(token)
        elif token.value in _CLOSERS and token.type != "STRING" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _bad_token(text: str, error: UnexpectedToken, tokens: list[Token]) -> KumeoExpressionError:
    bad = error.token
    seen = tokens[:-1] if tokens and tokens[-1] is bad else tokens
    previous = seen[-1] if seen else None

    # `and x`: the contextual lexer reads a keyword where no operator may stand as a name; blame the keyword.
    if previous is not None and previous.type == "NAME" and previous.value in RESERVED_WORDS and len(seen) == 1:
        return KumeoExpressionError(
            f"unexpected '{previous.value}'",
            token_span(previous),
            hint=f"'{previous.value}' is a reserved word; put an expression before it",
        )

    if bad.type == "$END":
        if previous is None:  # pragma: no cover - empty text is caught before parsing
            return KumeoExpressionError("empty expression", span_at(1, 1))
        line = previous.end_line or previous.line or 1
        column = previous.end_column or (previous.column or 1) + len(previous.value)
        span = span_at(line, column, line, column)
        if previous.type != "STRING" and previous.value in _BINARY_OPERATORS | _PREFIX_OPERATORS:
            return KumeoExpressionError(f"expected an expression after '{previous.value}'", span)
        if previous.value in (".", "?.") and previous.type != "STRING":
            return KumeoExpressionError(f"expected a name after '{previous.value}'", span)
        opener = _unclosed(seen)
        if opener is not None:
            return KumeoExpressionError(
                f"expected '{_OPENERS[opener.value]}'",
                span,
                hint=f"to close the '{opener.value}' at line {opener.line}, column {opener.column}",
            )
        return KumeoExpressionError("unexpected end of expression", span)

    span = token_span(bad)
    if previous is not None and previous.type != "STRING":
        if previous.value in _BINARY_OPERATORS | _PREFIX_OPERATORS:
            return KumeoExpressionError(f"expected an expression after '{previous.value}'", span)
        if previous.value in (".", "?."):
            return KumeoExpressionError(
                f"expected a name after '{previous.value}', got {_describe(bad)}",
                span,
                hint="use brackets for other keys, e.g. `a[\"my-key\"]` or `a[0]`",
            )
    hint: str | None = None
    if bad.value == "(" and bad.type != "STRING" and len(seen) >= 2 and seen[-2].value in (".", "?."):
        name = previous.value if previous else "f"
        hint = f"functions are called by name, e.g. `{name}(x)` rather than `x.{name}()`"
    elif bad.value == "=" and bad.type != "STRING":
        hint = "use '==' to compare values"
    elif bad.type in ("NAME", "INT", "FLOAT", "STRING") and previous is not None:
        hint = "is an operator such as '&&' or '==' missing?"
    return KumeoExpressionError(f"unexpected {_describe(bad)}", span, hint=hint)
