"""Kumeo: infrastructure as code for distributed agent workflows on NATS JetStream and Kubernetes.

Declare a workflow as Python objects or import it from a `.kumeo` file; both give the same typed Spec, which
:func:`load` reads from either kind of file and validates, compiles to a Plan, deploys through Pulumi
(:class:`Workflow`) and runs locally (`kumeo run`).

The public API is this module's ``__all__``; everything else lives in private modules and may change. Names are
imported on first use, so ``import kumeo_iac`` (and the `kumeo` command) stays fast and never pulls in Pulumi,
nats.py or a model runtime unless you touch something that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumeo_iac._lazy import lazy_exports
from kumeo_iac.errors import (
    Diagnostic,
    KumeoCompileError,
    KumeoDeployError,
    KumeoError,
    KumeoEvaluationError,
    KumeoExpressionError,
    KumeoRuntimeError,
    KumeoSpecError,
    KumeoSyntaxError,
    KumeoValidationError,
    Severity,
    SourceSpan,
)

__version__ = "0.1.0"

# name → module it lives in; resolved by __getattr__ on first access.
_LAZY: dict[str, str] = {
    # the Spec and its Python DSL
    **dict.fromkeys(
        (
            "Program",
            "WorkflowSpec",
            "Agent",
            "AgentConfig",
            "register_kind",
            "SubworkflowSpec",
            "IntegrationSpec",
            "LLM",
            "MLModel",
            "BayesianNetwork",
            "DecisionMatrix",
            "RuleEngine",
            "Router",
            "DataProcessor",
            "DataNormalizer",
            "MissingValueHandler",
            "HumanReview",
            "HumanInLoop",
            "Custom",
            "NATS",
            "HTTP",
            "Kafka",
            "MQTT",
            "Timer",
            "File",
            "KnowledgeBase",
            "Database",
            "Monitor",
            "Deployment",
            "Resources",
            "Scaling",
            "Ref",
        ),
        "kumeo_iac.spec",
    ),
    # pipeline stages
    "parse": "kumeo_iac.lang",
    "parse_file": "kumeo_iac.lang",
    "format_program": "kumeo_iac.lang",
    "validate": "kumeo_iac.validate",
    "load": "kumeo_iac._load",
    "compile_program": "kumeo_iac.compile",
    "PlatformSettings": "kumeo_iac.compile",
    "Plan": "kumeo_iac.compile",
    "build_graph": "kumeo_iac.graph",
    "compile_expression": "kumeo_iac.expr",
    # Pulumi (imports pulumi when touched)
    "Workflow": "kumeo_iac.components",
    "WorkflowArgs": "kumeo_iac.components",
}

__all__ = [
    "Diagnostic",
    "KumeoCompileError",
    "KumeoDeployError",
    "KumeoError",
    "KumeoEvaluationError",
    "KumeoExpressionError",
    "KumeoRuntimeError",
    "KumeoSpecError",
    "KumeoSyntaxError",
    "KumeoValidationError",
    "Severity",
    "SourceSpan",
    "__version__",
    *sorted(_LAZY),
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only; `X as X` marks an explicit re-export
    from kumeo_iac._load import load as load
    from kumeo_iac.compile import Plan as Plan
    from kumeo_iac.compile import PlatformSettings as PlatformSettings
    from kumeo_iac.compile import compile_program as compile_program
    from kumeo_iac.components import Workflow as Workflow
    from kumeo_iac.components import WorkflowArgs as WorkflowArgs
    from kumeo_iac.expr import compile_expression as compile_expression
    from kumeo_iac.graph import build_graph as build_graph
    from kumeo_iac.lang import format_program as format_program
    from kumeo_iac.lang import parse as parse
    from kumeo_iac.lang import parse_file as parse_file
    from kumeo_iac.spec import HTTP as HTTP
    from kumeo_iac.spec import LLM as LLM
    from kumeo_iac.spec import MQTT as MQTT
    from kumeo_iac.spec import NATS as NATS
    from kumeo_iac.spec import Agent as Agent
    from kumeo_iac.spec import AgentConfig as AgentConfig
    from kumeo_iac.spec import BayesianNetwork as BayesianNetwork
    from kumeo_iac.spec import Custom as Custom
    from kumeo_iac.spec import Database as Database
    from kumeo_iac.spec import DataNormalizer as DataNormalizer
    from kumeo_iac.spec import DataProcessor as DataProcessor
    from kumeo_iac.spec import DecisionMatrix as DecisionMatrix
    from kumeo_iac.spec import Deployment as Deployment
    from kumeo_iac.spec import File as File
    from kumeo_iac.spec import HumanInLoop as HumanInLoop
    from kumeo_iac.spec import HumanReview as HumanReview
    from kumeo_iac.spec import IntegrationSpec as IntegrationSpec
    from kumeo_iac.spec import Kafka as Kafka
    from kumeo_iac.spec import KnowledgeBase as KnowledgeBase
    from kumeo_iac.spec import MissingValueHandler as MissingValueHandler
    from kumeo_iac.spec import MLModel as MLModel
    from kumeo_iac.spec import Monitor as Monitor
    from kumeo_iac.spec import Program as Program
    from kumeo_iac.spec import Ref as Ref
    from kumeo_iac.spec import Resources as Resources
    from kumeo_iac.spec import Router as Router
    from kumeo_iac.spec import RuleEngine as RuleEngine
    from kumeo_iac.spec import Scaling as Scaling
    from kumeo_iac.spec import SubworkflowSpec as SubworkflowSpec
    from kumeo_iac.spec import Timer as Timer
    from kumeo_iac.spec import WorkflowSpec as WorkflowSpec
    from kumeo_iac.spec import register_kind as register_kind
    from kumeo_iac.validate import validate as validate
