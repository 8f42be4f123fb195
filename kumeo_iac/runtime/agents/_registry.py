"""Which class runs which agent kind, resolved lazily so a worker only imports the kind it runs.

Entries are ``"module:Class"`` strings: the MLModel kind pulls in onnxruntime and BayesianNetwork pgmpy (seconds of
import time), and a DataProcessor pod must not pay for them, or even have them installed.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Final

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime._agent import Emit, Event, RuntimeAgent

if TYPE_CHECKING:
    from kumeo_iac.compile import AgentPlan, WorkflowPlan

__all__ = ["KINDS", "UnavailableAgent", "agent_class", "create_agent", "register"]

_PACKAGE: Final = "kumeo_iac.runtime.agents"


@dataclasses.dataclass(frozen=True)
class KindEntry:
    """Where a kind's runtime class lives (None: not in this runtime yet) and the extra its imports need."""

    target: str | None
    extra: str | None = None


KINDS: dict[str, KindEntry] = {
    "DataProcessor": KindEntry(f"{_PACKAGE}.data_processor:DataProcessorAgent"),
    "DataNormalizer": KindEntry(f"{_PACKAGE}.data_normalizer:DataNormalizerAgent"),
    "MissingValueHandler": KindEntry(f"{_PACKAGE}.missing_value_handler:MissingValueHandlerAgent"),
    "Router": KindEntry(f"{_PACKAGE}.router:RouterAgent"),
    "DecisionMatrix": KindEntry(f"{_PACKAGE}.decision_matrix:DecisionMatrixAgent"),
    "RuleEngine": KindEntry(f"{_PACKAGE}.rule_engine:RuleEngineAgent"),
    "MLModel": KindEntry(f"{_PACKAGE}.ml_model:MLModelAgent", extra="ml"),
    "LLM": KindEntry(f"{_PACKAGE}.llm:LLMAgent", extra="llm"),
    "BayesianNetwork": KindEntry(f"{_PACKAGE}.bayesian_network:BayesianNetworkAgent", extra="bayes"),
    "HumanReview": KindEntry(f"{_PACKAGE}.human_review:HumanReviewAgent"),
    "Custom": KindEntry(f"{_PACKAGE}.custom:CustomAgent"),
}

#: Other names the language accepts for a kind (kept in step with the Spec's ``kind_aliases``).
_ALIASES: Final = {"HumanInLoop": "HumanReview"}


def register(kind: str, target: str, extra: str | None = None) -> None:
    """Make ``kind`` run with the class at ``"module:Class"`` (imported on first use)."""
    KINDS[kind] = KindEntry(target, extra)


def agent_class(kind: str) -> type[RuntimeAgent]:
    """The runtime class of a kind; KumeoRuntimeError when the kind is unknown or not available here."""
    kind = _ALIASES.get(kind, kind)
    entry = KINDS.get(kind)
    if entry is None:
        known = ", ".join(sorted(KINDS))
        raise KumeoRuntimeError(f"unknown agent kind '{kind}' (known kinds: {known})")
    if entry.target is None:
        raise KumeoRuntimeError(f"agent kind '{kind}' is not available in this runtime yet")
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        if entry.extra is None or (error.name or "").startswith("kumeo_iac"):
            raise
        raise KumeoRuntimeError(
            f"agent kind '{kind}' needs the '{entry.extra}' extra: pip install 'kumeo-iac[{entry.extra}]' "
            f"({error})"
        ) from error
    cls = getattr(module, class_name)
    if not (isinstance(cls, type) and issubclass(cls, RuntimeAgent)):  # a registry typo, not a user mistake
        raise TypeError(f"{entry.target} is not a RuntimeAgent subclass")
    return cls


class UnavailableAgent(RuntimeAgent):
    """Stands in for a kind this runtime cannot run, so the failure surfaces at start() with the reason."""

    def __init__(self, plan: AgentPlan, workflow: WorkflowPlan, base_dir: Path, error: KumeoRuntimeError) -> None:
        super().__init__(plan, workflow, base_dir)
        self.error = error

    async def start(self) -> None:
        raise KumeoRuntimeError(f"agent '{self.plan.id}': {self.error}")

    async def process(self, event: Event) -> list[Emit]:
        raise KumeoRuntimeError(f"agent '{self.plan.id}': {self.error}")


def create_agent(plan: AgentPlan, workflow: WorkflowPlan, base_dir: Path) -> RuntimeAgent:
    """The runtime agent for one AgentPlan; a kind that cannot run here fails at its start()."""
    try:
        cls = agent_class(plan.kind)
    except KumeoRuntimeError as error:
        return UnavailableAgent(plan, workflow, base_dir, error)
    return cls(plan, workflow, base_dir)
