"""RuleEngine: rules that set fields on the event when their condition holds.

Rules run in order on the event as it is being updated, so a rule sees the fields set by the rules before it.
With ``hit_policy: "all"`` (the default) every matching rule applies, later ones overwriting what earlier ones
set; with ``"first"`` only the first matching rule applies. The names of the rules that applied are recorded in
``_matched_rules``. A ``set`` value is a literal, except a string starting with ``=``, which is an expression
(``"=amount * 0.1"``); write ``"=="`` at the start for a literal string that begins with ``=``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.expr import Expression
from kumeo_iac.runtime._agent import Emit, Event
from kumeo_iac.runtime.agents._common import KindAgent, evaluate, file_reference, holds, load_json_file

__all__ = ["MATCHED_RULES_KEY", "RuleEngineAgent"]

#: Where the names of the rules that applied are recorded.
MATCHED_RULES_KEY: Final = "_matched_rules"
_POLICIES: Final = ("all", "first")


@dataclasses.dataclass(frozen=True)
class _Assignment:
    field: str
    value: Any = None
    expression: Expression | None = None


@dataclasses.dataclass(frozen=True)
class _Rule:
    name: str
    condition: Expression | None  # None: always
    assignments: tuple[_Assignment, ...]


class RuleEngineAgent(KindAgent):
    """Runs one RuleEngine over inline rules or a rules JSON file."""

    kind_name = "RuleEngine"

    async def start(self) -> None:
        options = self.options()
        rules: Any = options.get("rules")
        policy: Any = options.get("hit_policy")
        self.source = "'rules'"
        file = file_reference(rules) if not isinstance(rules, list) else None
        if file is not None:
            path = self.resolve_path(file)
            self.source = str(path)
            document = load_json_file(path)
            if isinstance(document, Mapping):
                policy = policy or document.get("hit_policy")
                rules = document.get("rules")
            else:
                rules = document
        if not isinstance(rules, list) or not rules:
            raise KumeoRuntimeError(
                f"{self.label}: {self.source} must hold a non-empty list of rules "
                "[{ name: …, when: \"expr\", set: { field: value } }] (a file may wrap it as {\"rules\": [...]})"
            )
        policy = policy or "all"
        if policy not in _POLICIES:
            raise KumeoRuntimeError(f"{self.label}: unknown hit_policy {policy!r}; use 'all' or 'first'")
        self.hit_policy: str = policy
        self.rules: list[_Rule] = [self._rule(index, rule) for index, rule in enumerate(rules, start=1)]
        self.started = True

    async def process(self, event: Event) -> list[Emit]:
        self._require_started(getattr(self, "started", False))
        data = self.payload(event.data)
        matched: list[str] = []
        for rule in self.rules:
            scope = self.scope(data)
            if rule.condition is not None and not holds(rule.condition, scope, f"{self.label}: rule '{rule.name}'"):
                continue
            matched.append(rule.name)
            values = {
                a.field: a.value if a.expression is None else evaluate(
                    a.expression, scope, f"{self.label}: rule '{rule.name}': set '{a.field}'")
                for a in rule.assignments
            }
            data.update(values)
            if self.hit_policy == "first":
                break
        data[MATCHED_RULES_KEY] = matched
        return [Emit(data)]

    def _rule(self, index: int, rule: Any) -> _Rule:
        where = f"{self.label}: {self.source} rule {index}"
        if not isinstance(rule, Mapping):
            raise KumeoRuntimeError(f"{where}: must be an object, got {rule!r}")
        name = str(rule.get("name") or f"rule {index}")
        if rule.get("name"):
            where = f"{where} ('{name}')"
        text = rule.get("when", rule.get("condition"))
        condition = None if text is None else self.compile(text, f"{self.source} rule '{name}'")
        assignments = rule.get("set")
        if not isinstance(assignments, Mapping) or not assignments:
            raise KumeoRuntimeError(f"{where}: needs 'set', an object of field: value")
        out = []
        for field, value in assignments.items():
            if isinstance(value, str) and value.startswith("=="):
                out.append(_Assignment(str(field), value[1:]))
            elif isinstance(value, str) and value.startswith("="):
                out.append(_Assignment(str(field), expression=self.compile(value[1:], f"rule '{name}': set '{field}'")))
            else:
                out.append(_Assignment(str(field), value))
        return _Rule(name, condition, tuple(out))
