"""Compile-time errors of the expression language: exact messages, positions and hints, and hostile input."""

from __future__ import annotations

import pytest

from kumeo_iac.errors import KumeoExpressionError, KumeoSyntaxError
from kumeo_iac.expr import compile_expression


def error_of(text: str) -> KumeoExpressionError:
    with pytest.raises(KumeoExpressionError) as caught:
        compile_expression(text)
    return caught.value


@pytest.mark.parametrize(
    ("text", "line", "column", "message", "hint"),
    [
        ("", 1, 1, "empty expression", "write a condition such as `amount > 1000`"),
        ("   ", 1, 1, "empty expression", "write a condition such as `amount > 1000`"),
        (")", 1, 1, "unexpected ')'", None),
        ("a)", 1, 2, "unexpected ')'", None),
        ("(a))", 1, 4, "unexpected ')'", None),
        ("a &&", 1, 5, "expected an expression after '&&'", None),
        ("a && )", 1, 6, "expected an expression after '&&'", None),
        ("a || ", 1, 5, "expected an expression after '||'", None),
        ("a and", 1, 6, "expected an expression after 'and'", None),
        ("not", 1, 4, "expected an expression after 'not'", None),
        ("!", 1, 2, "expected an expression after '!'", None),
        ("x +", 1, 4, "expected an expression after '+'", None),
        ("x ?? ", 1, 5, "expected an expression after '??'", None),
        ("x == ]", 1, 6, "expected an expression after '=='", None),
        ("x in", 1, 5, "expected an expression after 'in'", None),
        ("a.", 1, 3, "expected a name after '.'", None),
        ("a?.", 1, 4, "expected a name after '?.'", None),
        ("a.1", 1, 3, "expected a name after '.', got number 1",
         "use brackets for other keys, e.g. `a[\"my-key\"]` or `a[0]`"),
        ('"abc', 1, 1, "unterminated string", 'close the string with a matching "'),
        ("name == 'abc", 1, 9, "unterminated string", "close the string with a matching '"),
        ("'a\nb'", 1, 1, "unterminated string", "close the string with a matching '"),
        ("a = 1", 1, 3, "unexpected '='", "use '==' to compare values"),
        ("status = 'ok' && x", 1, 8, "unexpected '='", "use '==' to compare values"),
        ("a === 1", 1, 5, "unexpected '='", "use '==' to compare values"),
        ("a & b", 1, 3, "unexpected '&'", "use '&&' (or 'and') for a logical and"),
        ("a | b", 1, 3, "unexpected '|'", "use '||' (or 'or') for a logical or"),
        ("a ? b : c", 1, 3, "unexpected '?'",
         "there is no `c ? a : b`; use `??` for a default value or `?.` for optional access"),
        ("a @ b", 1, 3, "unexpected character '@'", None),
        ("a b", 1, 3, "unexpected name 'b'", "is an operator such as '&&' or '==' missing?"),
        ("a 'b'", 1, 3, "unexpected string 'b'", "is an operator such as '&&' or '==' missing?"),
        ("(a", 1, 3, "expected ')'", "to close the '(' at line 1, column 1"),
        ("[1, 2", 1, 6, "expected ']'", "to close the '[' at line 1, column 1"),
        ("f(x", 1, 4, "expected ')'", "to close the '(' at line 1, column 2"),
        ("{'a': 1", 1, 8, "expected '}'", "to close the '{' at line 1, column 1"),
        ("a.b.lower()", 1, 10, "unexpected '('",
         "functions are called by name, e.g. `lower(x)` rather than `x.lower()`"),
        ("and x", 1, 1, "unexpected 'and'", "'and' is a reserved word; put an expression before it"),
        ("a\n  && )", 2, 6, "expected an expression after '&&'", None),
        ("amount > 1000 &&\n  name ==", 2, 10, "expected an expression after '=='", None),
        ("x &&\n\n  'oops", 3, 3, "unterminated string", "close the string with a matching '"),
        # compile-time (after parsing)
        ("lenn(x)", 1, 1, "unknown function 'lenn'", "did you mean 'len'?"),
        ("x > 1 &&\n  lenght(x) > 2", 2, 3, "unknown function 'lenght'", "did you mean 'len'?"),
        ("x > 1 &&\n  y.__class__", 2, 5, "'__class__' is not allowed: names starting with '__' are reserved", None),
        ("x > 1 && lenght(x) > 2", 1, 10, "unknown function 'lenght'", "did you mean 'len'?"),
        ("length(x)", 1, 1, "unknown function 'length'", "did you mean 'len'?"),
        ("startswith(x, 'a')", 1, 1, "unknown function 'startswith'", "did you mean 'starts_with'?"),
        ("LOWER(x)", 1, 1, "unknown function 'LOWER'", "did you mean 'lower'?"),
        ("a < b < c", 1, 7, "comparisons cannot be chained",
         "combine two comparisons with '&&', e.g. `a < b && b < c`"),
        ("a == b != c", 1, 8, "comparisons cannot be chained",
         "combine two comparisons with '&&', e.g. `a == b && b != c`"),
        ("len()", 1, 1, "len() takes 1 argument, got 0", None),
        ("len(a, b)", 1, 1, "len() takes 1 argument, got 2", None),
        ("round(1, 2, 3)", 1, 1, "round() takes 1 to 2 arguments, got 3", None),
        ("now(1)", 1, 1, "now() takes 0 arguments, got 1", None),
        ("min()", 1, 1, "min() takes at least 1 argument, got 0", None),
        ("sum(x for x in y)", 1, 1, "only all() and any() accept a `for` clause, not sum()",
         "write `all(<condition> for x in <list>)`, or call sum() on a list"),
        ("exists(1)", 1, 8, "exists() needs a path", "write e.g. `exists(input.customer.email)`"),
        ("exists([1][0])", 1, 8, "exists() needs a path that starts with a name",
         "write e.g. `exists(input.customer.email)`"),
        ("x + in", 1, 5, "'in' is a reserved word and cannot be used as a path",
         "to read a field called 'in', write `input[\"in\"]`"),
        ("all(x for in in y)", 1, 11, "'in' is a reserved word and cannot be used as a loop variable", None),
        ("1 / 0", 1, 1, "division by zero (1 / 0)", None),
        ("x + ('a' + 1)", 1, 6, "cannot add 'a' and 1", None),
        ("matches(x, '[')", 1, 12, "matches() pattern '[' is not a valid regular expression: missing ]: [", None),
        (f"matches(x, '{'a' * 201}')", 1, 12, "matches() pattern is 201 characters long; the limit is 200", None),
        ("1" * 5000, 1, 1, "number is too long", None),
    ],
)
def test_error_messages(text: str, line: int, column: int, message: str, hint: str | None) -> None:
    error = error_of(text)
    assert error.message == message
    assert error.span is not None
    assert (error.span.path, error.span.line, error.span.column) == ("<expr>", line, column)
    assert error.hint == hint
    assert isinstance(error, KumeoSyntaxError)
    # no lark (or other internal) traceback is shown behind it
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert "Traceback" not in str(error) and "lark" not in str(error).lower()


