"""KEDA on: ScaledObjects on consumer lag; an LLM with an API key from a Kubernetes Secret; GPU resources."""

from kumeo_iac.spec import LLM, NATS, Deployment, Program, Resources, Scaling, WorkflowSpec

PROGRAM = Program(workflows=[WorkflowSpec(
    name="SupportAssistant",
    sources=[NATS("tickets.new", stream="TICKETS")],
    targets=[NATS("tickets.answered")],
    agents=[
        LLM("openai/gpt-4o-mini", id="answer", prompt="Answer the ticket: {{body}}", timeout="90s",
            temperature=0.2),
    ],
    deployment=Deployment(
        base_images={"llm": "registry.example.com/kumeo/llm-runtime:1.0"},
        resources={"llm": Resources(cpu="2", memory="4Gi", gpu=True)},
        scaling=Scaling(min_replicas=1, max_replicas=8, target_lag=50)),
)])
