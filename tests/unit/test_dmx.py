"""The `.dmx` decision-table reader: the format, the compiled cell tests, and errors with file:line:col."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kumeo_iac.errors import KumeoSyntaxError
from kumeo_iac.runtime.dmx import DecisionTable, load_dmx, parse_dmx

POLICY = Path(__file__).resolve().parents[2] / "examples" / "fraud_detection" / "policy.dmx"


def table(body: str, header: str = "| x || out |\n|---||---|\n") -> DecisionTable:
    return parse_dmx(header + body, "t.dmx")


def cell(test: str, value: Any) -> bool:
    """Whether a one-column table's single test matches ``{"x": value}``."""
    rule = table(f"| {test} || 1 |\n").rules[0]
    return rule.matches({"x": value})


def first_match(t: DecisionTable, data: dict[str, Any]) -> dict[str, Any] | None:
    return next((dict(r.outputs) for r in t.rules if r.matches(data)), None)


def error_of(text: str) -> tuple[str, int, int, str]:
    with pytest.raises(KumeoSyntaxError) as info:
        parse_dmx(text, "t.dmx")
    span = info.value.span
    assert span is not None
    return span.path, span.line, span.column, info.value.message


# -- the example -----------------------------------------------------------------------------------------------------


def test_policy_example_structure() -> None:
    t = load_dmx(POLICY)
    assert t.path == str(POLICY)
    assert t.hit_policy == "first"
    assert t.inputs == ("anomaly_score", "amount", "risk.fraud")
    assert t.outputs == ("decision", "risk_level")
    assert [r.line for r in t.rules] == [8, 9, 10, 11, 12, 13]
    assert [[x.source if x else None for x in r.tests] for r in t.rules] == [
        ["anomaly_score >= 0.8", None, None],
        ["anomaly_score >= 0.6", None, "risk.fraud >= 0.1"],
        ["anomaly_score >= 0.6", "amount > 1000", None],
        ["anomaly_score >= 0.5", None, None],
        [None, None, "risk.fraud >= 0.1"],
        [None, None, None],
    ]
    assert t.rules[0].outputs == {"decision": "block", "risk_level": "high"}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"anomaly_score": 0.85, "amount": 5, "risk": {"fraud": 0.005}}, {"decision": "block", "risk_level": "high"}),
        ({"anomaly_score": 0.65, "amount": 5, "risk": {"fraud": 0.12}}, {"decision": "block", "risk_level": "high"}),
        ({"anomaly_score": 0.65, "amount": 5000, "risk": {"fraud": 0.0}}, {"decision": "block", "risk_level": "high"}),
        ({"anomaly_score": 0.55, "amount": 5, "risk": {"fraud": 0.0}}, {"decision": "review", "risk_level": "medium"}),
        ({"anomaly_score": 0.1, "amount": 5, "risk": {"fraud": 0.2}}, {"decision": "review", "risk_level": "medium"}),
        ({"anomaly_score": 0.1, "amount": 5, "risk": {"fraud": 0.01}}, {"decision": "allow", "risk_level": "low"}),
        ({}, {"decision": "allow", "risk_level": "low"}),  # missing fields never match a comparison
    ],
)
def test_policy_example_first_match(event: dict[str, Any], expected: dict[str, Any]) -> None:
    assert first_match(load_dmx(POLICY), event) == expected


# -- settings --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "policy"), [("first", "first"), ("UNIQUE", "unique"), ('"collect"', "collect"),
                                               ("C", "collect"), ("u", "unique")])
def test_hit_policy_values(value: str, policy: str) -> None:
    assert table("| 1 || 1 |\n", f"hit_policy: {value}\n| x || out |\n|---||---|\n").hit_policy == policy


def test_default_hit_policy_and_other_settings() -> None:
    t = parse_dmx("# c\nname: Bands\ndescription: 'a, b: c'\noutput_key: hits\n\n| x || y |\n|-||-|\n| - || 1 |\n")
    assert (t.hit_policy, t.name, t.description, t.output_key) == ("first", "Bands", "a, b: c", "hits")


def test_crlf_comments_blank_lines_and_trailing_comment() -> None:
    text = "hit_policy: first\r\n\r\n| x || y |\r\n|:--||--:|\r\n# between rows\r\n\r\n| 1 || 2 | # why\r\n"
    t = parse_dmx(text)
    assert [(r.line, dict(r.outputs)) for r in t.rules] == [(7, {"y": 2})]


