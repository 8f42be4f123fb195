"""The contract between the worker and the agent kinds.

The worker owns NATS: fetching, acking, retries, dead letters, joins, headers. An agent kind owns only the work:
it receives one :class:`Event` and returns what to emit. Keeping agents free of NATS makes each kind testable as a
plain function and lets the same kind run in a pod, in `kumeo run`, or in a benchmark.

Failures: raising :class:`EventRejected` means the event can never succeed (bad shape, failed validation) and it
goes straight to the dead-letter subject; any other exception is treated as transient and retried with backoff
until the consumer's ``max_deliver``, then dead-lettered with the error.

Parking: an agent whose class sets ``parks_events = True`` (HumanReview) may return an empty list for an event it
has stored durably elsewhere (a KV bucket); the worker then acks the input without publishing anything, and the
agent later publishes the event's result itself through ``host.release`` (same event id, same dedupe id, same
headers a normal hop would get). For every other agent an empty list still passes the input on unchanged.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

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


#: An HTTP handler an agent mounts on the worker's server: (method, target, headers, body) → (status, body, type).
HttpHandler = Callable[[str, str, dict[str, str], bytes], Awaitable[tuple[int, str, str]]]


class AgentHost(Protocol):
    """What the worker lends an agent that needs more than ``process`` (set as ``agent.host`` before start())."""

    #: The worker's JetStream context (for the agent's KV buckets).
    js: Any

    async def release(self, event_id: str, emits: list[Emit], *, traceparent: str | None = None,
                      attempt: int = 1) -> None:
        """Publish the result of an event the agent parked earlier, as the worker would have (PubAck awaited)."""
        ...

    def mount_http(self, prefix: str, handler: HttpHandler) -> bool:
        """Serve ``prefix`` on the worker's HTTP server; False when the worker runs without one."""
        ...


class RuntimeAgent(abc.ABC):
    """Base of every agent kind's runtime implementation."""

    #: True for kinds that may park an event (return ``[]``) and release it later through ``host.release``.
    parks_events: ClassVar[bool] = False

    def __init__(self, plan: AgentPlan, workflow: WorkflowPlan, base_dir: Path) -> None:
        self.plan = plan
        self.workflow = workflow
        self.base_dir = base_dir
        self.settings: dict[str, Any] = plan.settings
        #: The worker running this agent (None when the agent is driven directly, as in unit tests).
        self.host: AgentHost | None = None

    async def start(self) -> None:  # noqa: B027 - optional hook: most kinds have nothing to load
        """Load models, compile expressions, open clients; called once before the first event."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release what start() acquired."""

    @abc.abstractmethod
    async def process(self, event: Event) -> list[Emit]:
        """Handle one event and return what to emit (at least one Emit: events are passed on, never dropped;
        only a ``parks_events`` kind may return ``[]``, for an event it has stored durably and releases later)."""

    async def process_batch(self, events: list[Event]) -> list[list[Emit] | BaseException]:
        """Handle several events at once; kinds that batch (ONNX) override this. Errors are returned per event."""
        out: list[list[Emit] | BaseException] = []
        for event in events:
            try:
                out.append(await self.process(event))
            except Exception as exc:  # noqa: BLE001 - one bad event must not fail its batch neighbours
                out.append(exc)
        return out
