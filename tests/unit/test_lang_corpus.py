"""The upstream example files import cleanly and mean what they say (read in place, never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lang_helpers import corpus_file, corpus_files

from kumeo_iac.lang import parse_file
from kumeo_iac.spec import LLM, DecisionMatrix, HumanReview, LocatedStr, NatsSource, NatsTarget, Resources, Router


@pytest.mark.parametrize("path", corpus_files() or [None], ids=lambda p: p.name if p else "no-corpus")
def test_every_corpus_file_imports_without_errors(path: Path | None) -> None:
    if path is None:
        pytest.skip("upstream corpus not available")
    result = parse_file(path)
    assert result.ok, [d.format() for d in result.diagnostics]
    assert result.diagnostics == []
    assert len(result.program.workflows) == 1
    assert result.comments, "the corpus files are commented; the comments must be collected"


def test_fraud_detection_example() -> None:
    result = parse_file(corpus_file("example_workflow.kumeo"))
    wf = result.program.workflows[0]
    assert wf.name == "FraudDetection"
    assert wf.nats == "nats://nats:4222"
    assert isinstance(wf.sources[0], NatsSource) and wf.sources[0].subject == "transactions.raw"
    assert all(isinstance(t, NatsTarget) for t in wf.targets)
    assert [t.subject for t in wf.targets] == ["alerts.high_risk", "alerts.medium_risk", "transactions.processed"]
    assert [(a.id, a.kind_name) for a in wf.agents] == [
        ("tx_validator", "DataProcessor"),
        ("feature_engineer", "DataProcessor"),
        ("fraud_detector", "MLModel"),
        ("risk_assessor", "MLModel"),
        ("alert_manager", "Router"),
    ]
    assert wf.models["fraud_detector"] == {"file": "isolation_forest.onnx", "type": "onnx", "version": "1.1.0"}
    assert wf.config == {"risk_thresholds": {"high": 0.8, "medium": 0.6}}
    router = wf.agents[4]
    assert isinstance(router, Router)
    assert list(router.rules) == [
        "risk_score >= config.risk_thresholds.high",
        "risk_score >= config.risk_thresholds.medium",
        "default",
    ]
    first_rule = next(iter(router.rules))
    assert isinstance(first_rule, LocatedStr) and first_rule.span is not None
    assert (first_rule.span.line, first_rule.content_start.column) == (95, 10)  # type: ignore[union-attr]
    assert wf.monitor is not None and wf.monitor.dashboard == "monitoring/fraud_detection"
    assert wf.deployment is not None
    assert wf.deployment.resources["ml_models"] == Resources(image="base_images.ml", cpu="1", memory="2Gi")
    assert wf.deployment.scaling is not None and wf.deployment.scaling.max_replicas == 5
    assert wf.deployment.storage == {"models": "/app/models", "data": "/app/data"}


def test_health_monitoring_example() -> None:
    result = parse_file(corpus_file("health_monitoring_system.kumeo"))
    wf = result.program.workflows[0]
    assert wf.name == "HealthMonitoringSystem"
    assert [t.subject for t in wf.targets] == ["alerts.critical", "alerts.warning", "updates"]
    assert set(wf.models) == {"anomaly_detector", "risk_predictor", "hallucination_detector"}
    assert set(wf.data) == {"medical_guidelines", "risk_factors"} and len(wf.schemas) == 5
    assert [(a.id, a.kind_name) for a in wf.agents] == [
        ("data_validator", "DataProcessor"),
        ("anomaly_detector", "MLModel"),
        ("risk_assessor", "MLModel"),
        ("medical_advisor", "LLM"),
        ("safety_validator", "DecisionMatrix"),
        ("hallucination_detector", "MLModel"),
        ("critical_case_review", "HumanReview"),
        ("triage_advisor", "LLM"),
        ("alert_manager", "Router"),
    ]
    advisor = wf.agents[3]
    assert isinstance(advisor, LLM)
    assert advisor.provider == {"ollama": {"model": "medllama2", "temperature": 0.7, "max_tokens": 1000}}
    assert advisor.prompt is not None
    assert advisor.prompt.startswith("\n        Analyze patient data and provide medical analysis.\n")
    assert "        {{context.medical_guidelines}}\n      " in advisor.prompt
    prompt_span = advisor.arg_spans["prompt"]
    assert prompt_span.end_line is not None and prompt_span.end_line > prompt_span.line
    safety = wf.agents[4]
    assert isinstance(safety, DecisionMatrix)
    assert [rule["name"] for rule in safety.rules] == ["valid_json", "valid_urgency", "required_fields"]
    assert safety.on_failure["fallback"] == {"action": "reject", "channel": "alerts.invalid_output"}
    review = wf.agents[6]
    assert isinstance(review, HumanReview)
    assert review.when == "analysis.risk_level in ['high', 'critical']"
    assert review.config["timeout"] == "24h" and review.config["on_timeout"] == "escalate"
    assert review.config["ui"]["title"] == "Medical Case Review Required"
    assert review.config["ui"]["fields"][3] == {
        "field": "recommendation", "label": "Review Notes", "type": "textarea", "required": True,
    }
    assert review.config["notifications"]["email"]["to"] == "${env.REVIEW_TEAM_EMAIL}"
    triage = wf.agents[7]
    assert "{{#if review_notes}}" in (triage.prompt or "")
    deployment = wf.deployment
    assert deployment is not None
    assert deployment.registry["user"] == {"url": "${env.DOCKER_REGISTRY}"}
    assert deployment.resources["llm"] == Resources(image="base_images.llm", cpu="4", memory="16Gi", gpu=True)
    assert deployment.base_images["llm"] == "${deployment.registry.kumeo}/llm-runtime:1.0"


def test_simple_example() -> None:
    wf = parse_file(corpus_file("simple_workflow.kumeo")).program.workflows[0]
    assert wf.name == "SimpleTextAnalysis"
    assert [a.id for a in wf.agents] == ["text_cleaner", "sentiment_analyzer", "alert_router"]
    assert [t.subject for t in wf.targets] == ["analysis.results", "alerts.high_sentiment"]
    assert wf.agents[0].config == {"steps": ["trim", "lowercase", "remove_special_chars"]}
