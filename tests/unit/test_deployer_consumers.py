"""The deployer owns every durable consumer (issue 14, item 10): the Workflow component creates the agents' and the
gateway's target consumers, and the pods that bind to them wait for them. Workers and the gateway may not create
one (their NATS identities have no CONSUMER.CREATE), so a durable the component forgot would stop them."""

from __future__ import annotations

import pytest

from kumeo_iac.components import Workflow
from kumeo_iac.runtime.io import target_consumers
from kumeo_iac.spec import DataProcessor, FileTarget, HttpSource, HttpTarget, WorkflowSpec
from kumeo_iac.testing import (
    resources_of_type,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def spec() -> WorkflowSpec:
    clean = DataProcessor(id="clean", input="source.web", output="target.sink")
    hook = DataProcessor(id="hook", input=clean.output, output="target.hook")
    return WorkflowSpec(name="Own", sources=[HttpSource("/in", id="web")],
                        targets=[FileTarget("out.jsonl", id="sink"), HttpTarget("http://receiver/x", id="hook")],
                        agents=[clean, hook])


def test_the_component_creates_the_gateway_target_consumers_and_the_gateway_waits_for_them(pulumi_mocks):
    pytest.importorskip("kumeo_providers")
    created = {}
    resources = pulumi_mocks.run(lambda: created.setdefault(
        "wf", Workflow("own", spec(), jetstream_url="nats://127.0.0.1:4222")))
    plan = created["wf"].plan
    gateway_consumers = target_consumers(plan)
    assert sorted(c.durable for c in gateway_consumers) == ["gateway-target-hook", "gateway-target-sink"]
    by_name = {r.name: r for r in resources if r.type.startswith("pulumi-python:dynamic/jetstream:")}
    for consumer in [*plan.consumers, *gateway_consumers]:
        resource = by_name[f"own-consumer-{consumer.stream}-{consumer.durable}"]
        assert resource.get("config")["durable_name"] == consumer.durable
        assert resource.get("config")["ack_wait"] == consumer.config["ack_wait"]
        assert by_name[f"own-stream-{consumer.stream}"].urn in resource.dependencies
    # the gateway's filter is exactly its target subject, so its identity's MSG.NEXT reads nothing else
    assert {c.config["filter_subject"] for c in gateway_consumers} == {t.subject for t in plan.targets}
    identity = plan.gateway_identity
    for consumer in gateway_consumers:
        assert f"$JS.API.CONSUMER.MSG.NEXT.{consumer.stream}.{consumer.durable}" in identity.publish
    (gateway,) = [d for d in resources_of_type(resources, DEPLOYMENT) if d.get("metadata.name") == "own-gateway"]
    for consumer in gateway_consumers:
        assert by_name[f"own-consumer-{consumer.stream}-{consumer.durable}"].urn in gateway.dependencies
