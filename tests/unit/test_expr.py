"""Semantics of the expression language: operators, precedence, paths, functions, quantifiers, static facts."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from kumeo_iac.errors import KumeoEvaluationError, KumeoExpressionError, SourceSpan
from kumeo_iac.expr import (
    FUNCTIONS,
    Expression,
    compile_expression,
    locate,
    parse_expression,
    validate_expression,
)

EVENT: dict[str, Any] = {
    "amount": 1500,
    "price": 2.5,
    "zero": 0,
    "name": "Ada Lovelace",
    "empty": "",
    "flag": True,
    "off": False,
    "nothing": None,
    "tags": ["vip", "eu", 3],
    "nums": [3, 1, 2],
    "user": {"email": "ada@example.com", "age": 36, "address": {"city": "London"}, "notes": None},
    "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}],
    "key": "email",
    "payload": '{"ok": true}',
}


def ev(text: str, data: dict[str, Any] | None = None) -> Any:
    return compile_expression(text).evaluate(EVENT if data is None else data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # literals
        ("42", 42),
        ("3.25", 3.25),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ("'single'", "single"),
        ('"double"', "double"),
        (r"'it\'s'", "it's"),
        (r'"a\"b"', 'a"b'),
        (r"'tab\there'", "tab\there"),
        (r"'line\nbreak'", "line\nbreak"),
        (r"'\u00e9'", "é"),
        (r"'\d+'", "\\d+"),  # unknown escapes stay as written, so regexes need no double escaping
        ("true", True),
        ("True", True),
        ("false", False),
        ("False", False),
        ("null", None),
        ("None", None),
        ("[1, 'a', null, [true]]", [1, "a", None, [True]]),
        ("[]", []),
        ("[1, 2,]", [1, 2]),
        ('{"k": 1, other: [amount]}', {"k": 1, "other": [1500]}),
        ("{}", {}),
        # arithmetic and precedence
        ("1 + 2 * 3", 7),
        ("1 + 2 * 3 == 7", True),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 * 3 % 4", 2),
        ("7 / 2", 3.5),
        ("7 % 3", 1),
        ("-7 % 3", 2),
        ("-amount", -1500),
        ("- -amount", 1500),
        ("-2 * 3", -6),
        ("amount + price", 1502.5),
        ("'ab' + 'cd'", "abcd"),
        ("name + '!'", "Ada Lovelace!"),
        ("[1] + [2, 3]", [1, 2, 3]),
        # comparisons
        ("amount > 1000", True),
        ("amount >= 1500", True),
        ("amount < 1500", False),
        ("amount <= 1500", True),
        ("1000 < amount", True),
        ("amount == 1500.0", True),
        ("1 == 1.0", True),
        ("amount != 1500", False),
        ("'a' < 'b'", True),
        ("name == 'Ada Lovelace'", True),
        ("true == 1", False),
        ("flag == true", True),
        ("0 == false", False),
        ("null == null", True),
        ("nothing == null", True),
        ("missing == null", True),
        ("[1, 2] == [1.0, 2]", True),
        ("{'a': 1} == {'a': 1.0}", True),
        ("user.address == {'city': 'London'}", True),
        ("tags != ['vip']", True),
        # ordering with null is always false
        ("missing > 1", False),
        ("missing < 1", False),
        ("missing >= 1", False),
        ("missing <= 1", False),
        ("nothing < amount", False),
        # in / not in
        ("'vip' in tags", True),
        ("3 in tags", True),
        ("3.0 in tags", True),
        ("'x' in tags", False),
        ("'x' not in tags", True),
        ("'Love' in name", True),
        ("'love' in name", False),
        ("'email' in user", True),
        ("'phone' in user", False),
        ("'phone' not in user", True),
        ("'a' in missing", False),
        ("'a' not in missing", True),
        ("key in ['email', 'phone']", True),
        ("amount in ['1500']", False),
        ("[1] in [[1], [2]]", True),
        ("1 in [true]", False),
        # logic: short-circuit and booleans out
        ("flag && amount", True),
        ("flag and amount", True),
        ("off || zero", False),
        ("off or 'x'", True),
        ("!flag", False),
        ("not flag", False),
        ("not a and b", False),
        ("not off and flag", True),  # (not off) and flag
        ("not amount == 1", True),  # not (amount == 1): `not` is loose
        ("!amount == false", True),  # (!amount) == false: `!` is tight
        ("off && missing.x > 1", False),
        ("flag || (1 / zero)", True),  # the right side is never evaluated
        ("off || flag && off", False),  # && binds tighter than ||
        ("flag || off && off", True),
        ("amount > 1000 && name != '' || off", True),
        # truthiness via !
        ("!''", True),
        ("![]", True),
        ("!{}", True),
        ("!0", True),
        ("!0.0", True),
        ("!null", True),
        ("!'0'", False),
        ("![0]", False),
        # paths, indexing, optional chaining, coalescing
        ("user.email", "ada@example.com"),
        ("user.address.city", "London"),
        ("user['address']['city']", "London"),
        ("user[key]", "ada@example.com"),
        ("items[1].sku", "b"),
        ("items[-1].qty", 0),
        ("items[5].sku", None),
        ("items['x']", None),
        ("tags[0]", "vip"),
        ("name[0]", "A"),
        ("missing", None),
        ("missing.deep.path", None),
        ("user.address.city.x", None),
        ("amount.x", None),
        ("user?.address?.city", "London"),
        ("missing?.address?.city", None),
        ("items?.[0]?.sku", "a"),
        ("missing?.[0]", None),
        ("user.notes ?? 'none'", "none"),
        ("missing ?? 'default'", "default"),
        ("zero ?? 5", 0),
        ("off ?? true", False),
        ("missing ?? nothing ?? 'last'", "last"),
        ("reviewed.analysis?.review_notes ?? ''", ""),
        ("missing ?? 0 > 10", False),  # ?? binds tighter than comparison
        ("amount ?? 0 + 1", 1500),  # ...and looser than arithmetic
        ("input.user.age", 36),
    ],
)
def test_evaluates(text: str, expected: Any) -> None:
    data = {**EVENT, "input": EVENT}
    result = ev(text, data)
    assert result == expected
    assert type(result) is type(expected)


FUNCTION_CASES: list[tuple[str, Any]] = [
        ("len(name)", 12),
        ("len(tags)", 3),
        ("len(user)", 4),
        ("len(missing)", 0),
        ("lower(name)", "ada lovelace"),
        ("upper(name)", "ADA LOVELACE"),
        ("trim('  x ')", "x"),
        ("lower(missing)", None),
        ("contains(name, 'Ada')", True),
        ("contains(tags, 'eu')", True),
        ("contains(missing, 'eu')", False),
        ("starts_with(name, 'Ada')", True),
        ("starts_with(missing, 'Ada')", False),
        ("ends_with(user.email, '.com')", True),
        ("ends_with(name, 'x')", False),
        ("matches(user.email, '^[a-z]+@')", True),
        (r"matches(name, '\d')", False),
        ("matches(missing, 'a')", False),
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("min(3, 1, 2)", 1),
        ("min(nums)", 1),
        ("max(nums)", 3),
        ("max(1, 2.5)", 2.5),
        ("max('a', 'b')", "b"),
        ("max([])", None),
        ("min([4, null, 2])", 2),
        ("round(2.5)", 3),
        ("round(-2.5)", -3),
        ("round(2.675, 2)", 2.68),
        ("round(1234, -2)", 1200),
        ("floor(2.7)", 2),
        ("floor(-2.1)", -3),
        ("ceil(2.1)", 3),
        ("sum(nums)", 6),
        ("sum([0.5, 1])", 1.5),
        ("sum(missing)", 0),
        ("int('42')", 42),
        ("int(' 7 ')", 7),
        ("int('3.9')", 3),
        ("int(3.9)", 3),
        ("int(true)", 1),
        ("float('2.5')", 2.5),
        ("float(2)", 2.0),
        ("str(1500)", "1500"),
        ("str(2.5)", "2.5"),
        ("str(null)", "null"),
        ("str(true)", "true"),
        ("str([1, 'a'])", '[1, "a"]'),
        ("str('x')", "x"),
        ("bool('')", False),
        ("bool(tags)", True),
        ("is_null(missing)", True),
        ("is_null(nothing)", True),
        ("is_null(zero)", False),
        ("exists(user.email)", True),
        ("exists(user.notes)", True),  # present, even though null
        ("exists(user.phone)", False),
        ("exists(missing)", False),
        ("exists(nothing)", True),
        ("exists(items[1].qty)", True),
        ("exists(items[9])", False),
        ("exists(user[key])", True),
        ("coalesce(missing, nothing, 'c', 'd')", "c"),
        ("coalesce(missing)", None),
        ("coalesce(amount, 1 / zero)", 1500),  # lazy like ??
        ("is_valid_json(payload)", True),
        ("is_valid_json('{bad')", False),
        ("is_valid_json(user)", True),
        ("is_valid_json(input)", True),
        ("is_valid_json(missing)", False),
        ("keys(user.address)", ["city"]),
        ("values(user.address)", ["London"]),
        ("keys(missing)", []),
        ("all([1, 'a', true])", True),
        ("all([1, 0])", False),
        ("all([])", True),
        ("any([0, '', 'x'])", True),
        ("any([])", False),
        ("any(missing)", False),
        ("keys(user)[0]", "email"),
]


@pytest.mark.parametrize(("text", "expected"), FUNCTION_CASES)
def test_functions(text: str, expected: Any) -> None:
    result = ev(text, {**EVENT, "input": EVENT})
    assert result == expected
    assert type(result) is type(expected)


def test_every_whitelisted_function_is_covered() -> None:
    # a new function must come with a case in FUNCTION_CASES (now() is tested on its own below)
    called = {text.split("(")[0] for text, _ in FUNCTION_CASES}
    assert set(FUNCTIONS) - called == {"now"}


def test_now() -> None:
    before = time.time()
    value = ev("now()")
    assert before <= value <= time.time()
    assert compile_expression("now() > 1700000000").evaluate({}) is True


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("all(field in input for field in ['patient_id', 'findings'])", {"input": {"patient_id": 1, "findings": []}},
         True),
        ("all(field in input for field in ['patient_id', 'findings'])", {"input": {"patient_id": 1}}, False),
        ("any(i.qty == 0 for i in items)", EVENT, True),
        ("all(i.qty > 0 for i in items)", EVENT, False),
        ("all(x > 0 for x in nums)", EVENT, True),
        ("all(x > 0 for x in missing)", EVENT, True),
        ("any(x > 0 for x in missing)", EVENT, False),
        ("any(k == 'email' for k in user)", EVENT, True),  # an object loops over its keys
        ("all(any(y == x for y in nums) for x in [1, 2])", EVENT, True),  # nesting sees the outer name
        ("any(x > amount for x in nums)", EVENT, False),  # free names still read the event
        ("all(amount > 0 for amount in [1, 2])", EVENT, True),  # the bound name shadows the event field
        ("amount > 0 && all(amount > 5 for amount in [1]) == false && amount == 1500", EVENT, True),
        ("any(exists(x.sku) for x in items)", EVENT, True),
    ],
)
def test_quantifiers(text: str, data: dict[str, Any], expected: bool) -> None:
    assert compile_expression(text).evaluate(data) is expected


def test_quantifier_short_circuits() -> None:
    # the second item would fail (division by zero) if all() did not stop at the first false
    assert ev("all(10 / x > 100 for x in [1, 0])", {}) is False
    assert ev("any(10 / x > 1 for x in [1, 0])", {}) is True


@pytest.mark.parametrize(
    ("text", "roots", "paths", "functions"),
    [
        ("amount > 1000", {"amount"}, {("amount",)}, set()),
        (
            "risk_score >= config.risk_thresholds.high",
            {"risk_score", "config"},
            {("risk_score",), ("config", "risk_thresholds", "high")},
            set(),
        ),
        ("all(field in input for field in ['a', 'b'])", {"input"}, {("input",)}, {"all"}),
        ("any(x.y > limit for x in items.list)", {"limit", "items"}, {("limit",), ("items", "list")}, {"any"}),
        ("a['b'].c[0].d", {"a"}, {("a", "b", "c")}, set()),
        ("a[k].z", {"a", "k"}, {("a",), ("k",)}, set()),
        ("reviewed.analysis?.review_notes ?? ''", {"reviewed"}, {("reviewed", "analysis", "review_notes")}, set()),
        ("len(lower(name)) > 2 && exists(user.email)", {"name", "user"}, {("name",), ("user", "email")},
         {"len", "lower", "exists"}),
        ("keys(x)[0].name", {"x"}, {("x",)}, {"keys"}),
        ("1 + 2", set(), set(), set()),
    ],
)
def test_static_facts(text: str, roots: set[str], paths: set[tuple[str, ...]], functions: set[str]) -> None:
    expression = compile_expression(text)
    assert expression.root_names == frozenset(roots)
    assert expression.paths == frozenset(paths)
    assert expression.functions == frozenset(functions)


def test_api_shape() -> None:
    expression = compile_expression("amount > 1000")
    assert isinstance(expression, Expression)
    assert expression.source == "amount > 1000"
    assert expression.truthy({"amount": 1001}) is True
    assert expression.truthy({}) is False
    assert compile_expression("amount > 1000") is expression  # cached by text
    assert parse_expression("amount > 1000") is expression
    assert validate_expression("amount > 1000") is None
    with pytest.raises(KumeoExpressionError):
        validate_expression("amount >")
    assert compile_expression("tags").truthy({"tags": []}) is False
    assert repr(expression) == "Expression('amount > 1000')"


def test_results_are_fresh_copies() -> None:
    expression = compile_expression("[1, [2]]")
    first = expression.evaluate({})
    first[1].append(3)
    assert expression.evaluate({}) == [1, [2]]


def test_logic_returns_booleans() -> None:
    assert ev("amount && name") is True
    assert ev("zero || empty") is False
    assert ev("!name") is False


def test_works_on_any_mapping() -> None:
    from types import MappingProxyType

    assert compile_expression("a.b + 1").evaluate(MappingProxyType({"a": MappingProxyType({"b": 1})})) == 2


@pytest.mark.parametrize(
    ("text", "data", "message"),
    [
        ("x + 3", {"x": "abc"}, "cannot add 'abc' and 3 in `x + 3`"),
        ("x + y", {"x": None, "y": 1}, "cannot add null and 1 in `x + y`"),
        ("x - 1", {"x": "a"}, "cannot subtract 'a' and 1 (both must be numbers) in `x - 1`"),
        ("x * 2", {"x": "ab"}, "cannot multiply 'ab' and 2 (both must be numbers) in `x * 2`"),
        ("x / y", {"x": 1, "y": 0}, "division by zero (1 / 0) in `x / y`"),
        ("x % y", {"x": 1, "y": 0.0}, "modulo by zero (1 % 0.0) in `x % y`"),
        ("-x", {"x": "a"}, "cannot negate 'a' (not a number) in `-x`"),
        ("x < 3", {"x": "a"}, "cannot compare 'a' < 3 (only two numbers or two strings can be ordered) in `x < 3`"),
        ("x >= y", {"x": [1], "y": [0]},
         "cannot compare [1] >= [0] (only two numbers or two strings can be ordered) in `x >= y`"),
        ("x in 'abc'", {"x": 1},
         "cannot look for 1 in the string 'abc' (only a string can be in a string) in `x in 'abc'`"),
        ("1 in x", {"x": 5}, "cannot look for 1 in 5 (`in` needs a list, string or object) in `1 in x`"),
        ("lower(x)", {"x": 3}, "lower() expects a string, got 3 in `lower(x)`"),
        ("len(x)", {"x": 3}, "len() expects a string, list or object, got 3 in `len(x)`"),
        ("abs(x)", {"x": "3"}, "abs() expects a number, got '3' in `abs(x)`"),
        ("int(x)", {"x": "abc"}, "cannot convert 'abc' to int in `int(x)`"),
        ("int(x)", {"x": None}, "cannot convert null to int in `int(x)`"),
        ("float(x)", {"x": "nope"}, "cannot convert 'nope' to float in `float(x)`"),
        ("sum(x)", {"x": [1, "2"]}, "sum() expects a number, got '2' in `sum(x)`"),
        ("max(x)", {"x": [1, "a"]},
         "cannot compare 'a' > 1 (only two numbers or two strings can be ordered) in `max(x)`"),
        ("keys(x)", {"x": [1]}, "keys() expects an object, got [1] in `keys(x)`"),
        ("all(x)", {"x": 5}, "all() expects a list, got 5 in `all(x)`"),
        ("all(i for i in x)", {"x": "abc"},
         "all() can only loop over a list or an object's keys, got 'abc' in `all(i for i in x)`"),
        ("matches(x, p)", {"x": "a", "p": "("}, "matches() pattern '(' is not a valid regular expression"),
        ("matches(x, p)", {"x": "a", "p": "a" * 201}, "matches() pattern is 201 characters long; the limit is 200"),
        ("matches(x, 'a')", {"x": "a" * 10_001}, "matches() input is 10001 characters long; the limit is 10000"),
        ("starts_with(x, 1)", {"x": "a"}, "starts_with() expects a string as its second argument, got 1"),
        ("round(x, 1.5)", {"x": 1}, "round() digits must be a whole number from -15 to 15, got 1.5"),
        ("floor(x)", {"x": float("inf")}, "cannot take floor() of inf"),
    ],
)
def test_evaluation_errors(text: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(KumeoEvaluationError) as caught:
        compile_expression(text).evaluate(data)
    assert message in str(caught.value)
    assert caught.value.expression == text  # type: ignore[attr-defined]
    assert f"`{text}`" in str(caught.value)


def test_evaluate_requires_a_mapping() -> None:
    with pytest.raises(KumeoEvaluationError, match="expected an object"):
        compile_expression("a").evaluate([1, 2])  # type: ignore[arg-type]


def test_hostile_mapping_is_wrapped() -> None:
    class Exploding(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            raise RuntimeError("boom")

    with pytest.raises(KumeoEvaluationError, match="RuntimeError: boom"):
        compile_expression("a").evaluate(Exploding())


def test_compile_requires_text() -> None:
    with pytest.raises(TypeError):
        compile_expression(42)  # type: ignore[arg-type]


def test_nan_and_infinity_values() -> None:
    assert ev("x > 1", {"x": math.inf}) is True
    assert ev("x == 1", {"x": math.nan}) is False
    assert ev("x < 1 || x >= 1", {"x": math.nan}) is False


@pytest.mark.parametrize(
    ("inner", "start", "expected"),
    [
        (SourceSpan("<expr>", 1, 5), SourceSpan("flow.kumeo", 12, 11), SourceSpan("flow.kumeo", 12, 15)),
        (SourceSpan("<expr>", 1, 1, 1, 3), SourceSpan("f", 3, 10), SourceSpan("f", 3, 10, 3, 12)),
        (SourceSpan("<expr>", 3, 4, 3, 6), SourceSpan("f", 10, 20), SourceSpan("f", 12, 4, 12, 6)),
        (SourceSpan("<expr>", 1, 2, 2, 1), SourceSpan("f", 5, 8), SourceSpan("f", 5, 9, 6, 1)),
    ],
)
def test_locate(inner: SourceSpan, start: SourceSpan, expected: SourceSpan) -> None:
    assert locate(inner, start) == expected


def test_locate_with_a_real_error() -> None:
    file_line = '    when: "amount >> 3"'
    content_column = file_line.index('"') + 2
    with pytest.raises(KumeoExpressionError) as caught:
        compile_expression("amount >> 3")
    assert caught.value.span is not None
    where = locate(caught.value.span, SourceSpan("flow.kumeo", 7, content_column))
    assert (where.line, where.column) == (7, file_line.index(">> 3") + 2)
    assert file_line[where.column - 1] == ">"


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kumeo_iac.expr; "
        "heavy = {'pydantic', 'yaml', 'difflib', 'decimal', 'nats', 'pulumi'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_string_enums_from_python_callers_behave_as_strings() -> None:
    import enum

    class Urgency(str, enum.Enum):
        HIGH = "high"

    data = {"input": {"urgency": Urgency.HIGH}}
    assert compile_expression("input.urgency in ['low', 'high']").evaluate(data) is True
    assert compile_expression("input.urgency == 'high'").evaluate(data) is True
    assert compile_expression("input.urgency not in ['low']").evaluate(data) is True


@pytest.mark.parametrize("env", [{"a": 5}, {"a": None}, {}, {"a": {"b": None}}, {"a": "text"}, {"a": [1]}])
def test_optional_access_means_the_same_as_plain_access_and_both_docs_say_so(env):
    from pathlib import Path

    from kumeo_iac.expr import compile_expression

    for plain, optional in (("a.b", "a?.b"), ("a[0]", "a?.[0]"), ("a.b.c", "a?.b?.c")):
        assert compile_expression(plain).evaluate(env) == compile_expression(optional).evaluate(env)
    assert compile_expression("a.b.c").evaluate(env) is None  # never an error
    docs = Path(__file__).resolve().parents[2] / "docs"
    for page in ("expressions.md", "language.md"):
        text = (docs / page).read_text(encoding="utf-8")
        assert "mean the same" in text and "instead of failing" not in text, page
