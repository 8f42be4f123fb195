"""Kumeo: infrastructure as code for distributed agent workflows on NATS JetStream and Kubernetes.

Declare a workflow as Python objects or import it from a `.kumeo` file; both give the same typed Spec, which
:func:`load` reads from either kind of file and validates, compiles to a Plan, deploys through Pulumi
(:class:`Workflow`) and runs locally (`kumeo run`).

The public API is this module's ``__all__``; everything else lives in private modules and may change. Names are
imported on first use, so ``import kumeo_iac`` (and the `kumeo` command) stays fast and never pulls in Pulumi,
nats.py or a model runtime unless you touch something that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    **{
        name: "kumeo_iac.spec"
        for name in (
            "Program",
            "WorkflowSpec",
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
        )
    },
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kumeo_iac' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from kumeo_iac.compile import Plan, PlatformSettings, compile_program
    from kumeo_iac.components import Workflow, WorkflowArgs
    from kumeo_iac.expr import compile_expression
    from kumeo_iac.graph import build_graph
    from kumeo_iac.lang import format_program, parse, parse_file
    from kumeo_iac.spec import (
        HTTP,
        LLM,
        MQTT,
        NATS,
        BayesianNetwork,
        Custom,
        Database,
        DataNormalizer,
        DataProcessor,
        DecisionMatrix,
        Deployment,
        File,
        HumanInLoop,
        HumanReview,
        IntegrationSpec,
        Kafka,
        KnowledgeBase,
        MissingValueHandler,
        MLModel,
        Monitor,
        Program,
        Ref,
        Resources,
        RuleEngine,
        Router,
        Scaling,
        SubworkflowSpec,
        Timer,
        WorkflowSpec,
    )
    from kumeo_iac._load import load
    from kumeo_iac.validate import validate
