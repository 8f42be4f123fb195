"""The whitelist of functions an expression may call, with their arity and JSON-minded semantics.

Nothing outside this table can be called: the compiler looks every call up here and rejects unknown names
with a did-you-mean, so user text can never reach Python builtins, attributes or modules. Functions are
lenient with null where that matches how conditions are written (``len(missing)`` is 0, ``lower(missing)`` is
null) and strict with wrong kinds (``lower(3)`` is an error), because a silently false rule is worse than a
dead-lettered event that says what went wrong.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from kumeo_iac.expr._values import EvaluationFailure, is_number, ordered, show, truthy
from kumeo_iac.expr._values import contains as _contains

__all__ = ["FUNCTIONS", "MAX_MATCH_INPUT", "MAX_PATTERN_LENGTH", "Function", "compile_pattern"]

#: Longest regular expression `matches()` accepts; long patterns are where catastrophic backtracking hides.
MAX_PATTERN_LENGTH: Final = 200
#: Longest string `matches()` searches, so one oversized field cannot stall a worker.
MAX_MATCH_INPUT: Final = 10_000
_MAX_NUMBER_TEXT: Final = 100
_MAX_ROUND_DIGITS: Final = 15


@dataclasses.dataclass(frozen=True, slots=True)
class Function:
    """One callable of the language: its arity (max None = any number) and a one-line description for docs."""

    name: str
    min_args: int
    max_args: int | None
    call: Callable[..., Any]
    summary: str

    def arity_text(self) -> str:
        """How many arguments the function takes, phrased for an error message."""
        if self.max_args == self.min_args:
            n = self.min_args
            return f"{n} argument{'s' if n != 1 else ''}"
        if self.max_args is None:
            return f"at least {self.min_args} argument{'s' if self.min_args != 1 else ''}"
        return f"{self.min_args} to {self.max_args} arguments"


def _string_or_null(name: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise EvaluationFailure(f"{name}() expects a string, got {show(value)}")


def _number(name: str, value: object) -> int | float:
    if not is_number(value):
        raise EvaluationFailure(f"{name}() expects a number, got {show(value)}")
    return value


def _list_or_null(name: str, value: object) -> Sequence[Any]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return value
    raise EvaluationFailure(f"{name}() expects a list, got {show(value)}")


def _len(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, (str, list, tuple, Mapping)):
        return len(value)
    raise EvaluationFailure(f"len() expects a string, list or object, got {show(value)}")


def _lower(value: object) -> str | None:
    text = _string_or_null("lower", value)
    return None if text is None else text.lower()


def _upper(value: object) -> str | None:
    text = _string_or_null("upper", value)
    return None if text is None else text.upper()


def _trim(value: object) -> str | None:
    text = _string_or_null("trim", value)
    return None if text is None else text.strip()


def _affix(name: str, value: object, affix: object) -> tuple[str, str] | None:
    text = _string_or_null(name, value)
    if not isinstance(affix, str):
        raise EvaluationFailure(f"{name}() expects a string as its second argument, got {show(affix)}")
    return None if text is None else (text, affix)


def _starts_with(value: object, prefix: object) -> bool:
    pair = _affix("starts_with", value, prefix)
    return pair is not None and pair[0].startswith(pair[1])


def _ends_with(value: object, suffix: object) -> bool:
    pair = _affix("ends_with", value, suffix)
    return pair is not None and pair[0].endswith(pair[1])


# What RE2 says, mapped to the feature a pattern written for Python's `re` reached for.
_UNSUPPORTED: Final = (
    (re.compile(r"invalid escape sequence: \\[1-9]"), "a backreference (\\1)"),
    (re.compile(r"invalid perl operator: \(\?P$"), "a named backreference (?P=name)"),
    (re.compile(r"invalid perl operator: \(\?[=!]"), "a lookahead (?= …) or (?! …)"),
    (re.compile(r"invalid perl operator: \(\?<[=!]"), "a lookbehind (?<= …) or (?<! …)"),
    (re.compile(r"invalid perl operator: \(\?>"), "an atomic group (?> …)"),
    (re.compile(r"invalid perl operator: \(\?\("), "a conditional (?(1) …)"),
    (re.compile(r"bad repetition operator: [*+?}]\+"), "a possessive quantifier (*+ ++ ?+)"),
    (re.compile(r"invalid escape sequence: \\Z"), "\\Z (write \\z, or $)"),
)


class _NoRE2:
    """Stands in for the `re2` module when google-re2 is not installed, so the failure is an evaluation error."""


@functools.cache
def _re2() -> Any:
    """The `re2` module (google-re2), imported on first use so `kumeo check` pays for it only when it meets a regex."""
    try:
        import re2  # type: ignore[import-untyped]
    except ImportError:
        return _NoRE2
    return re2


@functools.cache
def _re2_options() -> Any:
    options = _re2().Options()
    options.log_errors = False  # RE2 would print every rejected pattern to stderr; the error says it instead
    options.never_capture = True  # matches() only asks whether there is a match
    return options


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """Compile a `matches()` pattern once with RE2; raises EvaluationFailure for a pattern that is too long,
    invalid, or uses what RE2 cannot do in linear time (backreferences, lookaround, atomic groups).

    RE2 matches in time linear in the input whatever the pattern, so no event can stall an agent with a
    pattern like ``(a+)+$``, whether the pattern is written in the file or read from the event.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise EvaluationFailure(
            f"matches() pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_LENGTH}")
    re2 = _re2()
    if re2 is _NoRE2:
        raise EvaluationFailure("matches() needs the google-re2 package; install it with `pip install google-re2`")
    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as error:
        raw = error.args[0] if error.args else ""
        reason = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    except UnicodeEncodeError:  # RE2 works on UTF-8; a lone surrogate (JSON "\ud800") has no encoding
        raise EvaluationFailure(f"matches() pattern {show(pattern)} is not valid Unicode text") from None
    for sign, feature in _UNSUPPORTED:
        if sign.search(reason):
            raise EvaluationFailure(
                f"matches() pattern {show(pattern)} uses {feature}, which Kumeo's regular expressions (RE2, "
                f"linear time) do not support"
            )
    raise EvaluationFailure(f"matches() pattern {show(pattern)} is not a valid regular expression: {reason}")


