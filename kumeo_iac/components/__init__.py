"""Pulumi components over a Kumeo Plan; the only part of Kumeo that imports ``pulumi``.

    from kumeo_iac.components import Workflow

    workflow = Workflow.from_file("fraud", "fraud_detection.kumeo")
    pulumi.export("deployments", workflow.deployments)
"""

import importlib
from typing import TYPE_CHECKING, Any

from kumeo_iac.components._config import (
    SECRET_CONFIG_KEYS,
    StackConfig,
    check_config_pairs,
    pulumi_project_comment,
    pulumi_project_config,
    read_stack_config,
)
from kumeo_iac.components._kubernetes import kubernetes_resource, type_token
from kumeo_iac.components._multilang import serve
from kumeo_iac.components._workflow import TYPE_TOKEN, Workflow, WorkflowArgs

if TYPE_CHECKING:
    from kumeo_iac.components._automation import PULUMI_MISSING, pulumi_cli, select_stack

__all__ = [
    "PULUMI_MISSING",
    "SECRET_CONFIG_KEYS",
    "TYPE_TOKEN",
    "StackConfig",
    "Workflow",
    "WorkflowArgs",
    "check_config_pairs",
    "kubernetes_resource",
    "pulumi_cli",
    "pulumi_project_comment",
    "pulumi_project_config",
    "read_stack_config",
    "select_stack",
    "serve",
    "type_token",
]

# The Automation API helpers `kumeo preview|up|destroy` use are read from their module on every access (never copied
# here), so the CLI always calls what that module holds now: tests put a fake `pulumi_cli` there.
_AUTOMATION = frozenset({"PULUMI_MISSING", "pulumi_cli", "select_stack"})


def __getattr__(name: str) -> Any:
    if name in _AUTOMATION:
        return getattr(importlib.import_module("kumeo_iac.components._automation"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
