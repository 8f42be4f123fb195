"""Property tests: no input text or event can make the expression language fail with anything but our errors."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kumeo_iac.errors import KumeoEvaluationError, KumeoExpressionError
from kumeo_iac.expr import FUNCTIONS, Expression, compile_expression

NAMES = ["a", "b", "x", "input", "items", "config", "field"]
TOKENS = [
    *NAMES, *FUNCTIONS, "__class__", "__import__", "lambda",
    "0", "1", "2.5", "1e3", "-", "'s'", '"t"', "'", '"', "true", "False", "null", "None",
    "+", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "=", "&&", "||", "!", "&", "|",
    "and", "or", "not", "in", "not in", "for", "??", "?.", "?", ".", ",", ":",
    "(", ")", "[", "]", "{", "}", "\n", " ",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=5), children, max_size=5),
    max_leaves=15,
)
events = st.dictionaries(st.sampled_from(NAMES), json_values, max_size=len(NAMES))


def _compile(text: str) -> Expression | None:
    """Compile, asserting that failure is always a positioned KumeoExpressionError."""
    try:
        return compile_expression(text)
    except KumeoExpressionError as error:
        assert error.span is not None
        assert error.span.path == "<expr>"
        assert error.span.line >= 1 and error.span.column >= 1
        assert error.span.line <= text.count("\n") + 2
        assert error.message and "Traceback" not in error.message
        return None


def _evaluate(expression: Expression, data: dict[str, Any]) -> None:
    try:
        expression.evaluate(data)
        expression.truthy(data)
    except KumeoEvaluationError as error:
        assert expression.source in str(error)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_any_text_compiles_or_raises_a_positioned_error(text: str) -> None:
    _compile(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=14), st.sampled_from([" ", ""]), events)
def test_token_soup_compiles_or_raises_and_evaluates_or_raises(tokens: list[str], glue: str,
                                                               data: dict[str, Any]) -> None:
    expression = _compile(glue.join(tokens))
    if expression is not None:
        assert all(not name.startswith("__") and name in expression.source for name in expression.root_names)
        _evaluate(expression, data)


def _expressions() -> st.SearchStrategy[str]:
    """Well-formed expressions built from the grammar, so evaluation (not just parsing) gets exercised."""
    leaves = st.sampled_from(
        ["a", "b.c", "x[0]", "input?.y", "items", "config.k", "0", "1", "-2.5", "'s'", "''", "null", "true", "[]",
         "[1, 'a']", "{'k': 1}"]
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(
            inner,
            st.sampled_from(["+", "-", "*", "/", "%", "==", "!=", "<", ">=", "in", "not in", "&&", "||", "??", "and",
                             "or"]),
            inner,
        ).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
        unary = st.tuples(st.sampled_from(["-", "!", "not "]), inner).map(lambda t: f"{t[0]}({t[1]})")
        one_arg = st.tuples(
            st.sampled_from([n for n, f in FUNCTIONS.items()
                             if f.min_args <= 1 and (f.max_args is None or f.max_args >= 1) and n != "exists"]),
            inner,
        ).map(lambda t: f"{t[0]}({t[1]})")
        two_args = st.tuples(
            st.sampled_from(["contains", "starts_with", "ends_with", "matches", "min", "max", "round", "coalesce"]),
            inner, inner,
        ).map(lambda t: f"{t[0]}({t[1]}, {t[2]})")
        quantifier = st.tuples(st.sampled_from(["all", "any"]), inner, inner).map(
            lambda t: f"{t[0]}(({t[1]}) for field in {t[2]})")
        index = st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]")
        return binary | unary | one_arg | two_args | quantifier | index | st.just("exists(a.b)")

    return st.recursive(leaves, extend, max_leaves=8)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions(), events)
def test_well_formed_expressions_evaluate_or_raise_evaluation_errors(text: str, data: dict[str, Any]) -> None:
    expression = _compile(text)  # literal-only parts may fail at compile time (e.g. `1 / 0`), positioned
    if expression is not None:
        assert "field" not in expression.root_names or "field" in text.replace("for field", "")
        _evaluate(expression, data)
