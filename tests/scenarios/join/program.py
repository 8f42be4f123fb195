"""An agent joining two inputs by event id (KV bucket for partial joins), and a human review step."""

from kumeo_iac.spec import NATS, DataProcessor, HumanReview, MLModel, Program, WorkflowSpec

PROGRAM = Program(workflows=[WorkflowSpec(
    name="ClaimsReview",
    sources=[NATS("claims.>")],
    targets=[NATS("claims.decided")],
    models={"scorer": {"file": "models/claims.onnx", "type": "onnx"}},
    agents=[
        DataProcessor(id="validate", output="claims.valid"),
        MLModel(id="score", input="claims.valid", model="models.scorer", features=["amount", "age"]),
        DataProcessor(id="merge", input={"claim": "claims.valid", "score": "score.output.probability"},
                      config={"join_timeout": "10m"}),
        HumanReview("web", id="review", input="merge.output", when="score > 0.9",
                    config={"timeout": "24h"}),
    ],
)])
