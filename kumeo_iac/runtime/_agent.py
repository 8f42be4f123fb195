"""The contract between the worker and the agent kinds.

The worker owns NATS: fetching, acking, retries, dead letters, joins, headers. An agent kind owns only the work:
it receives one :class:`Event` and returns what to emit. Keeping agents free of NATS makes each kind testable as a
plain function and lets the same kind run in a pod, in `kumeo run`, or in a benchmark.

Failures: raising :class:`EventRejected` means the event can never succeed (bad shape, failed validation) and it
goes straight to the dead-letter subject; any other exception is treated as transient and retried with backoff
until the consumer's ``max_deliver``, then dead-lettered with the error.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumeo_iac.errors import KumeoRuntimeError

if TYPE_CHECKING:
    from kumeo_iac.compile import AgentPlan, WorkflowPlan


class EventRejected(KumeoRuntimeError):
    """This event cannot be processed, however often it is retried; it goes to the dead-letter subject now."""


@dataclasses.dataclass
class Event:
    """One event as an agent sees it: the JSON payload and where it came from."""

    id: str
    data: Any
    subject: str = ""
    attempt: int = 1
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Emit:
    """One message an agent produces.

    ``subject=None`` means "the agent's normal output": its output subject, plus the workflow targets its plan lists.
    A Router names the subject of the route it chose.
    """

    data: Any
    subject: str | None = None


class RuntimeAgent(abc.ABC):
    """Base of every agent kind's runtime implementation."""

    def __init__(self, plan: AgentPlan, workflow: WorkflowPlan, base_dir: Path) -> None:
        self.plan = plan
        self.workflow = workflow
        self.base_dir = base_dir
        self.settings: dict[str, Any] = plan.settings

    async def start(self) -> None:
        """Load models, compile expressions, open clients; called once before the first event."""

    async def stop(self) -> None:
        """Release what start() acquired."""

    @abc.abstractmethod
    async def process(self, event: Event) -> list[Emit]:
        """Handle one event and return what to emit (at least one Emit: events are passed on, never dropped)."""

    async def process_batch(self, events: list[Event]) -> list[list[Emit] | BaseException]:
        """Handle several events at once; kinds that batch (ONNX) override this. Errors are returned per event."""
        out: list[list[Emit] | BaseException] = []
        for event in events:
            try:
                out.append(await self.process(event))
            except Exception as exc:  # one bad event must not fail its batch neighbours
                out.append(exc)
        return out
