"""The `.dmx` decision-table format: a DMN-style table that risk officers can edit as a markdown table.

    # comment lines start with '#'
    hit_policy: first

    | anomaly_score | amount  | country_mismatch || decision | risk   |
    |---------------|---------|------------------||----------|--------|
    | >= 0.8        | -       | -                || "block"  | "high" |
    | [0.5..0.8)    | > 1000  | true             || "review" | "medium" |
    | -             | -       | -                || "allow"  | "low"  |

Settings lines (``key: value``) come before the table: ``hit_policy`` (``first``, ``unique`` or ``collect``),
``output_key`` (where ``collect`` puts its list) and ``name``/``description`` (documentation only). The header row
names the input columns, then ``||``, then the output columns; a row of dashes follows. An input column is an
expression over the event (usually a field name); each rule's input cell is a unary test on it:

- ``-`` matches anything;
- a value (``"block"``, ``3``, ``true``, ``null``, ``config.limit``) matches when equal;
- ``>= 0.8``, ``< 5``, ``!= "x"``, ``== 2`` compare;
- ``[1..10]`` is an inclusive range, ``(1..10)`` exclusive, ``[1..10)`` and ``(1..10]`` mixed;
- ``"a", "b", [1..3]`` matches when any test matches; ``not("a", "b")`` when none does.

Output cells are literal values (``"block"``, ``0.5``, ``true``, ``null``, ``[1, 2]``, ``{a: 1}``); ``-`` sets
nothing. Each cell becomes one Kumeo expression (``anomaly_score >= 0.8``), compiled once when the table is read:
every operand is first compiled on its own, so a cell can only ever be the test it looks like. Nothing is passed to
``eval``. Errors are KumeoSyntaxErrors naming the file, line and column of the bad cell and what was expected;
they never quote the file's text (a path pointing at some other file must not echo its content into a log).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from kumeo_iac.errors import KumeoExpressionError, KumeoSyntaxError, SourceSpan
from kumeo_iac.expr import Expression, compile_expression

__all__ = ["HIT_POLICIES", "DecisionRule", "DecisionTable", "load_dmx", "parse_dmx", "redact_quotes"]

#: Hit policies by every name accepted (DMN's one-letter forms too) → canonical name.
HIT_POLICIES: Final = {"first": "first", "f": "first", "unique": "unique", "u": "unique", "collect": "collect",
                       "c": "collect"}
_SETTINGS: Final = ("hit_policy", "output_key", "name", "description")
_SETTING_LINE: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*?)\s*$")
_OUTPUT_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEPARATOR_CELL: Final = re.compile(r":?-+:?")
_COMPARISON: Final = re.compile(r"(>=|<=|!=|==|>|<|=)")
_NOT: Final = re.compile(r"not\s*\(")
# Operands that need no parentheses inside a generated test: a path, a number or a string.
_SIMPLE: Final = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*|-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?"
    r"|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
)


@dataclasses.dataclass(frozen=True)
class DecisionRule:
    """One row of a table: a test per input column (None for ``-``) and the outputs it gives."""

    number: int  # 1-based among the rules
    line: int
    tests: tuple[Expression | None, ...]
    outputs: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"rule {self.number} (line {self.line})"

    def matches(self, data: Mapping[str, Any]) -> bool:
        """Whether every input test holds on ``data``; raises KumeoEvaluationError when a test cannot apply."""
        return all(test is None or test.truthy(data) for test in self.tests)


@dataclasses.dataclass(frozen=True)
class DecisionTable:
    """A parsed `.dmx` file: its settings, its columns and its rules, every test compiled."""

    path: str
    hit_policy: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    rules: tuple[DecisionRule, ...]
    output_key: str | None = None
    name: str | None = None
    description: str | None = None


@dataclasses.dataclass(frozen=True)
class _Cell:
    text: str  # stripped
    line: int
    column: int  # 1-based column of the text's first character (of the cell's start when empty)


def load_dmx(path: str | os.PathLike[str]) -> DecisionTable:
    """Read and parse a `.dmx` file; a missing or unreadable file is a KumeoSyntaxError at line 1."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KumeoSyntaxError("decision table file not found", SourceSpan(name, 1, 1)) from None
    except UnicodeDecodeError as error:
        raise KumeoSyntaxError(f"not UTF-8 text ({error.reason})", SourceSpan(name, 1, 1)) from None
    except OSError as error:
        raise KumeoSyntaxError(f"cannot read: {error.strerror or error}", SourceSpan(name, 1, 1)) from None
    return parse_dmx(text, name)


def parse_dmx(text: str, path: str = "<dmx>") -> DecisionTable:
    """Parse `.dmx` text into a DecisionTable with every cell compiled; pure, no I/O."""
    return _Parser(text, path).parse()


