"""The fraud-detection workflow written in Python: the same Spec as fraud_detection.kumeo.

Agents are typed objects and references are attributes (``normalize.output``), so a typo is an AttributeError or a
type error in your editor rather than a string that resolves to nothing at deploy time. A test checks that this
program and the `.kumeo` file compare equal.
"""

from __future__ import annotations

from kumeo_iac.spec import (
    LLM,
    NATS,
    BayesianNetworkContext,
    DataProcessor,
    DecisionMatrix,
    Deployment,
    MLModel,
    Monitor,
    Program,
    Resources,
    Router,
    Scaling,
    WorkflowSpec,
)

normalize = DataProcessor(
    id="normalize",
    input="source",
    config={
        "required_fields": ["tx_id", "amount", "merchant_category", "hour", "country_mismatch"],
        "features": [
            "amount",
            "hour",
            "is_high_value: amount > config.high_value",
            "night: hour < 6 || hour >= 23",
        ],
    },
)
anomaly = MLModel(
    "models/isolation_forest.onnx",
    id="anomaly",
    input=normalize.output,
    features=["amount", "hour", "merchant_category", "country_mismatch"],
    timeout="5s",
)
explain = LLM(
    "ollama/llama3",
    id="explain",
    input=anomaly.output,
    when="anomaly_score > 0.6",
    prompt=(
        "\n        You review card payments. Transaction {{tx_id}}: amount {{amount}}, hour {{hour}},\n"
        "        anomaly score {{anomaly_score}}. In one sentence, say why it may or may not be fraud.\n      "
    ),
    max_tokens=48,
    timeout="30s",
    retry=2,
)
policy = DecisionMatrix("policy.dmx", id="policy", input=explain.output, context="risk")
dispatch = Router(
    id="dispatch",
    input=policy.output,
    rules={
        "decision == 'block'": "target.payments.alerts.block",
        "decision == 'review'": "target.payments.alerts.review",
        "default": "target.payments.cleared",
    },
)

WORKFLOW = WorkflowSpec(
    name="FraudDetection",
    source=NATS("payments.transactions"),
    target=[NATS("payments.alerts.block"), NATS("payments.alerts.review"), NATS("payments.cleared")],
    context=BayesianNetworkContext(
        "models/risk.bn",
        id="risk",
        options={"evidence": {"night": "night", "foreign": "country_mismatch", "high_value": "is_high_value"}},
    ),
    config={"thresholds": {"block": 0.8, "review": 0.5}, "high_value": 1000},
    agents=[normalize, anomaly, explain, policy, dispatch],
    monitor=Monitor(
        metrics=["events_in", "events_out", "processing_seconds", "dead_letters"],
        dashboard="kumeo/fraud-detection",
    ),
    deployment=Deployment(
        resources={
            "default": Resources(cpu="250m", memory="256Mi"),
            "ml_models": Resources(cpu="1", memory="1Gi"),
            "llm": Resources(cpu="500m", memory="512Mi"),
        },
        scaling=Scaling(min_replicas=1, max_replicas=4, target_lag=100),
    ),
)

PROGRAM = Program(workflows=[WORKFLOW])
