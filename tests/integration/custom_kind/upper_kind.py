"""A new agent kind, defined outside Kumeo as a user would: ``Upper`` upper-cases one text field of each event.

Everything the kind means is declared here, on the class (its arguments, its config model and TypedDict, the file
argument it reads, the expression its ``keep_if`` holds, its runtime image and its runtime handler), and
``register_kind`` makes the language, `kumeo check`, compile, `kumeo render` and `kumeo run` know it.
tests/integration/test_custom_kind.py runs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import ClassVar, TypedDict

from pydantic import Field

from kumeo_iac import Agent, AgentConfig, register_kind
from kumeo_iac.expr import compile_expression
from kumeo_iac.runtime import Emit, Event, EventRejected, RuntimeAgent
from kumeo_iac.spec import KindExpression, KindProblem, arg


class UpperSettings(AgentConfig):
    """What an Upper agent reads from its ``config``."""

    suffix: str = Field(default="", description="Appended to the upper-cased text.")


class UpperConfig(TypedDict, total=False):
    """The ``config`` of an Upper agent, for a type checker."""

    suffix: str


@register_kind
class Upper(Agent):
    kind_name = "Upper"
    summary = "Upper-cases one text field of the event (words in its glossary stay as written)."
    positional = ("field",)
    config_model = UpperSettings
    config_dict = UpperConfig
    file_arguments = ("glossary",)
    runtime_handler = "upper_kind:UpperAgent"
    uses_secrets: ClassVar[bool] = False

    field: str | None = arg("The event field to upper-case.", required=True)
    glossary: str | None = arg("A JSON file: a list of words kept as written.")
    keep_if: str | None = arg("An expression; events for which it holds pass unchanged.")

    def expressions(self) -> Iterator[KindExpression | KindProblem]:
        """``keep_if`` is an expression: `kumeo check` parses it (and its ``config.…`` paths) like ``when``."""
        if self.keep_if is not None:
            yield KindExpression(self.located("keep_if"), "`keep_if`", "keep_if")


class UpperAgent(RuntimeAgent):
    """Runs an Upper agent: ``settings`` are its arguments as compile wrote them (files as ``{"file": …}``)."""

    async def start(self) -> None:
        self.field = str(self.settings["field"])
        config = self.settings.get("config") or {}
        self.suffix = str(config.get("suffix", ""))
        glossary = self.settings.get("glossary")
        path = glossary.get("file") if isinstance(glossary, dict) else glossary
        self.keep = set(json.loads((self.base_dir / path).read_text())) if path else set()
        keep_if = self.settings.get("keep_if")
        self.keep_if = compile_expression(keep_if) if isinstance(keep_if, str) else None

    async def process(self, event: Event) -> list[Emit]:
        if self.keep_if is not None and isinstance(event.data, dict) and self.keep_if.truthy(event.data):
            return [Emit(event.data)]
        text = event.data.get(self.field) if isinstance(event.data, dict) else None
        if not isinstance(text, str):
            raise EventRejected(f"Upper: field {self.field!r} is not text")
        words = [w if w in self.keep else w.upper() for w in text.split(" ")]
        return [Emit({**event.data, self.field: " ".join(words) + self.suffix})]
