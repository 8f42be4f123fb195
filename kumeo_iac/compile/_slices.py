"""Each pod's own part of the Plan: what one agent (or the workflow's gateway) needs to run, nothing more.

A pod reads its part from the ``KUMEO_PLAN_JSON`` environment variable (see ``_kubernetes.PLAN_ENV``), so its pod
template changes exactly when what it runs changes: editing one agent rolls that agent and no other, and no object
grows with the number of agents. A part is itself a Plan (one workflow), so the runtime reads it like any Plan.
"""

from __future__ import annotations

import dataclasses

from kumeo_iac.compile._plan import AgentPlan, Plan, WorkflowPlan
from kumeo_iac.compile._security import agent_buckets

__all__ = ["GATEWAY_TARGET_KINDS", "agent_plan", "gateway_plan", "plan_text"]

#: The target kinds a workflow's gateway delivers to (the rest are NATS subjects agents publish to directly).
GATEWAY_TARGET_KINDS = ("HTTP", "File")


def agent_plan(plan: WorkflowPlan, agent: AgentPlan) -> WorkflowPlan:
    """The workflow as one agent sees it: that agent, and the KV buckets it uses.

    What the runtime never reads is left out, so changing it rolls nothing: the agent's source line (else an edit
    that adds a line above an agent, a longer prompt or a new agent, would roll every agent below it) and its
    replica bounds (scaling is the Deployment's and the autoscaler's business, not the pod's).
    """
    buckets = set(agent_buckets(agent, plan.key_values))
    own = dataclasses.replace(agent, line=None, replicas=1, max_replicas=1)
    return dataclasses.replace(
        plan, sources=[], targets=[], streams=[], agents=[own], kubernetes=[], gateway_identity=None,
        key_values=[kv for kv in plan.key_values if kv.bucket in buckets],
    )


def gateway_plan(plan: WorkflowPlan) -> WorkflowPlan:
    """The workflow as its gateway sees it: the endpoints it runs (non-NATS sources, HTTP and File targets), no agent.

    NATS endpoints are left out: the gateway does nothing with them, and a change to one must not restart it. So
    are the endpoints' source lines, for the reason an agent's are (line numbers only locate errors, and an
    endpoint the cluster cannot run is refused at compile).
    """
    return dataclasses.replace(
        plan, streams=[], key_values=[], agents=[], kubernetes=[],
        sources=[dataclasses.replace(ep, line=None) for ep in plan.sources if ep.kind != "NATS"],
        targets=[dataclasses.replace(ep, line=None) for ep in plan.targets if ep.kind in GATEWAY_TARGET_KINDS],
    )


def plan_text(plan: WorkflowPlan) -> str:
    """A part as the compact, deterministic JSON a pod's environment carries."""
    return Plan([plan]).to_json(indent=None).rstrip("\n")