def test_error_spans_cover_the_token() -> None:
    error = error_of("x > 1 && lenght(x)")
    assert error.span is not None
    assert (error.span.line, error.span.column, error.span.end_line, error.span.end_column) == (1, 10, 1, 15)


def test_error_renders_gcc_style() -> None:
    assert str(error_of("a = 1")) == "<expr>:1:3: error: unexpected '=' (use '==' to compare values)"


def test_unknown_function_without_close_match_lists_the_whitelist() -> None:
    error = error_of("frobnicate(x)")
    assert error.hint is not None and error.hint.startswith("available functions: abs, all, any")


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    # brackets and prefix operators: rejected by the pre-scan, before parsing (test_expr_limits.py)
    error = error_of("-" * 500 + "x")
    assert "nested more than 64 levels deep" in error.message
    error = error_of("(" * 300 + "x" + " + 1)" * 300)
    assert "nested more than 64 levels deep" in error.message
    # a long operator chain passes the pre-scan and is bounded by the compiler's tree depth
    error = error_of("x" + " + 1" * 300)
    assert "nested too deeply" in error.message


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "__import__('os').system('id')",
        "().__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "x.__class__",
        "x.__dict__",
        "x?.__globals__",
        "__builtins__",
        "lambda: 1",
        "lambda x: x",
        "eval('1')",
        "exec('import os')",
        "compile('1', '', 'eval')",
        "open('/etc/passwd')",
        "getattr(x, 'y')",
        "globals()",
        "import os",
        "x.system('id')",
        "os.system('id')",
        "[c for c in x]",
        "x if y else z",
        "f'{x}'",
        "x; y",
        "x := 1",
        "type(x)",
        "vars()",
        "x ** 2",
        "`id`",
    ],
)
def test_hostile_text_is_rejected_at_compile_time(text: str) -> None:
    with pytest.raises(KumeoExpressionError):
        compile_expression(text)


@pytest.mark.parametrize(
    "text",
    [
        "x['__class__']",
        "x['__class__']['__init__']",
        "x[k]",
        "s['upper']",
        "s[0]['__class__']",
        "os.path",
        "x.system",
        "n.real",
        "s.upper",
        "l.append",
        "d.keys",
        "d.get",
    ],
)
def test_hostile_paths_yield_null(text: str) -> None:
    # paths only ever look up keys of objects and indexes of lists, never Python attributes
    data = {"x": object(), "k": "__class__", "s": "str", "n": 3, "l": [1], "d": {"a": 1}, "os": None}
    assert compile_expression(text).evaluate(data) is None


def test_no_eval_or_exec_in_the_package() -> None:
    import pathlib
    import re

    import kumeo_iac.expr

    banned = re.compile(r"(?<![\w.])(eval|exec|compile|getattr|setattr|__import__|literal_eval)\("
                        r"|^\s*(import|from) ast\b")
    package = pathlib.Path(kumeo_iac.expr.__file__).parent
    for source in package.glob("*.py"):
        offenders = [line for line in source.read_text().splitlines() if banned.search(line)]
        assert offenders == [], f"{source.name}: {offenders}"