class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.path = path

    def error(self, message: str, line: int, column: int, hint: str | None = None, width: int = 0) -> KumeoSyntaxError:
        end = column + width - 1 if width > 1 else None
        return KumeoSyntaxError(message, SourceSpan(self.path, line, column, line if end else None, end), hint)

    # -- the file -----------------------------------------------------------------------------------------------

    def parse(self) -> DecisionTable:
        settings: dict[str, tuple[str, int, int]] = {}
        rows: list[tuple[int, list[_Cell], int | None, int]] = []  # (line, cells, boundary, first pipe column)
        for number, raw in enumerate(self.lines, start=1):
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            indent = len(raw) - len(raw.lstrip())
            if stripped.startswith("|"):
                cells, boundary = self.split_row(raw, number)
                rows.append((number, cells, boundary, indent + 1))
                continue
            if rows:
                raise self.error("unexpected text after the table started", number, indent + 1,
                                 hint="table rows start with '|'; settings such as hit_policy go before the table")
            self.setting(raw, number, indent, settings)
        if not rows:
            raise self.error("no decision table found", 1, 1,
                             hint="write a header row such as `| amount || decision |`, a row of dashes, then rules")

        hit_policy = "first"
        if "hit_policy" in settings:
            value, line, column = settings["hit_policy"]
            if value.lower() not in HIT_POLICIES:
                raise self.error("unknown hit policy", line, column, hint="use first, unique or collect",
                                 width=len(value))
            hit_policy = HIT_POLICIES[value.lower()]
        output_key = settings["output_key"][0] if "output_key" in settings else None
        if output_key is not None and not _OUTPUT_NAME.fullmatch(output_key):
            _, line, column = settings["output_key"]
            raise self.error("output_key must be a field name (letters, digits and '_')", line, column)

        inputs, outputs, subjects = self.header(rows[0])
        if len(rows) < 2 or not self.is_separator(rows[1][1]):
            line = rows[1][0] if len(rows) > 1 else rows[0][0] + 1
            raise self.error("expected a separator row of dashes after the header", line, 1,
                             hint=f"e.g. |{'---|' * len(inputs)}|{'---|' * len(outputs)}")
        line, cells, boundary, pipe = rows[1]
        if boundary != len(inputs) or len(cells) != len(inputs) + len(outputs):
            raise self.error("the separator row does not line up with the header's columns", line, pipe)

        rules = []
        for number, row in enumerate(rows[2:], start=1):
            rules.append(self.rule(number, row, inputs, outputs, subjects))
        if not rules:
            raise self.error("the table has no rules", rows[1][0], 1, hint="add rows below the separator")
        return DecisionTable(
            path=self.path,
            hit_policy=hit_policy,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            rules=tuple(rules),
            output_key=output_key,
            name=settings["name"][0] if "name" in settings else None,
            description=settings["description"][0] if "description" in settings else None,
        )

    def setting(self, raw: str, number: int, indent: int, settings: dict[str, tuple[str, int, int]]) -> None:
        match = _SETTING_LINE.fullmatch(raw.strip())
        if not match:
            raise self.error("expected a setting (`key: value`), a comment (`# …`) or a table row (`| … |`)",
                             number, indent + 1)
        key, value = match.group(1), match.group(2)
        value_column = indent + 1 + match.start(2)
        if key not in _SETTINGS:
            close = difflib.get_close_matches(key, _SETTINGS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known settings: {', '.join(_SETTINGS)}"
            raise self.error("unknown setting", number, indent + 1, hint=hint, width=len(key))
        if key in settings:
            raise self.error(f"{key!r} is set twice (first at line {settings[key][1]})", number, indent + 1,
                             width=len(key))
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value, value_column = value[1:-1], value_column + 1
        settings[key] = (value, number, value_column)

    def split_row(self, raw: str, number: int) -> tuple[list[_Cell], int | None]:
        """Cells of a table line and the index where output columns start (at the ``||``), quotes respected."""
        start = raw.index("|") + 1
        cells: list[_Cell] = []
        boundary: int | None = None
        if raw.startswith("|", start):  # `|| out |`: no input columns at all
            boundary, start = 0, start + 1
        quote: str | None = None
        quote_at = 0
        i = start
        while i < len(raw):
            char = raw[i]
            if quote is not None:
                if char == "\\":
                    i += 2
                    continue
                if char == quote:
                    quote = None
            elif char in "\"'":
                quote, quote_at = char, i
            elif char == "|":
                cells.append(self.cell(raw, number, start, i))
                if i + 1 < len(raw) and raw[i + 1] == "|":
                    if boundary is not None:
                        raise self.error("a row may have only one '||' (between inputs and outputs)", number,
                                         i + 1, width=2)
                    boundary = len(cells)
                    i += 1
                start = i + 1
            i += 1
        if quote is not None:
            raise self.error("unterminated string", number, quote_at + 1, hint=f"close it with {quote}")
        rest = raw[start:].strip()
        if rest and not rest.startswith("#"):
            cells.append(self.cell(raw, number, start, len(raw)))
        return cells, boundary

    @staticmethod
    def cell(raw: str, number: int, start: int, end: int) -> _Cell:
        text = raw[start:end]
        stripped = text.strip()
        leading = len(text) - len(text.lstrip())
        return _Cell(stripped, number, start + 1 + (leading if stripped else 0))

    @staticmethod
    def is_separator(cells: list[_Cell]) -> bool:
        return bool(cells) and all(_SEPARATOR_CELL.fullmatch(c.text) for c in cells)

    # -- the header and the rules -------------------------------------------------------------------------------

    def header(self, row: tuple[int, list[_Cell], int | None, int]) -> tuple[list[str], list[str], list[str]]:
        line, cells, boundary, pipe = row
        if boundary is None:
            raise self.error("the header row needs '||' between the input and the output columns", line, pipe,
                             hint="e.g. `| amount | country || decision |`")
        input_cells, output_cells = cells[:boundary], cells[boundary:]
        if not input_cells:
            raise self.error("the table needs at least one input column before '||'", line, pipe)
        if not output_cells:
            raise self.error("the table needs at least one output column after '||'", line, pipe)
        subjects = []
        for cell in input_cells:
            if not cell.text:
                raise self.error("empty input column name", line, cell.column, hint="name the field it tests")
            subjects.append(self.operand(cell.text, cell, 0, what="input column"))
        names: list[str] = []
        for cell in output_cells:
            if not _OUTPUT_NAME.fullmatch(cell.text):
                raise self.error("output column names must be field names (letters, digits and '_')", line,
                                 cell.column,
                                 width=len(cell.text))
            if cell.text in names:
                raise self.error(f"this output column appears twice (first at column "
                                 f"{output_cells[names.index(cell.text)].column})", line, cell.column,
                                 width=len(cell.text))
            names.append(cell.text)
        return [c.text for c in input_cells], names, subjects

    def rule(
        self,
        number: int,
        row: tuple[int, list[_Cell], int | None, int],
        inputs: list[str],
        outputs: list[str],
        subjects: list[str],
    ) -> DecisionRule:
        line, cells, boundary, pipe = row
        if boundary is None:
            raise self.error("this row has no '||' between its input and output cells", line, pipe)
        if boundary != len(inputs):
            at = cells[len(inputs)] if boundary > len(inputs) else cells[min(boundary, len(cells) - 1)]
            raise self.error(f"this row has {boundary} input cell(s); the header has {len(inputs)}", line,
                             at.column)
        if len(cells) - boundary != len(outputs):
            raise self.error(f"this row has {len(cells) - boundary} output cell(s); the header has {len(outputs)}",
                             line, cells[-1].column if cells else pipe)
        tests = tuple(self.test(subject, cell) for subject, cell in zip(subjects, cells[:boundary], strict=True))
        values: dict[str, Any] = {}
        for name, cell in zip(outputs, cells[boundary:], strict=True):
            if cell.text == "-":
                continue
            values[name] = self.literal(cell)
        return DecisionRule(number=number, line=line, tests=tests, outputs=values)

    def test(self, subject: str, cell: _Cell) -> Expression | None:
        text = cell.text
        if text == "-":
            return None
        if not text:
            raise self.error("empty cell", cell.line, cell.column, hint="write - to match any value")
        negate = False
        body, offset = text, 0
        opening = _NOT.match(text)
        if opening:
            close = _matching_paren(text, opening.end() - 1)
            if close is None:
                raise self.error("unclosed 'not('", cell.line, cell.column, hint="close it with ')'")
            if text[close + 1:].strip():
                raise self.error("unexpected text after not(…)", cell.line, cell.column + close + 1,
                                 hint="put every value inside: not(\"a\", \"b\")")
            negate, body, offset = True, text[opening.end():close], opening.end()
        tests = [self.single_test(subject, part, cell, offset + at) for part, at in _split_commas(body)]
        if not tests:
            raise self.error("not() needs at least one value", cell.line, cell.column)
        joined = tests[0] if len(tests) == 1 else " || ".join(f"({t})" for t in tests)
        source = f"!({joined})" if negate else joined
        try:
            return compile_expression(source)
        except KumeoExpressionError as error:  # pragma: no cover - every part compiled on its own already
            raise self.error(f"invalid test: {error.message}", cell.line, cell.column) from None

    def single_test(self, subject: str, part: str, cell: _Cell, at: int) -> str:
        """One test of a cell as expression text; ``at`` is where ``part`` starts inside the cell's text."""
        lead = len(part) - len(part.lstrip())
        text, at = part.strip(), at + lead
        if not text:
            raise self.error("empty test", cell.line, cell.column + at, hint="remove the extra ','")
        dots = _find_outside(text, "..")
        if text[0] in "[(]" and text[-1] in "])[" and dots is not None:
            low_inclusive, high_inclusive = text[0] == "[", text[-1] == "]"
            low = self.operand(text[1:dots], cell, at + 1, what="range start")
            high = self.operand(text[dots + 2:-1], cell, at + dots + 2, what="range end")
            above, below = (">=" if low_inclusive else ">"), ("<=" if high_inclusive else "<")
            return f"{subject} {above} {low} && {subject} {below} {high}"
        comparison = _COMPARISON.match(text)
        if comparison:
            op = comparison.group(1)
            if op == "=":
                raise self.error("unexpected '='", cell.line, cell.column + at,
                                 hint="write the value alone to test equality, or '=='")
            operand = self.operand(text[comparison.end():], cell, at + comparison.end(), what=f"'{op}'")
            return f"{subject} {op} {operand}"
        return f"{subject} == {self.operand(text, cell, at, what='value')}"

    def operand(self, text: str, cell: _Cell, at: int, *, what: str) -> str:
        """Check that ``text`` is one complete expression on its own, and return it safe to embed."""
        lead = len(text) - len(text.lstrip())
        text, at = text.strip(), at + lead
        if not text:
            raise self.error(f"expected a value for {what}", cell.line, cell.column + at)
        try:
            compile_expression(text)
        except KumeoExpressionError as error:
            column = cell.column + at + ((error.span.column - 1) if error.span is not None else 0)
            hint = error.hint
            if hint is None and re.fullmatch(r"[A-Za-z_][\w ]*", text) and " " in text:
                hint = 'quote text values: "…"'
            raise self.error(f"invalid {what}: {redact_quotes(error.message)}", cell.line, column,
                             hint=_redacted_hint(hint)) from None
        return text if _SIMPLE.fullmatch(text) else f"({text})"

    def literal(self, cell: _Cell) -> Any:
        """An output cell's value: a literal, read with the expression language (constants only)."""
        if not cell.text:
            raise self.error("empty output cell", cell.line, cell.column, hint="write - to set nothing")
        try:
            expression = compile_expression(cell.text)
        except KumeoExpressionError as error:
            column = cell.column + ((error.span.column - 1) if error.span is not None else 0)
            raise self.error(f"invalid output value: {redact_quotes(error.message)}", cell.line, column,
                             hint=_redacted_hint(error.hint)) from None
        if expression.paths or expression.functions:
            hint = 'quote text: "…"' if _OUTPUT_NAME.fullmatch(cell.text) else None
            raise self.error(
                "output cells must be literal values", cell.line, cell.column,
                hint=hint or "use a string, number, true/false, null, a list or an object", width=len(cell.text)
            )
        return expression.evaluate({})


def redact_quotes(message: str) -> str:
    """A parser's message without the text it quotes from a file (names, numbers, strings in quotes or after
    ``string``/``number``); quoted operators such as '&&' stay."""
    message = re.sub(r"\bstring .*$", "string", message)
    message = re.sub(r"\bnumber [^\s,;)]+", "number", message)
    return re.sub(r"'[^']*'|`[^`]*`|\"[^\"]*\"",
                  lambda m: m.group(0) if not re.search(r"\w", m.group(0)[1:-1]) else "…", message)


def _redacted_hint(hint: str | None) -> str | None:
    """A hint of the expression language kept when it names the language's own words (did-you-mean of a function,
    an operator), redacted otherwise."""
    if hint is None or re.fullmatch(r"did you mean '\w+'\??", hint):
        return hint
    return redact_quotes(hint)


def _matching_paren(text: str, opening: int) -> int | None:
    depth = 0
    for i, char in _outside_strings(text[opening:]):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return opening + i
    return None


def _outside_strings(text: str) -> Iterator[tuple[int, str]]:
    """Each position and character of ``text`` that is not inside a quoted string (quotes excluded)."""
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote is not None:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        else:
            yield i, char
        i += 1


def _split_commas(text: str) -> list[tuple[str, int]]:
    """Split on commas outside strings and brackets; each part with its offset in ``text``."""
    parts: list[tuple[str, int]] = []
    depth = 0
    start = 0
    for i, char in _outside_strings(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth <= 0:
            parts.append((text[start:i], start))
            start = i + 1
    if text[start:].strip() or parts:
        parts.append((text[start:], start))
    return parts


def _find_outside(text: str, needle: str) -> int | None:
    """Index of ``needle`` outside string literals, or None."""
    for i, _char in _outside_strings(text):
        if text.startswith(needle, i):
            return i
    return None
