"""Bounds on the work one expression can cause, checked before the parser sees the text.

Parsing is linear but not cheap (lark builds a token and a tree node per operator), so a 900 KB `when:` cost
`kumeo check` and the dashboard seconds of CPU. :func:`prescan` looks at the text once, with a single regular
expression and no tree, and rejects it when it is longer than :data:`MAX_EXPRESSION_LENGTH` characters or nests
brackets and prefix operators deeper than :data:`MAX_NESTING` levels; only then is it parsed.

A caller that must answer in time (the dashboard's ``/api/check``) runs its work inside :func:`time_budget`;
every expression parsed while the budget is open first checks it and raises :class:`BudgetExceeded` once it
is spent. Since one expression is at most 10,000 characters (a few tens of milliseconds to parse), the work
stops within one expression of the deadline.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import time
from collections.abc import Iterator
from typing import Final

from kumeo_iac.errors import KumeoExpressionError
from kumeo_iac.expr._syntax import span_at

__all__ = ["MAX_EXPRESSION_LENGTH", "MAX_NESTING", "BudgetExceeded", "check_budget", "prescan", "time_budget"]

#: Longest expression text accepted, in characters (the longest real condition is a few hundred).
MAX_EXPRESSION_LENGTH: Final = 10_000
#: Deepest nesting of brackets ``( [ {`` and prefix operators ``! - not`` accepted (``!(-(x))`` is 4 levels).
MAX_NESTING: Final = 64

# Strings (skipped whole, so brackets inside quotes do not count), names, numbers, then the punctuation that
# matters for nesting; `!=` is listed before `!` so it is never read as a prefix operator.
_TOKEN: Final = re.compile(
    r"""(?P<string>"(?:[^"\\\n]|\\[^\n])*"?|'(?:[^'\\\n]|\\[^\n])*'?)"""
    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9.eE]*)"""
    r"""|(?P<open>[(\[{])|(?P<close>[)\]}])"""
    r"""|(?P<op>!=|==|<=|>=|&&|\|\||\?\?|\?\.|[-!+*/%<>.,:?=&|])"""
    r"""|(?P<space>\s+)|(?P<other>.)""",
    re.DOTALL,
)
# After these an operand is expected, so a following `-` or `not` is a prefix operator.
_OPERAND_NEXT_WORDS: Final = frozenset({"and", "or", "not", "in", "for"})

_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "kumeo_expr_deadline", default=None)


class BudgetExceeded(Exception):
    """The time given to :func:`time_budget` ran out while expressions were still being parsed.

    Deliberately not a KumeoError: it is not a problem of the text being checked, so no checker may turn it
    into a diagnostic; it travels up to whoever opened the budget.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the check took longer than its budget of {seconds:g} s")
        self.seconds = seconds


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Within the block (this thread or task), parsing an expression after ``seconds`` raises BudgetExceeded."""
    token = _DEADLINE.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_budget() -> None:
    """Raise BudgetExceeded if a :func:`time_budget` is open and spent; nearly free otherwise."""
    budget = _DEADLINE.get()
    if budget is not None and time.monotonic() >= budget[0]:
        raise BudgetExceeded(budget[1])


def prescan(text: str) -> None:
    """Reject text that is too long or nested too deeply, in one pass and before any parsing.

    Raises KumeoExpressionError: for length at the expression's first character, for depth at the bracket or
    operator that goes one level too deep. The scan never fails otherwise; syntax is the parser's business.
    """
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise KumeoExpressionError(
            f"expression is {len(text):,} characters long; the limit is {MAX_EXPRESSION_LENGTH:,}",
            span_at(1, 1),
            hint="split it into smaller conditions, e.g. computed fields of a DataProcessor",
        )
    # `inner` holds, for each open bracket, the depth inside it; `depth` is the current level including any
    # prefix operators read since the last operand.
    inner: list[int] = []
    depth = 0
    expect_operand = True
    after_dot = False
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        value = match.group()
        if kind == "space":
            continue
        if after_dot:  # `a.not`, `a.in`: a key, never an operator
            after_dot = False
            if kind == "word":
                continue
        prefix = expect_operand and (value == "!" or value == "-" or (kind == "word" and value == "not"))
        if kind == "open" or prefix:
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
                raise KumeoExpressionError(
                    f"expression is nested more than {MAX_NESTING} levels deep "
                    "(brackets and the prefix operators ! - not)",
                    span_at(line, column, line, column),
                    hint="flatten it: most brackets around a whole condition can go, and `!!x` is `bool(x)`",
                )
            if kind == "open":
                inner.append(depth)
            expect_operand = True
        elif kind == "close":
            if inner:
                inner.pop()
            depth = inner[-1] if inner else 0
            expect_operand = False
        elif kind == "string" or (kind == "word" and value not in _OPERAND_NEXT_WORDS):
            depth = inner[-1] if inner else 0
            expect_operand = False
        elif value == "." or value == "?.":
            after_dot = True
        else:  # binary operators, `,` `:`, and the words after which an operand comes
            expect_operand = True
