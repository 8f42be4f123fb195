"""Issue 14, items 6 and 7: expensive input is bounded (size, nesting, a time budget for the dashboard's check) and
regular expressions run on RE2, so no pattern can hang `kumeo check`, the dashboard or an agent."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

import pytest

from kumeo_iac.errors import KumeoEvaluationError, KumeoExpressionError
from kumeo_iac.expr import (
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING,
    BudgetExceeded,
    compile_expression,
    time_budget,
)
from kumeo_iac.expr._functions import compile_pattern
from kumeo_iac.lang import parse
from kumeo_iac.validate import validate

CHAIN = " && ".join(["x > 1"] * (900_000 // 9))  # the 900 KB `when` of the issue


def compile_error(text: str) -> KumeoExpressionError:
    with pytest.raises(KumeoExpressionError) as info:
        compile_expression.__wrapped__(text)  # type: ignore[attr-defined] - no cache: time the real work
    return info.value


def workflow(when: str) -> str:
    return textwrap.dedent("""\
        workflow W {
          source: NATS("in")
          target: NATS("out")
          agents: [
            DataProcessor(id: "dp", input: source,
                          when: "WHEN")
          ]
        }
        """).replace("WHEN", when)


def when_column(text: str) -> int:
    """The column of the first character inside the quotes of `when:` (line 6 of ``workflow()``)."""
    line = text.splitlines()[5]
    return line.index('when: "') + len('when: "') + 1


def check(text: str) -> list:
    result = parse(text, "t.kumeo")
    assert [d for d in result.diagnostics if d.is_error] == []
    return [d for d in validate(result.program) if d.code == "expression"]


# -- size ------------------------------------------------------------------------------------------------------------


def test_the_limits_are_the_documented_ones() -> None:
    assert (MAX_EXPRESSION_LENGTH, MAX_NESTING) == (10_000, 64)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "expressions.md").read_text()
    assert "10,000 characters" in docs and "64 levels" in docs and "RE2" in docs


def test_a_long_expression_is_rejected_before_parsing_at_its_start() -> None:
    started = time.perf_counter()
    error = compile_error(CHAIN)
    assert time.perf_counter() - started < 2.0  # parsing it took 7-21 s (a generous bound: CI machines are busy)
    assert error.message == f"expression is {len(CHAIN):,} characters long; the limit is 10,000"
    assert (error.span.line, error.span.column) == (1, 1)
    # exactly at the limit is fine
    at_limit = "'" + "a" * (MAX_EXPRESSION_LENGTH - 2) + "'"
    assert compile_expression(at_limit).evaluate({}) == "a" * (MAX_EXPRESSION_LENGTH - 2)
    assert "10,001 characters long" in compile_error(at_limit + " ").message


def test_kumeo_check_reports_the_long_expression_at_its_position_quickly() -> None:
    text = workflow(CHAIN)
    started = time.perf_counter()
    [d] = check(text)
    assert time.perf_counter() - started < 4.0  # was 7-21 s (a generous bound: CI machines are busy)
    assert d.is_error and f"expression is {len(CHAIN):,} characters long; the limit is 10,000" in d.message
    assert (d.span.line, d.span.column) == (6, when_column(text))  # the first character inside the quotes


# -- nesting ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "(" * 64 + "x" + ")" * 64,
    "!" * 64 + "x",
    "-" * 63 + "(x)",
    "[" * 64 + "]" * 64,
    "not " * 64 + "x",
    "(" * 63 + "a.not.not" + ")" * 63,  # keys after a dot are not operators
    "'" + "(" * 200 + "'",  # brackets inside a string do not nest
    " && ".join(["!(!(x))"] * 40),  # depth returns to zero after each operand
    "x not in [1, 2] && a - -b > 0",
])
def test_nesting_up_to_the_limit_is_accepted(text: str) -> None:
    compile_expression(text)


@pytest.mark.parametrize(("text", "column"), [
    ("(" * 65 + "x" + ")" * 65, 65),
    ("!" * 65 + "x", 65),
    ("!(" * 33 + "x" + ")" * 33, 65),
    ("{a: " * 65 + "1" + "}" * 65, 4 * 64 + 1),
    ("not " * 65 + "x", 4 * 64 + 1),
    ("(" * 10_000 + "x" + ")" * 10_000, None),  # over the length limit first
])
def test_nesting_past_the_limit_is_rejected_where_it_goes_too_deep(text: str, column: int | None) -> None:
    started = time.perf_counter()
    error = compile_error(text)
    assert time.perf_counter() - started < 2.0  # no parse of 10,000 levels (a generous bound for busy machines)
    if column is None:
        assert "characters long" in error.message
    else:
        assert error.message.startswith("expression is nested more than 64 levels deep")
        assert (error.span.line, error.span.column) == (1, column)


def test_ten_thousand_nested_parentheses_in_a_when_are_rejected() -> None:
    deep = "(" * 4_000 + "x" + ")" * 4_000  # under the length limit: depth alone rejects it
    text = workflow(deep)
    [d] = check(text)
    assert d.is_error and "nested more than 64 levels deep" in d.message
    assert (d.span.line, d.span.column) == (6, when_column(text) + 64)


def test_the_nesting_position_is_right_on_a_later_line() -> None:
    error = compile_error("x &&\n  " + "(" * 70 + "y" + ")" * 70)
    assert (error.span.line, error.span.column) == (2, 3 + 64)


# -- the time budget -------------------------------------------------------------------------------------------------


def test_a_spent_budget_stops_parsing_and_is_not_a_diagnostic() -> None:
    with time_budget(0.0), pytest.raises(BudgetExceeded, match="longer than its budget of 0 s"):
        compile_expression("budget_probe_1 > 1")
    compile_expression("budget_probe_1 > 1")  # outside the block nothing is limited
    with time_budget(60.0):
        compile_expression("budget_probe_2 > 1")
    # validation lets it through rather than reporting the expression as broken
    with time_budget(0.0), pytest.raises(BudgetExceeded):
        check(workflow("budget_probe_3 > 1"))


def test_a_budget_bounds_a_check_full_of_long_expressions() -> None:
    body = " || ".join(["(" + " && ".join(f"x{{i}} > {j}" for j in range(40)) + ")"] * 6)
    agents = ",\n".join(
        f'    DataProcessor(id: "dp{i}", input: source, when: "{body.replace("{i}", str(i))}")' for i in range(400)
    )
    text = 'workflow W {\n  source: NATS("in")\n  target: NATS("out")\n  agents: [\n' + agents + "\n  ]\n}\n"
    started = time.perf_counter()
    with time_budget(0.3), pytest.raises(BudgetExceeded):
        check(text)
    # unbudgeted this is ~6 s of parsing; it stops within one expression of the deadline (slack for a busy machine)
    assert time.perf_counter() - started < 0.3 + 2.0


async def test_the_dashboard_check_answers_within_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("starlette")
    from kumeo_iac.dashboard import _app
    from kumeo_iac.dashboard._auth import LocalTokenAuth

    demo = Path(__file__).resolve().parents[1] / "e2e" / "ui_demo" / "orders.kumeo"
    app = _app.create_app(_app.DashboardConfig(path=str(demo), nats_url="nats://127.0.0.1:1",
                                               auth=LocalTokenAuth(token="t")))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)),
                               base_url="http://dashboard")
    headers = {"authorization": "Bearer t"}
    try:
        ok = await client.post("/api/check", json={"text": workflow("x > 1")}, headers=headers)
        assert ok.status_code == 200 and ok.json()["errors"] == 0

        big = await client.post("/api/check", json={"text": workflow(CHAIN)}, headers=headers)
        assert big.status_code == 200 and "the limit is 10,000" in big.json()["diagnostics"][0]["message"]

        monkeypatch.setattr(_app, "CHECK_BUDGET_SECONDS", 0.0)
        started = time.perf_counter()
        responses = await asyncio.gather(*(
            client.post("/api/check", json={"text": workflow(f"dashboard_probe_{i} > 1")}, headers=headers)
            for i in range(6)
        ))
        assert time.perf_counter() - started < 5
        for r in responses:
            assert r.status_code == 422
            assert r.json()["error"].startswith("the check took longer than its budget of 0 s and was stopped")
    finally:
        await client.aclose()


# -- regular expressions on RE2 --------------------------------------------------------------------------------------


def test_catastrophic_backtracking_finishes_in_milliseconds() -> None:
    compile_pattern("warm-up")  # import RE2 outside the timing
    rule = compile_expression("matches(s, '(a+)+$')")
    # A backtracking engine needs ~2^n steps: ~10 s at n = 27 with Python's re, centuries at n = 60. RE2 is linear,
    # so a bound generous enough for a busy machine still tells the two apart.
    for text in ("a" * 60 + "!", "a" * 9_999 + "!"):
        started = time.perf_counter()
        assert rule.evaluate({"s": text}) is False
        assert time.perf_counter() - started < 2.0
    assert rule.evaluate({"s": "aaa"}) is True
    # a pattern from the event is just as safe
    started = time.perf_counter()
    assert compile_expression("matches(s, p)").evaluate({"s": "a" * 80 + "!", "p": "(a|aa)+$"}) is False
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$", True),
    (r"(?i)^ALICE", True),
    (r"\d{3}", False),
    (r"(?P<user>\w+)@", True),
    (r"[[:alpha:]]+@", True),
    (r"\pL+@example", True),
])
def test_re2_syntax_works(pattern: str, expected: bool) -> None:
    assert compile_expression("matches(s, p)").evaluate({"s": "alice@example.org", "p": pattern}) is expected


@pytest.mark.parametrize(("pattern", "feature"), [
    (r"(a)\\1", r"a backreference (\1)"),
    ("(?P<x>a)(?P=x)", "a named backreference (?P=name)"),
    ("foo(?=bar)", "a lookahead"),
    ("(?<!x)foo", "a lookbehind"),
    ("(?>a+)b", "an atomic group"),
    ("a*+b", "a possessive quantifier"),
    (r"a\\Z", r"\Z (write \z, or $)"),
])
def test_unsupported_literal_patterns_fail_at_check_time(pattern: str, feature: str) -> None:
    error = compile_error(f"ok && matches(s, '{pattern}')")
    assert error.message.endswith("which Kumeo's regular expressions (RE2, linear time) do not support")
    assert f"uses {feature}" in error.message
    assert (error.span.line, error.span.column) == (1, 18)  # at the pattern
    text = workflow(f"matches(s, '{pattern}')")
    [d] = check(text)
    assert d.is_error and "do not support" in d.message
    assert (d.span.line, d.span.column) == (6, when_column(text) + len("matches(s, "))


def test_invalid_patterns_still_say_why() -> None:
    assert compile_error("matches(s, '[')").message == (
        "matches() pattern '[' is not a valid regular expression: missing ]: [")


def test_unsupported_patterns_from_event_data_are_evaluation_errors() -> None:
    rule = compile_expression("matches(s, input.pattern)")
    with pytest.raises(KumeoEvaluationError, match=r"uses a lookbehind .* do not support in `matches"):
        rule.evaluate({"s": "x", "input": {"pattern": "(?<=a)b"}})
    with pytest.raises(KumeoEvaluationError, match="is not a valid regular expression"):
        rule.evaluate({"s": "x", "input": {"pattern": "("}})
    with pytest.raises(KumeoEvaluationError, match=r"pattern '.*' is not valid Unicode text"):
        rule.evaluate({"s": "x", "input": {"pattern": "\ud800"}})
    with pytest.raises(KumeoEvaluationError, match=r"input '.*' is not valid Unicode text"):
        rule.evaluate({"s": "\ud800", "input": {"pattern": "x"}})


async def test_a_router_rule_with_a_hostile_pattern_neither_hangs_nor_routes() -> None:
    from agent_helpers import started

    from kumeo_iac.compile import RoutePlan
    from kumeo_iac.runtime._agent import Event, EventRejected

    routes = [RoutePlan("matches(s, '(a+)+$')", "matched", "x"), RoutePlan("matches(s, input.p)", "dynamic", "y"),
              RoutePlan(None, "other", "z")]
    agent = await started("Router", {}, routes=routes, agent_id="r")
    began = time.perf_counter()
    [emit] = await agent.process(Event(id="e1", data={"s": "a" * 60 + "!", "p": "b"}))
    assert emit.subject == "other" and time.perf_counter() - began < 2.0  # backtracking: centuries
    # a pattern RE2 cannot run, from the event: the event is rejected (→ its dead letter) with the reason
    with pytest.raises(EventRejected, match="uses a backreference"):
        await agent.process(Event(id="e2", data={"s": "!", "p": r"(a)\1"}))
