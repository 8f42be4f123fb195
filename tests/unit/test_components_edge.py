"""The Workflow component on an edge workflow (issue 17, item 4), under Pulumi mocks: the central NATS gets only the
hub streams that source the site's results; the site's own streams, consumers and buckets are the edge process's, on
its leaf server; the edge pod waits for the hub streams; the API keys reach the edge container, never the leaf."""

from __future__ import annotations

import pulumi

from kumeo_iac.compile import PlatformSettings, compile_program
from kumeo_iac.components import Workflow
from kumeo_iac.spec import LLM, NATS, DataProcessor, Deployment, Program, WorkflowSpec
from kumeo_iac.testing import await_output, output_resources, resources_of_type

STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
LEAF = {"hub": "nats-leaf://hub.example.com:7422", "credentials_secret": "site-leaf", "domain": "plant-7"}


def site() -> WorkflowSpec:
    return WorkflowSpec(
        name="SiteSensors", sources=[NATS("sensors.raw")], targets=[NATS("sensors.clean")],
        agents=[DataProcessor(id="clean", input="source", config={"required_fields": ["id"]}),
                LLM("openai/gpt-4o-mini", id="explain", input="clean.output", prompt="Why {{id}}?")],
        deployment=Deployment(profile="edge", leaf=LEAF))


def register(pulumi_mocks, **kwargs):
    pulumi.runtime.set_all_config({})
    created = {}
    resources = pulumi_mocks.run(lambda: created.setdefault(
        "wf", Workflow("site", jetstream_url="nats://hub.example.com:4222", **kwargs)))
    return created["wf"], resources


def test_only_the_hub_streams_are_created_on_the_central_nats_and_the_edge_pod_waits_for_them(pulumi_mocks):
    wf, resources = register(pulumi_mocks, spec=site())
    assert wf.plan.edge is not None
    hub_streams = {s.name for s in wf.plan.edge.hub_streams}
    assert hub_streams == {"KUMEO_SITE_SENSORS_EDGE_PLANT_7"}
    assert set(wf.jetstream) == {f"stream/{name}" for name in hub_streams}  # no site stream, consumer or bucket
    assert not [r for r in resources if r.type.endswith(":Consumer") or r.type.endswith(":KeyValue")]
    assert await_output(wf.stream_names) == sorted(hub_streams)
    assert output_resources(wf.stream_names) == set(wf.jetstream.values())

    (pod,) = resources_of_type(resources, STATEFUL_SET)
    stream_urns = {await_output(r.urn) for r in wf.jetstream.values()}
    assert stream_urns <= set(pod.dependencies)


def test_a_plan_compiled_without_the_keys_gets_them_on_the_edge_container_only(pulumi_mocks):
    plan = compile_program(Program(workflows=[site()]), settings=PlatformSettings(for_cluster=True)).workflows[0]
    _, resources = register(pulumi_mocks, plan=plan, secrets={"OPENAI_API_KEY": "sk-test"})
    (pod,) = resources_of_type(resources, STATEFUL_SET)
    containers = {c["name"]: c for c in pod.get("spec.template.spec.containers")}
    assert set(containers) == {"nats", "edge"}
    edge_keys = [e for e in containers["edge"]["env"] if e["name"] == "OPENAI_API_KEY"]
    assert edge_keys == [{"name": "OPENAI_API_KEY",
                          "valueFrom": {"secretKeyRef": {"name": "site-sensors-secrets", "key": "OPENAI_API_KEY"}}}]
    assert not [e for e in containers["nats"].get("env") or [] if e["name"] == "OPENAI_API_KEY"]