def _matches(value: object, pattern: object) -> bool:
    if not isinstance(pattern, str):
        raise EvaluationFailure(f"matches() expects a string pattern, got {show(pattern)}")
    regex = compile_pattern(pattern)
    text = _string_or_null("matches", value)
    if text is None:
        return False
    if len(text) > MAX_MATCH_INPUT:
        raise EvaluationFailure(f"matches() input is {len(text)} characters long; the limit is {MAX_MATCH_INPUT}")
    try:
        return regex.search(text) is not None
    except UnicodeEncodeError:
        raise EvaluationFailure(f"matches() input {show(text)} is not valid Unicode text") from None


def _abs(value: object) -> int | float:
    return abs(_number("abs", value))


def _extreme(name: str, args: tuple[Any, ...]) -> Any:
    items: Sequence[Any] = _list_or_null(name, args[0]) if len(args) == 1 else args
    best: Any = None
    for item in items:
        if item is None:
            continue  # a missing value should not win or lose
        if not (is_number(item) or isinstance(item, str)):
            raise EvaluationFailure(f"{name}() expects numbers or strings, got {show(item)}")
        if best is None or ordered(item, best, "<" if name == "min" else ">"):
            best = item
    return best


def _min(*args: Any) -> Any:
    return _extreme("min", args)


def _max(*args: Any) -> Any:
    return _extreme("max", args)


