"""Words for types and values in importer diagnostics: 'expected a number, got a string' instead of pydantic's dump."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from kumeo_iac.spec import Call, KindSpec, Ref

_PLURAL = {"a string": "strings", "an integer": "integers", "a number": "numbers", "true or false": "booleans"}


def describe_type(annotation: Any) -> str:
    """A short English phrase for what a field accepts, derived from its annotation."""
    if annotation is Any:
        return "a value"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        words = [describe_type(a) for a in typing.get_args(annotation) if a is not type(None)]
        unique = list(dict.fromkeys(words))
        return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " or " + unique[-1]
    if origin is typing.Annotated:
        return describe_type(typing.get_args(annotation)[0])
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        inner = describe_type(args[0]) if args else "a value"
        return f"a list of {_PLURAL.get(inner, 'values')}"
    if origin is dict:
        args = typing.get_args(annotation)
        inner = describe_type(args[1]) if len(args) == 2 else "a value"
        return "an object" if inner in ("a value", "an object") else f"an object of {_PLURAL.get(inner, 'values')}"
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(annotation))
    if annotation is str:
        return "a string"
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "an object"
    return "a value"


def describe_value(value: Any) -> str:
    """A short English phrase for what was written."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{text}"' if len(text) <= 30 else f'"{text[:27]}…"'
    if isinstance(value, Ref):
        return f"the bare path {value}"
    if isinstance(value, Call):
        return f"a call to {value.name}()"
    if isinstance(value, KindSpec):
        return f"a call to {value.kind_name}()"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__
