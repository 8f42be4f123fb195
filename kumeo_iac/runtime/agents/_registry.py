"""Which class runs an agent: the ``"module:Class"`` its kind declares, imported only by the worker that runs it.

Each agent kind declares its runtime handler (``kumeo_iac.spec.Agent.runtime_handler``) and compile copies it into
the agent's plan (``AgentPlan.handler``), so the runtime needs no table of kinds. Importing lazily matters: the
MLModel kind pulls in onnxruntime and BayesianNetwork pgmpy (seconds of import time), and a DataProcessor pod must
not pay for them, or even have them installed.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime._agent import Emit, Event, RuntimeAgent

if TYPE_CHECKING:
    from kumeo_iac.compile import AgentPlan, WorkflowPlan

__all__ = ["UnavailableAgent", "agent_class", "create_agent", "handler_class"]


def handler_class(handler: str, *, kind: str, extra: str | None = None,
                  base_dir: Path | None = None) -> type[RuntimeAgent]:
    """The class at ``handler`` (``"module:Class"``) that runs agents of ``kind``; KumeoRuntimeError when it cannot
    be imported (naming the pip ``extra`` its imports need, if any) or is not a RuntimeAgent.

    A handler outside Kumeo is looked up in ``base_dir`` (the workflow's folder) too, as a Custom entrypoint is.
    """
    module_name, _, class_name = handler.partition(":")
    if not module_name or not class_name:
        raise KumeoRuntimeError(f"agent kind '{kind}': runtime handler {handler!r} is not 'module:Class'")
    base = str(base_dir.resolve()) if base_dir is not None and not module_name.startswith("kumeo_iac.") else None
    if base is not None and base not in sys.path:
        sys.path.insert(0, base)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        missing = error.name or ""
        if extra is not None and not missing.startswith("kumeo_iac"):
            raise KumeoRuntimeError(
                f"agent kind '{kind}' needs the '{extra}' extra: pip install 'kumeo-iac[{extra}]' ({error})"
            ) from error
        if isinstance(error, ModuleNotFoundError) and missing and (module_name + ".").startswith(missing + "."):
            where = f"{base} and the installed packages" if base else "the installed packages"
            raise KumeoRuntimeError(f"agent kind '{kind}': runtime handler {handler!r}: no module {missing!r} "
                                    f"(looked in {where})") from None
        raise
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, RuntimeAgent)):
        raise KumeoRuntimeError(f"agent kind '{kind}': runtime handler {handler!r} is not a "
                                f"kumeo_iac.runtime.RuntimeAgent subclass")
    return cls


def agent_class(kind: str) -> type[RuntimeAgent]:
    """The runtime class a registered kind declares (aliases too); KumeoRuntimeError when the kind is unknown or its
    class cannot be imported here."""
    from kumeo_iac.spec import AGENT_KIND_NAMES, AGENT_KINDS

    cls = AGENT_KIND_NAMES.get(kind)
    if cls is None:
        raise KumeoRuntimeError(f"unknown agent kind '{kind}' (known kinds: {', '.join(sorted(AGENT_KINDS))})")
    return handler_class(cls.runtime_handler, kind=cls.kind_name, extra=cls.runtime_extra)


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
    """The runtime agent for one AgentPlan (its ``handler``; a Plan without one: its kind's); a kind that cannot run
    here fails at its start()."""
    try:
        if plan.handler:
            cls = handler_class(plan.handler, kind=plan.kind, extra=plan.handler_extra, base_dir=base_dir)
        else:
            cls = agent_class(plan.kind)
    except KumeoRuntimeError as error:
        return UnavailableAgent(plan, workflow, base_dir, error)
    return cls(plan, workflow, base_dir)
