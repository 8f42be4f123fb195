"""A Router sending to NATS and HTTP targets and to an agent; a Timer source; retries and a fallback value."""

from kumeo_iac.spec import (
                            NATS,
                            DataProcessor,
                            Deployment,
                            HttpTarget,
                            Program,
                            Resources,
                            Router,
                            RuleEngine,
                            Scaling,
                            Timer,
                            WorkflowSpec,
)

PROGRAM = Program(workflows=[WorkflowSpec(
    name="OrderTriage",
    nats="nats://nats.messaging.svc:4222",
    sources=[NATS("orders.new", id="orders"), Timer("1m", id="tick")],
    targets=[NATS("orders.accepted"), HttpTarget("https://hooks.example.com:8443/review", id="review"),
             NATS("orders.rejected")],
    config={"limits": {"max_amount": 5000}},
    agents=[
        DataProcessor(id="clean", input="source.orders", output="orders.clean", timeout="5s",
                      retry={"attempts": 2, "backoff": "500ms"}),
        Router(id="triage", input="orders.clean", rules={
            "amount > config.limits.max_amount": "target.review",
            "flagged == true": "enrich",
            "default": "target.orders.accepted",
        }),
        RuleEngine("rules/enrich.json", id="enrich", timeout="2m", retry=0, fallback="rejected",
                   output="target.orders.rejected"),
    ],
    deployment=Deployment(
        namespace="orders",
        resources={"default": Resources(cpu="200m", memory="256Mi"),
                   "enrich": Resources(memory="1Gi", image="registry.example.com/enrich:2")},
        scaling=Scaling(min_replicas=1, max_replicas=4, target_cpu=60)),
)])
