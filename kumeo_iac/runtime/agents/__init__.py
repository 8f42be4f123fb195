"""The agent kinds the runtime can run, one module per kind, loaded only when a worker runs that kind.

    agent = create_agent(workflow_plan.agent("policy"), workflow_plan, base_dir)
    await agent.start()
    emits = await agent.process(event)   # list[Emit]
"""

from kumeo_iac.runtime.agents._common import (
    AGENT_CONFIG_KEY,
    WORKFLOW_CONFIG_KEY,
    compile_condition,
    evaluate,
    file_reference,
)
from kumeo_iac.runtime.agents._common import scope as expression_scope
from kumeo_iac.runtime.agents._registry import UnavailableAgent, agent_class, create_agent, handler_class

__all__ = [
    "AGENT_CONFIG_KEY",
    "WORKFLOW_CONFIG_KEY",
    "UnavailableAgent",
    "agent_class",
    "compile_condition",
    "create_agent",
    "evaluate",
    "expression_scope",
    "file_reference",
    "handler_class",
]
