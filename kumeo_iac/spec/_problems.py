"""What is wrong with a typed setting, as plain sentences with the path of the key that is wrong.

Typed settings (an agent's ``config``, ``retry``) are pydantic models; :func:`problems_in` runs one on a value and
turns pydantic's errors into :class:`Problem` s that validation places at the key's line and column and compile
raises, so both say the same thing in the same words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from kumeo_iac.spec._base import Call, Ref
from kumeo_iac.spec._suggest import did_you_mean

__all__ = ["Problem", "plain", "problems_in"]

Path = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a setting: where (a path of keys and indexes), what, and whether the key is unknown."""

    path: Path
    message: str
    unknown_key: bool = False

    @property
    def dotted(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out


def plain(value: Any) -> Any:
    """A written value as JSON-like data (bare paths as their text, calls as objects), for a model to check."""
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, Call):
        return {"call": value.name, "args": plain(value.args), "kwargs": plain(value.kwargs)}
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def problems_in(model: type[BaseModel], value: Any, *, also: tuple[str, ...] = ()) -> list[Problem]:
    """Every problem ``model`` finds in ``value`` (an object), unknown keys with a did-you-mean among the model's
    keys and ``also`` (further names accepted at the top level)."""
    data = plain(value)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return _problems(model, exc, data, also)
    return []


def problems_for_type(annotation: Any, value: Any, path: Path = ()) -> list[Problem]:
    """The problems of one value against a type (an argument's annotation), under ``path``."""
    data = plain(value)
    try:
        TypeAdapter(annotation).validate_python(data)
    except ValidationError as exc:
        out = []
        seen: set[Path] = set()
        for error in exc.errors(include_url=False):
            where = path + _user_path(tuple(error["loc"]), data)
            if where not in seen:
                seen.add(where)
                out.append(Problem(where, _sentence(error)))
        return _deepest(out)
    return []


def _problems(model: type[BaseModel], exc: ValidationError, data: Any, also: tuple[str, ...] = ()) -> list[Problem]:
    out: list[Problem] = []
    seen: set[Path] = set()
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        path = _user_path(loc, data)
        if error["type"] in ("extra_forbidden", "missing") and loc and isinstance(loc[-1], str):
            path = (*_user_path(loc[:-1], data), loc[-1])  # the key is not in the value: keep it as written
        if error["type"] == "extra_forbidden":
            key = str(path[-1]) if path else ""
            known = _known_keys(model, path[:-1]) + (list(also) if len(path) == 1 else [])
            choices = f"; the settings are: {', '.join(known)}" if known else "; it takes no settings"
            out.append(Problem(path, f"has no setting '{key}'" + (did_you_mean(key, known) or choices), True))
            continue
        if path in seen:  # a union reports each member; the first says enough
            continue
        seen.add(path)
        out.append(Problem(path, _sentence(error)))
    return _deepest(out)


def _deepest(problems: list[Problem]) -> list[Problem]:
    """Drop a problem about a whole value when another is about a part of it (a union's members both failed:
    ``steps: ["trim", "lowercas"]`` is about item 1, not about the list not being one step)."""
    paths = [p.path for p in problems]
    return [p for p in problems
            if p.unknown_key or not any(len(q) > len(p.path) and q[:len(p.path)] == p.path for q in paths)]


def _user_path(loc: tuple[Any, ...], data: Any) -> Path:
    """pydantic's location without the union-member tags it inserts (``str``, ``list[str]``, a model's name):
    a part is kept when it is a key or an index of the value at that point."""
    out: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and isinstance(part, str) and part in current:  # noqa: SIM114 - narrows each
            out.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
    return tuple(out)


def _known_keys(model: type[BaseModel], path: Path) -> list[str]:
    """The keys the model (or the nested model at ``path``) declares."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _nested_model(fields[part].annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", None) or {}
    names = [f.alias or name for name, f in fields.items()]
    return sorted(names, key=lambda n: n == "join_timeout")  # the kind's own settings first


def _nested_model(annotation: Any) -> Any:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


_PARSING = {"float_parsing": "a number", "int_parsing": "a whole number", "bool_parsing": "true or false",
            "int_from_float": "a whole number", "float_type": "a number", "int_type": "a whole number",
            "bool_type": "true or false", "string_type": "a string", "list_type": "a list", "dict_type": "an object",
            "model_type": "an object", "model_attributes_type": "an object"}


def _sentence(error: Any) -> str:
    """pydantic's message as the end of our sentence: ``must be …, not 42``."""
    kind = error["type"]
    value = error.get("input")
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    if kind == "missing":
        return "is missing; add it"
    if kind in _PARSING:
        return f"must be {_PARSING[kind]}, not {shown}"
    ctx = error.get("ctx") or {}
    if kind == "greater_than_equal":
        return f"must be {ctx.get('ge')} or more, not {shown}"
    if kind == "less_than_equal":
        return f"must be {ctx.get('le')} or less, not {shown}"
    if kind == "greater_than":
        return f"must be more than {ctx.get('gt')}, not {shown}"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error") or error["msg"]).removeprefix("Value error, ")
    message = str(error["msg"])
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    elif message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    else:
        message = message[:1].lower() + message[1:]
    return f"{message}, not {shown}" if kind != "value_error" else message
