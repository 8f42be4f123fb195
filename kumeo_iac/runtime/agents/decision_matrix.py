"""DecisionMatrix: a decision table (a `.dmx` file or inline rules) applied with a DMN hit policy, or a set of
validation rules that every event must satisfy.

Two modes:

- ``decide`` (a ``matrix`` file, or inline rules with ``then``/``output``): ``first`` merges the first matching
  rule's outputs into the event (no match: the event passes unchanged); ``unique`` requires exactly one match;
  ``collect`` puts the outputs of every matching rule, in order, in a list under ``output_key`` ("decisions").
- ``validate`` (inline rules with ``error`` and no outputs, or ``mode: "validate"``): a rule fails when its
  condition is false; on failure ``on_failure.action`` decides: ``reject`` (default) dead-letters the event with
  the errors, ``annotate``/``quarantine`` pass it on with ``_violations: [{rule, error}, …]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final, Protocol

from kumeo_iac.errors import KumeoEvaluationError, KumeoRuntimeError
from kumeo_iac.expr import Expression
from kumeo_iac.runtime._agent import Emit, Event, EventRejected
from kumeo_iac.runtime.agents._common import KindAgent, file_reference
from kumeo_iac.runtime.dmx import HIT_POLICIES, DecisionTable, load_dmx

__all__ = ["DEFAULT_OUTPUT_KEY", "VIOLATIONS_KEY", "DecisionMatrixAgent"]

#: Where the ``collect`` hit policy puts its list when no ``output_key`` is given.
DEFAULT_OUTPUT_KEY: Final = "decisions"
#: Where ``annotate``/``quarantine`` put the failed validation rules.
VIOLATIONS_KEY: Final = "_violations"
_ACTIONS: Final = ("reject", "annotate", "quarantine")
_OUTPUT_KEYS: Final = ("then", "output", "outputs")


class _Rule(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def outputs(self) -> Mapping[str, Any]: ...

    def matches(self, data: Mapping[str, Any]) -> bool: ...


@dataclasses.dataclass(frozen=True)
class _InlineRule:
    """A rule written in the workflow: a condition (None: always) and the outputs or error it carries."""

    name: str
    condition: Expression | None
    outputs: Mapping[str, Any]
    error: str | None = None

    @property
    def label(self) -> str:
        return f"rule '{self.name}'"

    def matches(self, data: Mapping[str, Any]) -> bool:
        return self.condition is None or self.condition.truthy(data)


class DecisionMatrixAgent(KindAgent):
    """Runs one DecisionMatrix in ``decide`` or ``validate`` mode."""

    kind_name = "DecisionMatrix"

    async def start(self) -> None:
        options = self.options()
        self.table: DecisionTable | None = None
        matrix, rules = options.get("matrix"), options.get("rules")
        if matrix is not None and rules is not None:
            raise KumeoRuntimeError(f"{self.label}: give either 'matrix' or 'rules', not both")
        if matrix is not None:
            file = file_reference(matrix)
            if file is None:
                raise KumeoRuntimeError(f"{self.label}: 'matrix' must be a .dmx file path, got {matrix!r}")
            self.table = load_dmx(self.resolve_path(file))
            self.rules: list[_Rule] = list(self.table.rules)
            self.mode = "decide"
        elif rules is not None:
            inline = self._inline_rules(rules)
            self.rules = list(inline)
            self.mode = self._mode(options.get("mode"), inline)
        else:
            raise KumeoRuntimeError(f"{self.label}: needs a 'matrix' file or inline 'rules'")

        policy = options.get("hit_policy") or (self.table.hit_policy if self.table else "first")
        if not isinstance(policy, str) or policy.lower() not in HIT_POLICIES:
            raise KumeoRuntimeError(f"{self.label}: unknown hit_policy {policy!r}; use first, unique or collect")
        self.hit_policy: str = HIT_POLICIES[policy.lower()]
        self.output_key: str = (
            options.get("output_key") or (self.table.output_key if self.table else None) or DEFAULT_OUTPUT_KEY
        )
        self.action: str = self._action(options.get("on_failure"))
        self.started = True

    async def process(self, event: Event) -> list[Emit]:
        self._require_started(getattr(self, "started", False))
        data = self.payload(event.data)
        scope = self.scope(data)
        if self.mode == "validate":
            return [Emit(self._validate(data, scope))]

        if self.hit_policy == "first":
            for rule in self.rules:
                if self._matches(rule, scope):
                    return [Emit({**data, **rule.outputs})]
            return [Emit(data)]
        matched = [rule for rule in self.rules if self._matches(rule, scope)]
        if self.hit_policy == "unique":
            if len(matched) != 1:
                which = "no rule matches" if not matched else "rules " + ", ".join(r.label for r in matched) + " match"
                raise EventRejected(f"{self.label}: hit policy unique needs exactly one matching rule; {which}")
            return [Emit({**data, **matched[0].outputs})]
        return [Emit({**data, self.output_key: [dict(rule.outputs) for rule in matched]})]

    # -- per event ------------------------------------------------------------------------------------------------

    def _matches(self, rule: _Rule, scope: Mapping[str, Any]) -> bool:
        try:
            return rule.matches(scope)
        except KumeoEvaluationError as error:
            raise EventRejected(f"{self.label}: {rule.label}: {error}") from None

    def _validate(self, data: dict[str, Any], scope: Mapping[str, Any]) -> dict[str, Any]:
        violations = []
        for rule in self.rules:
            assert isinstance(rule, _InlineRule)
            try:
                if rule.matches(scope):
                    continue
                reason = rule.error or f"condition `{rule.condition.source if rule.condition else ''}` is false"
            except KumeoEvaluationError as error:  # data too malformed to even test is a violation, not a crash
                reason = f"{rule.error or 'cannot evaluate the condition'} ({error})"
            violations.append({"rule": rule.name, "error": reason})
        if not violations:
            return data
        if self.action == "reject":
            listed = "; ".join(f"{v['rule']}: {v['error']}" for v in violations)
            raise EventRejected(f"{self.label}: validation failed: {listed}")
        return {**data, VIOLATIONS_KEY: violations}

    # -- settings -------------------------------------------------------------------------------------------------

    def _inline_rules(self, rules: Any) -> list[_InlineRule]:
        if not isinstance(rules, list) or not rules:
            raise KumeoRuntimeError(f"{self.label}: 'rules' must be a non-empty list of {{ condition: …, … }}")
        out = []
        for index, rule in enumerate(rules, start=1):
            if not isinstance(rule, Mapping):
                raise KumeoRuntimeError(f"{self.label}: rule {index} must be an object, got {rule!r}")
            name = str(rule.get("name") or f"rule {index}")
            text = rule.get("condition", rule.get("when"))
            condition = None if text is None else self.compile(text, f"rule '{name}'")
            outputs: Any = {}
            for key in _OUTPUT_KEYS:
                if key in rule:
                    outputs = rule[key]
                    break
            if not isinstance(outputs, Mapping):
                raise KumeoRuntimeError(f"{self.label}: rule '{name}': outputs must be an object, got {outputs!r}")
            error = rule.get("error")
            out.append(_InlineRule(name, condition, dict(outputs), None if error is None else str(error)))
        return out

    def _mode(self, mode: Any, rules: list[_InlineRule]) -> str:
        if mode is None:
            validating = any(r.error is not None for r in rules) and not any(r.outputs for r in rules)
            return "validate" if validating else "decide"
        if mode not in ("decide", "validate"):
            raise KumeoRuntimeError(f"{self.label}: unknown mode {mode!r}; use 'decide' or 'validate'")
        return str(mode)

    def _action(self, on_failure: Any) -> str:
        if on_failure is None:
            return "reject"
        action = on_failure.get("action", "reject") if isinstance(on_failure, Mapping) else on_failure
        if action not in _ACTIONS:
            raise KumeoRuntimeError(f"{self.label}: unknown on_failure action {action!r}; use {', '.join(_ACTIONS)}")
        return str(action)