# -- input cells -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("test", "matching", "not_matching"),
    [
        ("-", [1, None, "a"], []),
        ('"block"', ["block"], ["Block", None, 1]),
        ("'block'", ["block"], ["x"]),
        ("3", [3, 3.0], [4, "3", True]),
        ("true", [True], [1, "true", False]),
        ("null", [None], [0, ""]),
        (">= 0.8", [0.8, 1], [0.79, None]),
        ("< 5", [4.9], [5, None]),
        ("<= -1", [-1, -2], [0]),
        ('!= "x"', ["y", None], ["x"]),
        ("== 2", [2], [3]),
        ("[1..10]", [1, 5, 10], [0, 11, None]),
        ("(1..10)", [2, 9.5], [1, 10]),
        ("[1..10)", [1], [10]),
        ("(1..10]", [10], [1]),
        ("]1..10[", [5], [1, 10]),
        ("[0.5..0.8)", [0.5, 0.79], [0.8]),
        ('"a", "b"', ["a", "b"], ["c"]),
        ('"a", [5..6], > 100', ["a", 5, 101], [7]),
        ('not("a", "b")', ["c", None], ["a", "b"]),
        ("not(< 0)", [0, 1], [-1]),
        ("not ( [1..2] )", [3], [1]),
        ('"a|b"', ["a|b"], ["a"]),
        ('"x, y"', ["x, y"], ["x"]),
        ("[1, 2]", [[1, 2]], [1]),
        ("config.limit", [7], [8]),
    ],
)
def test_unary_tests(test: str, matching: list[Any], not_matching: list[Any]) -> None:
    rule = table(f"| {test} || 1 |\n").rules[0]
    scope = {"config": {"limit": 7}}
    for value in matching:
        assert rule.matches({**scope, "x": value}), (test, value)
    for value in not_matching:
        assert not rule.matches({**scope, "x": value}), (test, value)


def test_input_column_may_be_an_expression() -> None:
    t = parse_dmx("| customer.age | amount * 2 || y |\n|--|--||--|\n| >= 18 | > 10 || 1 |\n")
    assert [x.source for x in t.rules[0].tests if x] == ["customer.age >= 18", "(amount * 2) > 10"]
    assert t.rules[0].matches({"customer": {"age": 20}, "amount": 6})
    assert not t.rules[0].matches({"customer": {"age": 20}, "amount": 5})


@pytest.mark.parametrize(
    "test",
    [
        ">= 0.8) || (true",
        ">= 0.8) && (true",
        '"a") || ("b',
        "1) || (1",
        "[1..2) || (true]",
    ],
)
def test_cells_cannot_inject_other_tests(test: str) -> None:
    with pytest.raises(KumeoSyntaxError):
        table(f"| {test} || 1 |\n")


# -- output cells ----------------------------------------------------------------------------------------------------


def test_output_literals() -> None:
    t = parse_dmx(
        "| x || a | b | c | d | e | f | g |\n|-||-|-|-|-|-|-|-|\n"
        "| - || \"s\" | 'q' | -2.5 | true | null | [1, \"two\"] | {k: 1, \"m\": [false]} |\n"
        "| - || - | 1 | - | - | - | - | - |\n"
    )
    assert t.rules[0].outputs == {"a": "s", "b": "q", "c": -2.5, "d": True, "e": None, "f": [1, "two"],
                                  "g": {"k": 1, "m": [False]}}
    assert t.rules[1].outputs == {"b": 1}


# -- errors ----------------------------------------------------------------------------------------------------------

