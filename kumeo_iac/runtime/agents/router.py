"""Router: sends each event, unchanged, to the subject of the first route whose condition holds.

Routes come from the plan (``AgentPlan.routes``, in the order the rules were written); compile turns the
``rules``/``default`` arguments into them. A route with condition None is the default and is taken only when no
conditional route matches, wherever it was written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumeo_iac.expr import Expression
from kumeo_iac.runtime._agent import Emit, Event, EventRejected
from kumeo_iac.runtime.agents._common import KindAgent, holds

if TYPE_CHECKING:
    from kumeo_iac.compile import RoutePlan

__all__ = ["RouterAgent"]


class RouterAgent(KindAgent):
    """Runs one Router: first matching route wins, else the default, else the event is rejected."""

    kind_name = "Router"

    async def start(self) -> None:
        self.routes: list[tuple[RoutePlan, Expression]] = []
        self.default: RoutePlan | None = None
        for route in self.plan.routes:
            if route.condition is None:
                if self.default is None:
                    self.default = route
                continue
            self.routes.append((route, self.compile(route.condition, f"route to {route.destination}")))
        self.started = True

    async def process(self, event: Event) -> list[Emit]:
        self._require_started(getattr(self, "started", False))
        data = self.scope(event.data)
        for route, condition in self.routes:
            if holds(condition, data, f"{self.label}: route `{route.condition}`"):
                return [Emit(event.data, subject=route.subject)]
        if self.default is not None:
            return [Emit(event.data, subject=self.default.subject)]
        raise EventRejected(f"{self.label}: no route matched and no default")
