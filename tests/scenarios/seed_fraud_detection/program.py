"""The seed's fraud detection in the Python DSL (``agent.output`` references); see ../seed_fraud_detection_kumeo."""

from kumeo_iac.spec import LLM, NATS, BayesianNetwork, MLModel, Program, WorkflowSpec

llm = LLM("ollama/llama3", prompt="Analyze transaction: {{data}}")
forest = MLModel("isolation_forest.onnx", input=llm.output)
risk = BayesianNetwork("risk_model.bn", input=forest.output)

PROGRAM = Program(workflows=[WorkflowSpec(
    name="FraudDetection",
    sources=[NATS("transactions")],
    targets=[NATS("alerts")],
    contexts=[BayesianNetwork("risk_model.bn")],
    agents=[llm, forest, risk],
)])
