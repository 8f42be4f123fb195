"""The public API is frozen: renaming or removing a name here is a conscious, reviewed act."""

from __future__ import annotations

import subprocess
import sys

import kumeo_iac

EXPECTED = {
    "Agent", "AgentConfig", "BayesianNetwork", "Custom", "DataNormalizer", "DataProcessor", "Database",
    "DecisionMatrix", "Deployment",
    "Diagnostic", "File", "HTTP", "HumanInLoop", "HumanReview", "IntegrationSpec", "Kafka", "KnowledgeBase",
    "KumeoCompileError", "KumeoDeployError", "KumeoError", "KumeoEvaluationError", "KumeoExpressionError",
    "KumeoRuntimeError", "KumeoSpecError", "KumeoSyntaxError", "KumeoValidationError", "LLM", "MLModel", "MQTT",
    "MissingValueHandler", "Monitor", "NATS", "Plan", "PlatformSettings", "Program", "Ref", "Resources",
    "RuleEngine", "Router", "Scaling", "Severity", "SourceSpan", "SubworkflowSpec", "Timer", "Workflow",
    "WorkflowArgs", "WorkflowSpec", "__version__", "build_graph", "compile_expression", "compile_program",
    "format_program", "load", "parse", "parse_file", "register_kind",
    "validate",
}


def test_public_api_is_exactly_the_frozen_set() -> None:
    assert set(kumeo_iac.__all__) == EXPECTED


def test_every_public_name_resolves() -> None:
    for name in kumeo_iac.__all__:
        assert getattr(kumeo_iac, name) is not None, name


def test_every_error_is_a_kumeo_error() -> None:
    for name in kumeo_iac.__all__:
        value = getattr(kumeo_iac, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, kumeo_iac.KumeoError), name


def test_importing_the_package_is_light() -> None:
    """`import kumeo_iac` must not load pydantic-heavy stages, Pulumi, nats.py or model runtimes."""
    code = (
        "import sys, kumeo_iac; heavy = [m for m in ('pulumi', 'nats', 'onnxruntime', 'pgmpy', 'pydantic', 'lark')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        kumeo_iac.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_a_strict_type_checker_sees_every_public_name(tmp_path) -> None:
    """`from kumeo_iac import LLM` type-checks under `mypy --strict` (no implicit re-export): each lazily imported
    name is re-exported explicitly for type checkers."""
    from mypy import api

    program = tmp_path / "uses_kumeo.py"
    names = sorted(n for n in kumeo_iac.__all__ if n != "__version__")
    program.write_text(f"from kumeo_iac import {', '.join(names)}\n")
    out, err, status = api.run(["--strict", "--no-incremental", "--follow-imports=silent", "--cache-dir",
                                str(tmp_path / "c"), "--no-error-summary", str(program)])
    assert [line for line in out.splitlines() if "uses_kumeo.py" in line] == [], out + err
    assert status == 0, out + err
