"""The run-time meaning of values in Kumeo expressions: JSON-like truthiness, equality, ordering and arithmetic.

Events are JSON, so the rules are JSON's rather than Python's: ``true`` is not the number ``1``, ordering
against ``null`` is simply false (a missing field never matches ``amount > 1000``), and operators refuse to mix
kinds instead of guessing. Every failure raises :class:`EvaluationFailure` with a short reason; the
:class:`~kumeo_iac.expr.Expression` that ran adds the expression text and turns it into a
:class:`~kumeo_iac.errors.KumeoEvaluationError`.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeGuard

__all__ = [
    "ORDERINGS",
    "EvaluationFailure",
    "add",
    "contains",
    "divide",
    "equal",
    "is_number",
    "modulo",
    "multiply",
    "negate",
    "ordered",
    "show",
    "step",
    "subtract",
    "truthy",
]

_SHOW_LIMIT: Final = 40


class EvaluationFailure(Exception):
    """Why one operation failed on concrete values; internal, wrapped into KumeoEvaluationError at the API edge."""


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether a value is a JSON number; booleans are not numbers here even though Python says they are."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def truthy(value: object) -> bool:
    """JSON truthiness: null, false, 0, "", [] and {} are false; everything else is true."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    try:
        return bool(value)
    except Exception:  # noqa: BLE001 - an exotic object from a Python caller; presence is the only honest answer
        return True


def equal(left: object, right: object) -> bool:
    """Deep equality where numbers compare numerically (1 == 1.0) but booleans only equal booleans."""
    if left is right:
        return True
    left_bool = isinstance(left, bool)
    right_bool = isinstance(right, bool)
    if left_bool or right_bool:
        return left_bool and right_bool and left == right
    if is_number(left) and is_number(right):
        return left == right
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        if len(left) != len(right):
            return False
        return all(key in right and equal(value, right[key]) for key, value in left.items())
    if _is_list(left) and _is_list(right):
        assert isinstance(left, Sequence) and isinstance(right, Sequence)
        return len(left) == len(right) and all(equal(a, b) for a, b in zip(left, right, strict=True))
    if left is None or right is None:
        return False
    try:
        return bool(left == right)
    except Exception:  # noqa: BLE001 - an exotic Python object whose == raises equals nothing
        return False


#: The ordering operators by their spelling in the language.
ORDERINGS: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def ordered(left: object, right: object, op: str) -> bool:
    """`left <op> right` for two numbers or two strings; false whenever a side is null (a missing field)."""
    if left is None or right is None:
        return False
    if (is_number(left) and is_number(right)) or (isinstance(left, str) and isinstance(right, str)):
        return ORDERINGS[op](left, right)
    raise EvaluationFailure(
        f"cannot compare {show(left)} {op} {show(right)} (only two numbers or two strings can be ordered)")


def contains(container: object, item: object) -> bool:
    """The `in` operator: list membership, substring, or key of an object; nothing is in null."""
    if container is None:
        return False
    if type(container) is dict:  # the common case, ahead of the slower ABC checks below
        try:
            return item in container
        except TypeError:
            return False
    if isinstance(container, str):
        if isinstance(item, str):
            return item in container
        raise EvaluationFailure(
            f"cannot look for {show(item)} in the string {show(container)} (only a string can be in a string)")
    if isinstance(container, Mapping):
        try:
            return item in container
        except TypeError:  # an unhashable key such as a list is simply never a key
            return False
    if _is_list(container):
        assert isinstance(container, Sequence)
        return any(equal(item, element) for element in container)
    raise EvaluationFailure(f"cannot look for {show(item)} in {show(container)} (`in` needs a list, string or object)")


def add(left: object, right: object) -> Any:
    """`+`: numbers add, strings concatenate, lists concatenate; anything else is a mistake worth reporting."""
    if is_number(left) and is_number(right):
        return left + right
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    if _is_list(left) and _is_list(right):
        return list(left) + list(right)  # type: ignore[call-overload]
    raise EvaluationFailure(f"cannot add {show(left)} and {show(right)}")


def _numbers(verb: str, left: object, right: object) -> None:
    if not (is_number(left) and is_number(right)):
        raise EvaluationFailure(f"cannot {verb} {show(left)} and {show(right)} (both must be numbers)")


def subtract(left: object, right: object) -> Any:
    """`-` on two numbers."""
    _numbers("subtract", left, right)
    return left - right  # type: ignore[operator]


def multiply(left: object, right: object) -> Any:
    """`*` on two numbers; no string repetition, so an event cannot make us build a gigabyte string."""
    _numbers("multiply", left, right)
    return left * right  # type: ignore[operator]


def divide(left: object, right: object) -> Any:
    """`/` is true division, as in JSON there is only one number type."""
    _numbers("divide", left, right)
    if right == 0:
        raise EvaluationFailure(f"division by zero ({show(left)} / {show(right)})")
    try:
        return left / right  # type: ignore[operator]
    except OverflowError as error:
        raise EvaluationFailure(f"{show(left)} / {show(right)} is too large") from error


def modulo(left: object, right: object) -> Any:
    """`%` with the sign of the divisor (Python's rule)."""
    _numbers("take the remainder of", left, right)
    if right == 0:
        raise EvaluationFailure(f"modulo by zero ({show(left)} % {show(right)})")
    return left % right  # type: ignore[operator]


def negate(value: object) -> Any:
    """Unary `-` on a number."""
    if not is_number(value):
        raise EvaluationFailure(f"cannot negate {show(value)} (not a number)")
    return -value


def step(container: object, key: object) -> Any:
    """One step of a path (`.name` or `[key]`): object key, list/string index, else null; never an attribute.

    Only mapping lookups and sequence indexing happen here, never ``getattr``, which is what keeps `a.__class__`
    and friends harmless: they are just keys that are not there.
    """
    if isinstance(container, Mapping):
        try:
            return container.get(key)
        except TypeError:  # unhashable key
            return None
    if (isinstance(container, (list, tuple, str))) and type(key) is int:
        try:
            return container[key]
        except IndexError:
            return None
    return None


def _is_list(value: object) -> bool:
    return isinstance(value, (list, tuple))


def show(value: object) -> str:
    """A short, JSON-flavoured rendering of a value for error messages ('abc', 3, null, [1, 2])."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        text = repr(value if len(value) <= _SHOW_LIMIT else value[:_SHOW_LIMIT] + "…")
    elif is_number(value):
        try:
            text = repr(value)
        except ValueError:  # an int beyond Python's digit limit for str()
            text = "<a very large number>"
    else:
        try:
            text = json.dumps(value, default=repr, ensure_ascii=False)
        except (ValueError, TypeError, RecursionError):
            text = f"<{type(value).__name__}>"
    if len(text) > _SHOW_LIMIT + 2:
        text = text[:_SHOW_LIMIT] + "…"
    return text