def _round(value: object, digits: object = 0) -> int | float:
    number = _number("round", value)
    if type(digits) is not int or not -_MAX_ROUND_DIGITS <= digits <= _MAX_ROUND_DIGITS:
        raise EvaluationFailure(f"round() digits must be a whole number from -15 to 15, got {show(digits)}")
    if isinstance(number, float) and not math.isfinite(number):
        raise EvaluationFailure(f"cannot round {show(number)}")
    # Half away from zero (2.5 -> 3), as people and spreadsheets expect; Python's round() is banker's rounding.
    from decimal import ROUND_HALF_UP, Decimal  # lazy: decimal is only needed here

    exact = Decimal(repr(number)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return int(exact) if digits <= 0 else float(exact)


def _integral(name: str, value: object, op: Callable[[float], int]) -> int:
    number = _number(name, value)
    if isinstance(number, float) and not math.isfinite(number):
        raise EvaluationFailure(f"cannot take {name}() of {show(number)}")
    return op(number)


def _floor(value: object) -> int:
    return _integral("floor", value, math.floor)


def _ceil(value: object) -> int:
    return _integral("ceil", value, math.ceil)


def _sum(values: object) -> int | float:
    total: int | float = 0
    for item in _list_or_null("sum", values):
        total += _number("sum", item)
    return total


def _int(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise EvaluationFailure(f"cannot convert {show(value)} to int")
        return int(value)
    if isinstance(value, str) and len(value) <= _MAX_NUMBER_TEXT:
        try:
            return int(value.strip())
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return int(number)
    raise EvaluationFailure(f"cannot convert {show(value)} to int")


def _float(value: object) -> float:
    if is_number(value) or isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            pass
    elif isinstance(value, str) and len(value) <= _MAX_NUMBER_TEXT:
        try:
            return float(value)
        except ValueError:
            pass
    raise EvaluationFailure(f"cannot convert {show(value)} to float")


def _str(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return show(value)
    if is_number(value):
        try:
            return repr(value)
        except ValueError:
            raise EvaluationFailure("cannot convert a number this large to a string") from None
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        raise EvaluationFailure(f"cannot convert {show(value)} to a string") from None


def _bool(value: object) -> bool:
    return truthy(value)


def _is_null(value: object) -> bool:
    return value is None


def _coalesce(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _is_valid_json(value: object) -> bool:
    # A missing value is not a document, even though `null` is valid JSON text.
    if value is None:
        return False
    if isinstance(value, str):
        try:
            json.loads(value)
        except (ValueError, RecursionError):
            return False
        return True
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _keys(value: object) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return list(value.keys())
    raise EvaluationFailure(f"keys() expects an object, got {show(value)}")


def _values(value: object) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return list(value.values())
    raise EvaluationFailure(f"values() expects an object, got {show(value)}")


def _now() -> float:
    return time.time()


def _all(values: object) -> bool:
    return all(truthy(item) for item in _list_or_null("all", values))


def _any(values: object) -> bool:
    return any(truthy(item) for item in _list_or_null("any", values))


def _fn(name: str, min_args: int, max_args: int | None, call: Callable[..., Any], summary: str) -> Function:
    return Function(name, min_args, max_args, call, summary)


#: Every callable of the language by name. `exists`, `coalesce` and the `all`/`any` quantifier form are compiled
#: specially (they need a path, laziness or a bound name); their entries here give arity and docs.
FUNCTIONS: Final[Mapping[str, Function]] = {
    f.name: f
    for f in (
        _fn("len", 1, 1, _len, "length of a string, list or object; 0 for null"),
        _fn("lower", 1, 1, _lower, "lower-case a string; null stays null"),
        _fn("upper", 1, 1, _upper, "upper-case a string; null stays null"),
        _fn("trim", 1, 1, _trim, "strip surrounding whitespace; null stays null"),
        _fn("contains", 2, 2, lambda h, n: _contains(h, n), "contains(x, y) is `y in x`"),
        _fn("starts_with", 2, 2, _starts_with, "whether a string starts with a prefix"),
        _fn("ends_with", 2, 2, _ends_with, "whether a string ends with a suffix"),
        _fn("matches", 2, 2, _matches,
            "regular-expression search (RE2 syntax, linear time), pattern ≤ 200, input ≤ 10k chars"),
        _fn("abs", 1, 1, _abs, "absolute value"),
        _fn("min", 1, None, _min, "smallest of the arguments or of one list, ignoring nulls"),
        _fn("max", 1, None, _max, "largest of the arguments or of one list, ignoring nulls"),
        _fn("round", 1, 2, _round, "round half away from zero, optionally to N digits"),
        _fn("floor", 1, 1, _floor, "largest integer ≤ x"),
        _fn("ceil", 1, 1, _ceil, "smallest integer ≥ x"),
        _fn("sum", 1, 1, _sum, "sum of a list of numbers; 0 for null"),
        _fn("int", 1, 1, _int, "convert a number, boolean or numeric string to an integer (truncating)"),
        _fn("float", 1, 1, _float, "convert a number, boolean or numeric string to a float"),
        _fn("str", 1, 1, _str, "convert to a string (JSON for lists and objects, 'null' for null)"),
        _fn("bool", 1, 1, _bool, "JSON truthiness"),
        _fn("is_null", 1, 1, _is_null, "whether a value is null or missing"),
        _fn("exists", 1, 1, _is_null, "whether a path is present (even if its value is null)"),
        _fn("coalesce", 1, None, _coalesce, "the first argument that is not null (lazy, like ??)"),
        _fn("is_valid_json", 1, 1, _is_valid_json, "a string that parses as JSON, or a JSON-serialisable value"),
        _fn("keys", 1, 1, _keys, "the keys of an object; [] for null"),
        _fn("values", 1, 1, _values, "the values of an object; [] for null"),
        _fn("now", 0, 0, _now, "current time as UTC epoch seconds"),
        _fn("all", 1, 1, _all, "all(list) or all(expr for x in list): every item is truthy (true when empty)"),
        _fn("any", 1, 1, _any, "any(list) or any(expr for x in list): some item is truthy"),
    )
}
