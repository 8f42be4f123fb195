"""The public face of the expression language: compile once, evaluate on many events.

An :class:`Expression` is immutable and safe to share between threads and agents; ``compile_expression`` keeps
an LRU cache keyed by the text, so the same `when:` used by every replica of an agent is parsed once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

from kumeo_iac.errors import KumeoEvaluationError, SourceSpan
from kumeo_iac.expr._compiler import Closure, compile_tree
from kumeo_iac.expr._limits import check_budget, prescan
from kumeo_iac.expr._syntax import parse_tree
from kumeo_iac.expr._values import EvaluationFailure, truthy

__all__ = ["Expression", "compile_expression", "locate", "parse_expression", "validate_expression"]

_CACHE_SIZE: Final = 2048
_NOTHING_BOUND: Final[Mapping[str, Any]] = {}


class Expression:
    """A compiled Kumeo expression: evaluate it on an event, or inspect which paths and functions it uses.

    ``root_names``, ``paths`` and ``functions`` let validation check references (is ``config`` a known root? is
    ``risk.output`` an agent?) without evaluating anything. Names bound by ``all(x > 0 for x in xs)`` are not
    roots, and a path stops at its first computed or numeric index (``a[0].b`` reads ``("a",)``).
    """

    __slots__ = ("_fn", "functions", "paths", "root_names", "source")

    source: str
    root_names: frozenset[str]
    paths: frozenset[tuple[str, ...]]
    functions: frozenset[str]

    def __init__(self, source: str, fn: Closure, paths: frozenset[tuple[str, ...]], functions: frozenset[str]) -> None:
        self.source = source
        self._fn = fn
        self.paths = paths
        self.root_names = frozenset(path[0] for path in paths)
        self.functions = functions

    def evaluate(self, data: Mapping[str, Any]) -> Any:
        """The value of the expression on ``data`` (the event plus any extra roots such as ``input``, ``config``).

        Raises KumeoEvaluationError, naming the expression and the values involved, when an operation cannot
        apply (``'abc' + 3``, division by zero); a missing path is never an error, it is null.
        """
        if not isinstance(data, Mapping):
            raise self._failure(f"expected an object of named values to evaluate on, got {type(data).__name__}")
        try:
            return self._fn(data, _NOTHING_BOUND)
        except EvaluationFailure as failure:
            raise self._failure(str(failure)) from None
        except RecursionError:
            raise self._failure("the data is nested too deeply") from None
        except Exception as error:  # a hostile Mapping or an edge we missed: still one error type for the runtime
            raise self._failure(f"{type(error).__name__}: {error}") from error

    def truthy(self, data: Mapping[str, Any]) -> bool:
        """Whether the value on ``data`` is truthy by JSON rules (null, false, 0, "", [], {} are not)."""
        return truthy(self.evaluate(data))

    def _failure(self, reason: str) -> KumeoEvaluationError:
        error = KumeoEvaluationError(f"{reason} in `{self.source}`")
        error.expression = self.source  # type: ignore[attr-defined]
        error.reason = reason  # type: ignore[attr-defined]
        return error

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_expression(text: str) -> Expression:
    """Parse and compile expression text; raises KumeoExpressionError with a span relative to the text.

    Spans use the path ``"<expr>"`` and 1-based lines and columns inside ``text``; use :func:`locate` to turn
    them into a position in the enclosing file. Text longer than ``MAX_EXPRESSION_LENGTH`` characters or nested
    deeper than ``MAX_NESTING`` levels is rejected before it is parsed; inside a :func:`time_budget` that is
    spent, BudgetExceeded is raised instead of parsing.
    """
    if not isinstance(text, str):
        raise TypeError(f"an expression must be a string, got {type(text).__name__}")
    check_budget()
    prescan(text)
    compiled = compile_tree(parse_tree(text))
    return Expression(text, compiled.fn, compiled.paths, compiled.functions)


def parse_expression(text: str) -> Expression:
    """The same as :func:`compile_expression`; parsing and compiling are one step."""
    return compile_expression(text)


def validate_expression(text: str) -> None:
    """Raise KumeoExpressionError if ``text`` is not a valid expression; return nothing otherwise."""
    compile_expression(text)


def locate(error_span: SourceSpan, string_content_start: SourceSpan) -> SourceSpan:
    """Map a span inside an expression to the file, given where the string's content (after the quote) starts.

    On the expression's first line columns are offset by the content's start column; later lines keep their
    column, since they begin at the start of a file line. Escape sequences in the file's string are not
    accounted for (the caller knows the quoting; the common expression has none).
    """

    def line_of(line: int) -> int:
        return string_content_start.line + line - 1

    def column_of(line: int, column: int) -> int:
        return string_content_start.column + column - 1 if line == 1 else column

    end_line = end_column = None
    if error_span.end_line is not None and error_span.end_column is not None:
        end_line = line_of(error_span.end_line)
        end_column = column_of(error_span.end_line, error_span.end_column)
    return SourceSpan(
        string_content_start.path,
        line_of(error_span.line),
        column_of(error_span.line, error_span.column),
        end_line,
        end_column,
    )
