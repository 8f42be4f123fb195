"""One agent of a kind, built from a hand-written AgentPlan and driven as a plain object (no NATS, no worker): what
the unit tests of the agent kinds share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kumeo_iac.compile import AgentPlan, RoutePlan, WorkflowPlan
from kumeo_iac.runtime._agent import Event, RuntimeAgent
from kumeo_iac.runtime.agents import create_agent

# The workflow the agents belong to: nothing in it but its name.
WORKFLOW = WorkflowPlan("wf", "wf", "wf", "nats://localhost:4222", [], [], [], [], [], [])


def agent_plan(kind: str, settings: dict[str, Any], *, agent_id: str = "a", routes: list[RoutePlan] | None = None,
               image_class: str = "base") -> AgentPlan:
    """The Plan of agent ``agent_id`` of ``kind`` with ``settings`` (and ``routes``), reading one input."""
    return AgentPlan(
        id=agent_id, kind=kind, inputs={"": "in"}, input_fields={}, output_subject=f"kumeo.wf.{agent_id}.out",
        dead_letter_subject=f"kumeo.wf.dlq.{agent_id}", routes=routes or [], target_subjects=[], consumers=[],
        settings=settings, when=None, timeout_seconds=5.0, max_deliver=3, backoff_seconds=[1.0], fallback=None,
        files=[], image="img", image_class=image_class, replicas=1, max_replicas=1, resources={},
    )


def make(kind: str, settings: dict[str, Any], *, base_dir: Path = Path("."), **plan_options: Any) -> RuntimeAgent:
    """The runtime agent of :func:`agent_plan`, its files resolved against ``base_dir``; not started."""
    return create_agent(agent_plan(kind, settings, **plan_options), WORKFLOW, base_dir)


async def started(kind: str, settings: dict[str, Any], **options: Any) -> RuntimeAgent:
    """:func:`make`, started (its files loaded, its settings checked)."""
    agent = make(kind, settings, **options)
    await agent.start()
    return agent


async def one(agent: RuntimeAgent, data: Any) -> Any:
    """The one output ``agent`` emits for an event of ``data``, on its own output subject."""
    emits = await agent.process(Event(id="e1", data=data))
    assert len(emits) == 1 and emits[0].subject is None
    return emits[0].data
