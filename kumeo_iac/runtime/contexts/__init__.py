"""Workflow contexts an agent reads (``context: "risk"``), answered per event and added to the event it sees.

A workflow declares contexts (``context: BayesianNetwork("models/risk.bn", id: "risk")``) and an agent names the
ones it reads; compile copies each named context's declaration into the agent's ``settings["context"]`` (one
object, or a list). The worker loads them once at start (:func:`load_contexts`) and, before ``when`` and the agent
run, adds each context's answer for the event under the context's id (:meth:`Contexts.enrich`). Every kind sees it
the same way: a `.dmx` column or rule condition ``risk.fraud >= 0.3``, a Router rule, an LLM prompt
``{{risk.fraud}}``, ``when: "risk.fraud > 0.1"``. The answer travels on with the agent's output (a decision
carries the risk it was based on).

BayesianNetwork context (options in the declaration's ``options: {…}``: ``query``, ``evidence``, ``method``, as
for the BayesianNetwork agent, see ``kumeo_iac.runtime._models.NetworkQuery``): ``risk.<variable>`` is, for a
two-state no/yes variable (``no/yes``, ``false/true``, ``0/1``…), P(variable = yes | evidence) as a number; for
any other variable its distribution ``{state: probability}``; with ``method: "map"`` its most probable state.

Other context kinds (KnowledgeBase, Database, ``data.*`` entries) are not answered here; they are left to the
kinds that read them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumeo_iac._paths import runtime_path
from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime.agents import WORKFLOW_CONFIG_KEY

if TYPE_CHECKING:
    from kumeo_iac.compile import AgentPlan
    from kumeo_iac.runtime._models import NetworkQuery

__all__ = ["BayesianNetworkContext", "Contexts", "context_declarations", "load_contexts"]

log = logging.getLogger("kumeo.runtime.contexts")


class BayesianNetworkContext:
    """A Bayesian network queried with each event's evidence; its answer is a small JSON object."""

    kind = "BayesianNetwork"

    def __init__(self, context_id: str, query: NetworkQuery) -> None:
        self.id = context_id
        self.query = query
        from kumeo_iac.runtime._models import positive_state

        self._positive = {v: positive_state(query.network.states[v]) for v in query.query}

    def answer(self, payload: Any, config: Any) -> dict[str, Any]:
        evidence = self.query.observe(payload, config)
        if self.query.method == "map":
            return dict(self.query.map(evidence))
        out: dict[str, Any] = {}
        for variable, distribution in self.query.posterior(evidence).items():
            positive = self._positive[variable]
            out[variable] = distribution[positive] if positive is not None else dict(distribution)
        return out


class Contexts:
    """The contexts one agent reads, in the order it names them."""

    def __init__(self, items: list[BayesianNetworkContext], config: Any) -> None:
        self.items = items
        self.config = config

    def __bool__(self) -> bool:
        return bool(self.items)

    def enrich(self, data: Any) -> Any:
        """The event payload with each context's answer under the context's id (a non-object stays as it is).

        Raises EventRejected when the event's values cannot be evidence (a value that names no state).
        """
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        for context in self.items:
            out[context.id] = context.answer(data, self.config)
        return out


def context_declarations(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The context declarations compile put in an agent's settings (``context``: one object or a list)."""
    value = settings.get("context") if isinstance(settings, Mapping) else None
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [dict(item) for item in items if isinstance(item, Mapping)]


async def load_contexts(plan: AgentPlan, base_dir: Path) -> Contexts:
    """Load every context of ``plan`` this runtime answers (parsing files off the event loop)."""
    from kumeo_iac.runtime._models import NetworkQuery, load_network, network_file

    items: list[BayesianNetworkContext] = []
    for declaration in context_declarations(plan.settings):
        kind = declaration.get("kind")
        context_id = declaration.get("id")
        if kind != BayesianNetworkContext.kind:
            log.debug("agent %s: context %r of kind %r is not answered by the worker", plan.id, context_id, kind)
            continue
        where = f"agent '{plan.id}': context BayesianNetwork '{context_id}'"
        if not isinstance(context_id, str) or not context_id:
            raise KumeoRuntimeError(f"{where}: the context needs an id")
        options = declaration.get("options") or {}
        if not isinstance(options, Mapping):
            raise KumeoRuntimeError(f"{where}: 'options' must be an object, got {options!r}")
        file = network_file(declaration.get("path") or declaration.get("file"), where)
        path = runtime_path(file, base_dir, where)
        network = await asyncio.to_thread(load_network, path, where)
        items.append(BayesianNetworkContext(context_id, NetworkQuery(network, options, where)))
    config = plan.settings.get(WORKFLOW_CONFIG_KEY) if isinstance(plan.settings, Mapping) else None
    return Contexts(items, config or {})
