"""Turning Spec values into Plan values: JSON, durations, and the errors compile raises."""

from __future__ import annotations

import enum
from typing import Any

from kumeo_iac.errors import Diagnostic, KumeoCompileError, Severity, SourceSpan
from kumeo_iac.spec import Call, Ref, SpecNode, parse_duration


def compile_error(
    message: str,
    *,
    workflow: str | None = None,
    agent: str | None = None,
    span: SourceSpan | None = None,
    hint: str | None = None,
) -> KumeoCompileError:
    """A KumeoCompileError saying where (workflow/agent, and the source span when known) and what to do.

    The error carries ``span`` and ``diagnostics`` like the syntax and validation errors, so the CLI prints it
    gcc-style.
    """
    where = []
    if workflow:
        where.append(f"workflow {workflow!r}")
    if agent:
        where.append(f"agent {agent!r}")
    text = f"{', '.join(where)}: {message}" if where else message
    diagnostic = Diagnostic(text, span, Severity.ERROR, hint, code="compile")
    return KumeoCompileError(diagnostic.format() if span else (f"{text} ({hint})" if hint else text), [diagnostic])


def duration_seconds(value: Any, *, what: str, workflow: str, agent: str | None = None,
                     span: SourceSpan | None = None) -> float:
    """``"30s"``, ``"2m"``, ``"1h"``, ``"500ms"``, ``"1d"`` or a number of seconds (the parser validation uses)."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise compile_error(f"{what} {exc}", workflow=workflow, agent=agent, span=span) from None


def to_json(value: Any) -> Any:
    """A Spec value as plain JSON data: references become their written path, calls become objects."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, str):
        return str(value)  # drops LocatedStr
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, Call):
        return {"call": value.name, "args": to_json(value.args), "kwargs": to_json(value.kwargs)}
    if isinstance(value, SpecNode):
        out: dict[str, Any] = {}
        kind = getattr(value, "kind_name", "")
        if kind:
            out["kind"] = kind
        for name in type(value).meaningful_fields():
            if name in ("kind", "extra_args"):
                continue
            v = getattr(value, name)
            if v is None or v == {} or v == []:
                continue
            out[name] = to_json(v)
        return out
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    return str(value)
