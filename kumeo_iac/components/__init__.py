"""Pulumi components over a Kumeo Plan; the only part of Kumeo that imports ``pulumi``.

    from kumeo_iac.components import Workflow

    workflow = Workflow.from_file("fraud", "fraud_detection.kumeo")
    pulumi.export("deployments", workflow.deployments)
"""

from kumeo_iac.components._config import (
    SECRET_CONFIG_KEYS,
    StackConfig,
    read_stack_config,
)
from kumeo_iac.components._kubernetes import kubernetes_resource, type_token
from kumeo_iac.components._workflow import TYPE_TOKEN, Workflow, WorkflowArgs

__all__ = [
    "SECRET_CONFIG_KEYS",
    "TYPE_TOKEN",
    "StackConfig",
    "Workflow",
    "WorkflowArgs",
    "kubernetes_resource",
    "read_stack_config",
    "type_token",
]
