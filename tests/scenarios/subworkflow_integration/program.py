"""A subworkflow inlined by an integration: prefixed ids, mapped input and output."""

from kumeo_iac.spec import (
                            NATS,
                            DataNormalizer,
                            DataProcessor,
                            IntegrationSpec,
                            MLModel,
                            Program,
                            SubworkflowSpec,
                            WorkflowSpec,
)

PROGRAM = Program(
    workflows=[WorkflowSpec(
        name="Payments",
        sources=[NATS("payments.in")],
        targets=[NATS("payments.scored")],
        agents=[
            DataProcessor(id="ingest", output="payments.clean"),
            DataProcessor(id="publish", input="risk.scores", output="target.payments.scored"),
        ],
    )],
    subworkflows=[SubworkflowSpec(
        name="RiskScoring",
        inputs=["events"],
        outputs=["scores"],
        agents=[
            DataNormalizer({"method": "z_score", "fields": {"amount": [100.0, 25.0]}}, id="normalize",
                           input="input.events", output="normalized"),
            MLModel("risk.onnx", id="model", input="normalized", output="scores"),
        ],
    )],
    integrations=[IntegrationSpec(workflow="Payments", use="RiskScoring",
                                  input_mapping={"events": "payments.clean"},
                                  output_mapping={"scores": "risk.scores"})],
)
