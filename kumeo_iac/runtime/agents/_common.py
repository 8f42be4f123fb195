"""What every agent kind shares: where its settings live, how its expressions are compiled and what they see.

The settings layout is decided by ``compile`` (``AgentPlan.settings``: the agent's arguments as JSON, files as
``{"file": path}``); the two keys below are the only place the agent kinds depend on where the agent's own
``config:`` and the workflow's ``config`` block sit, so a change of layout is a one-line change here.

Expressions are compiled once, in ``start()``, through :func:`compile_condition`, and evaluated per event on
:func:`scope`: the payload's fields at the top level, plus ``input`` (the whole payload) and ``config`` (the
workflow's ``config`` block). ``input`` and ``config`` win over payload fields of the same name, so
``config.high_value`` always means the workflow setting; such a payload field is still ``input.config``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeGuard

from kumeo_iac._paths import runtime_path
from kumeo_iac.errors import KumeoEvaluationError, KumeoExpressionError, KumeoRuntimeError, KumeoSyntaxError, SourceSpan
from kumeo_iac.expr import Expression, compile_expression
from kumeo_iac.runtime._agent import EventRejected, RuntimeAgent

__all__ = [
    "AGENT_CONFIG_KEY",
    "WORKFLOW_CONFIG_KEY",
    "KindAgent",
    "compile_condition",
    "evaluate",
    "file_reference",
    "holds",
    "is_missing",
    "is_number",
    "load_json_file",
    "scope",
]

#: Where compile puts the agent's own ``config:`` argument (an object, or a JSON file path).
AGENT_CONFIG_KEY: Final = "config"
#: Where compile puts the workflow's ``config`` block, which expressions read as ``config``.
WORKFLOW_CONFIG_KEY: Final = "workflow_config"


def scope(payload: Any, config: Any) -> dict[str, Any]:
    """The names an expression sees for one event: payload fields, ``input`` and ``config``."""
    data: dict[str, Any] = dict(payload) if isinstance(payload, Mapping) else {}
    data["input"] = payload
    data["config"] = config
    return data


def is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number: int or float, never a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_missing(value: object) -> bool:
    """Null, or a float NaN (which some producers send for "no value")."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def file_reference(value: Any) -> str | None:
    """The path a setting names when it names a file: ``"rules.json"`` or compile's ``{"file": "rules.json"}``."""
    if isinstance(value, str):
        return value
    named = value.get("file") if isinstance(value, Mapping) else None
    return named if isinstance(named, str) else None


def load_json_file(path: Path) -> Any:
    """Read a JSON file the workflow refers to; syntax errors point at the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KumeoRuntimeError(f"{path}: file not found") from None
    except OSError as error:
        raise KumeoRuntimeError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise KumeoSyntaxError(
            f"invalid JSON: {error.msg}", SourceSpan(str(path), error.lineno, error.colno)
        ) from None


class KindAgent(RuntimeAgent):
    """A RuntimeAgent with the helpers the built-in kinds share: options, the workflow config, expressions."""

    #: The kind name as users write it, for messages.
    kind_name: str = ""
    #: Whether the agent's ``config:`` argument holds this kind's options (DataProcessor, DataNormalizer). For the
    #: other kinds compile may put the workflow's config block under the same key when the agent has no own config.
    options_in_config: bool = False

    @property
    def label(self) -> str:
        """How messages name this agent: ``DataProcessor 'normalize'``."""
        return f"{self.kind_name or self.plan.kind} '{self.plan.id}'"

    @property
    def workflow_config(self) -> Any:
        """The workflow's ``config`` block (``{}`` when there is none), which expressions read as ``config``."""
        value = self.settings.get(WORKFLOW_CONFIG_KEY)
        return {} if value is None else value

    def agent_config(self) -> dict[str, Any]:
        """The agent's own ``config:`` object; a file reference (``"x.json"``, ``{file: …}``) is read here."""
        if not self.options_in_config:
            return {}
        value = self.settings.get(AGENT_CONFIG_KEY)
        if value is None:
            return {}
        file = file_reference(value)
        if file is not None:
            value = load_json_file(self.resolve_path(file))
        if not isinstance(value, Mapping):
            raise KumeoRuntimeError(f"{self.label}: 'config' must be an object, got {_json_type(value)}")
        return dict(value)

    def options(self) -> dict[str, Any]:
        """The kind's settings: named arguments of the agent, overridden by entries of its ``config`` object."""
        merged = {k: v for k, v in self.settings.items() if k not in (AGENT_CONFIG_KEY, WORKFLOW_CONFIG_KEY)}
        merged.update(self.agent_config())
        return merged

    def resolve_path(self, name: str) -> Path:
        """A file the workflow names, relative to the workflow file's directory (the worker's files folder);
        refused when it resolves outside that folder (and the folders of ``KUMEO_DATA_ROOTS``)."""
        return runtime_path(name, self.base_dir, self.label)

    def compile(self, text: Any, what: str) -> Expression:
        return compile_condition(text, f"{self.label}: {what}")

    def payload(self, data: Any) -> dict[str, Any]:
        """A copy of the event payload, which must be a JSON object for the transforming kinds."""
        if not isinstance(data, Mapping):
            raise EventRejected(f"{self.label}: expected a JSON object, got {_json_type(data)}")
        return dict(data)

    def scope(self, payload: Any) -> dict[str, Any]:
        return scope(payload, self.workflow_config)

    def _require_started(self, started: bool) -> None:
        if not started:
            raise KumeoRuntimeError(f"{self.label}: process() called before start()")


def compile_condition(text: Any, where: str) -> Expression:
    """Compile one expression of an agent's settings; a bad one names the agent and the rule it belongs to."""
    if not isinstance(text, str):
        raise KumeoRuntimeError(f"{where}: expected an expression (a string), got {_json_type(text)}")
    try:
        return compile_expression(text)
    except KumeoExpressionError as error:
        hint = f" ({error.hint})" if error.hint else ""
        column = f" at column {error.span.column}" if error.span is not None else ""
        raise KumeoRuntimeError(f"{where}: invalid expression `{text}`: {error.message}{column}{hint}") from None


def evaluate(expression: Expression, data: Mapping[str, Any], where: str) -> Any:
    """Evaluate on one event; an evaluation error is permanent for that event, so it is rejected."""
    try:
        return expression.evaluate(data)
    except KumeoEvaluationError as error:
        raise EventRejected(f"{where}: {error}") from None


def holds(expression: Expression, data: Mapping[str, Any], where: str) -> bool:
    """Whether a condition is truthy on one event (evaluation errors reject the event)."""
    try:
        return expression.truthy(data)
    except KumeoEvaluationError as error:
        raise EventRejected(f"{where}: {error}") from None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