HEAD = "| x || y |\n|---||---|\n"


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("hit_polcy: first\n" + HEAD + "| - || 1 |\n", 1, 1, "unknown setting"),
        ("hit_policy: any\n" + HEAD + "| - || 1 |\n", 1, 13, "unknown hit policy"),
        ("hit_policy: first\nhit_policy: first\n" + HEAD, 2, 1, "'hit_policy' is set twice (first at line 1)"),
        ("hello\n", 1, 1, "expected a setting"),
        ("# only a comment\n", 1, 1, "no decision table found"),
        ("| x | y |\n|--|--|\n", 1, 1, "the header row needs '||'"),
        ("|| y |\n|--||--|\n", 1, 1, "the table needs at least one input column"),
        ("| x ||\n|--||\n", 1, 1, "the table needs at least one output column"),
        ("| x || not a name |\n|--||--|\n", 1, 8, "output column names must be field names"),
        ("| x || y | y |\n|--||--|--|\n", 1, 12, "this output column appears twice (first at column 8)"),
        ("| x > || y |\n|--||--|\n", 1, 6, "invalid input column: expected an expression after '>'"),
        ("| x || y |\n| - || 1 |\n", 2, 1, "expected a separator row of dashes"),
        ("| x || y |\n", 2, 1, "expected a separator row of dashes"),
        ("| x || y |\n|--|--|\n", 2, 1, "the separator row does not line up"),
        (HEAD, 2, 1, "the table has no rules"),
        (HEAD + "| - || 1 |\nhit_policy: first\n", 4, 1, "unexpected text after the table started"),
        (HEAD + "| - | 1 |\n", 3, 1, "this row has no '||'"),
        (HEAD + "| 1 | 2 || 3 |\n", 3, 7, "this row has 2 input cell(s); the header has 1"),
        (HEAD + "| 1 || 2 | 3 |\n", 3, 12, "this row has 2 output cell(s); the header has 1"),
        (HEAD + "| 1 || 2 || 3 |\n", 3, 10, "a row may have only one '||'"),
        (HEAD + "|  || 1 |\n", 3, 2, "empty cell"),
        (HEAD + "| >= || 1 |\n", 3, 5, "expected a value for '>='"),
        (HEAD + "| = 3 || 1 |\n", 3, 3, "unexpected '='"),
        (HEAD + "| >= 0..8 || 1 |\n", 3, 8, "invalid '>=': expected a name after '.'"),
        (HEAD + '| "open || 1 |\n', 3, 3, "unterminated string"),
        (HEAD + "| [1..] || 1 |\n", 3, 7, "expected a value for range end"),
        (HEAD + "| [..2] || 1 |\n", 3, 4, "expected a value for range start"),
        (HEAD + "| not(1 || 1 |\n", 3, 3, "unclosed 'not('"),
        (HEAD + "| not(1) 2 || 1 |\n", 3, 9, "unexpected text after not(…)"),
        (HEAD + "| not() || 1 |\n", 3, 3, "not() needs at least one value"),
        (HEAD + '| "a",, "b" || 1 |\n', 3, 7, "empty test"),
        (HEAD + "| x && || 1 |\n", 3, 7, "invalid value: expected an expression after '&&'"),
        (HEAD + "| - || block |\n", 3, 8, "output cells must be literal values"),
        (HEAD + "| - || len(\"a\") |\n", 3, 8, "output cells must be literal values"),
        (HEAD + "| - ||  |\n", 3, 7, "empty output cell"),
        (HEAD + "| - || [1, |\n", 3, 11, "invalid output value: expected ']'"),
        ("output_key: not-a-name\n" + HEAD + "| - || 1 |\n", 1, 13, "output_key must be a field name"),
    ],
)
def test_syntax_errors_point_at_the_cell(text: str, line: int, column: int, message: str) -> None:
    path, got_line, got_column, got_message = error_of(text)
    assert path == "t.dmx"
    assert got_message.startswith(message), got_message
    assert (got_line, got_column) == (line, column), got_message


def test_error_string_is_gcc_style() -> None:
    with pytest.raises(KumeoSyntaxError) as info:
        parse_dmx(HEAD + "| - || block |\n", "policy.dmx")
    assert str(info.value) == (
        'policy.dmx:3:8: error: output cells must be literal values (quote text: "…")'
    )


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(KumeoSyntaxError, match=r"missing\.dmx:1:1: error: decision table file not found"):
        load_dmx(tmp_path / "missing.dmx")
    (tmp_path / "latin1.dmx").write_bytes(b"# caf\xe9\n")
    with pytest.raises(KumeoSyntaxError, match="not UTF-8"):
        load_dmx(tmp_path / "latin1.dmx")


def test_evaluation_errors_surface_from_matches() -> None:
    from kumeo_iac.errors import KumeoEvaluationError

    rule = table("| > 1 || 1 |\n").rules[0]
    with pytest.raises(KumeoEvaluationError, match="cannot compare 'a' > 1"):
        rule.matches({"x": "a"})
