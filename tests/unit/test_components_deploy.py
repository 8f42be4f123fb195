"""The deploy path of the Workflow component under Pulumi mocks: what a change rolls, what waits for what, how lean
it stays, and that `kumeo render` writes the same objects.

No Pulumi engine runs here: ``kumeo_iac.testing.PulumiMocks`` stands in for it and records every registration with
its type, name, inputs and dependencies. ``tests/engine`` runs the same behaviours under the real engine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pulumi
import pytest

from kumeo_iac.components import Workflow
from kumeo_iac.spec import LLM, NATS, DataProcessor, Deployment, Ref, Scaling, WorkflowSpec
from kumeo_iac.testing import (
    find_resource,
    resources_of_type,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud_detection"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def chain(n: int, *, prompt: str = "Why is {{id}} odd?", max_replicas: int = 1) -> WorkflowSpec:
    """A chain of ``n`` DataProcessors and one LLM at the end."""
    agents: list = []
    previous = Ref(path=("source",))
    for i in range(n):
        agent = DataProcessor(id=f"step{i}", input=previous, config={"required_fields": ["id"]})
        agents.append(agent)
        previous = agent.output
    agents.append(LLM("openai/gpt-4o-mini", id="explain", input=previous, prompt=prompt))
    return WorkflowSpec(name="Chain", source=NATS("chain.in"), target=NATS("chain.out"), agents=agents,
                        deployment=Deployment(scaling=Scaling(min_replicas=1, max_replicas=max_replicas)))


def deployments(resources) -> dict[str, str]:
    """Deployment name → its pod template (inputs), as canonical JSON."""
    return {r.get("metadata.name"): json.dumps(r.get("spec.template"), sort_keys=True)
            for r in resources_of_type(resources, DEPLOYMENT)}


def register(pulumi_mocks, make, **config):
    pulumi.runtime.set_all_config({f"kumeo:{k}": v for k, v in config.items()})
    created = {}
    resources = pulumi_mocks.run(lambda: created.setdefault("wf", make()))
    return created["wf"], resources


# -- per-agent rollout --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, rolled", [
    (lambda: chain(3, prompt="Explain {{id}} briefly."), {"chain-explain"}),
    (lambda: chain(3), set()),
])
def test_changing_one_agent_changes_only_its_pod_template(pulumi_mocks, change, rolled):
    _, before = register(pulumi_mocks, lambda: Workflow("chain", chain(3), manage_jetstream=False))
    _, after = register(pulumi_mocks, lambda: Workflow("chain", change(), manage_jetstream=False))
    old, new = deployments(before), deployments(after)
    assert old.keys() == new.keys()
    assert {name for name in old if old[name] != new[name]} == rolled


def test_changing_the_nats_url_rolls_every_agent_and_nothing_else_changes_identity(pulumi_mocks):
    _, before = register(pulumi_mocks, lambda: Workflow("chain", chain(2), manage_jetstream=False),
                         natsUrl="nats://nats:4222")
    _, after = register(pulumi_mocks, lambda: Workflow("chain", chain(2), manage_jetstream=False),
                        natsUrl="nats://nats.infra:4222")
    old, new = deployments(before), deployments(after)
    assert {n for n in old if old[n] != new[n]} == set(old)
    assert sorted(r.name for r in before) == sorted(r.name for r in after)


def test_a_model_file_change_rolls_exactly_the_agents_that_read_it(pulumi_mocks, tmp_path):
    work = tmp_path / "fraud"
    shutil.copytree(EXAMPLE, work)
    source = work / "fraud_detection.kumeo"
    _, before = register(pulumi_mocks, lambda: Workflow.from_file("fraud", source, manage_jetstream=False))
    model = next(p for p in work.rglob("*.onnx"))
    model.write_bytes(model.read_bytes() + b"\0")
    _, after = register(pulumi_mocks, lambda: Workflow.from_file("fraud", source, manage_jetstream=False))
    old, new = deployments(before), deployments(after)
    readers = {name for name, template in old.items() if model.name in template}
    assert readers, "the example has an agent reading an ONNX model"
    assert {n for n in old if old[n] != new[n]} == readers
    files = find_resource(after, "kubernetes:core/v1:ConfigMap", "fraud-configmap-fraud-detection-files")
    assert files.get("binaryData")


# -- order and outputs --------------------------------------------------------------------------------------------


def test_each_deployment_waits_for_its_consumer_buckets_secrets_and_config_maps(pulumi_mocks):
    pulumi.runtime.set_all_config({"kumeo:openaiApiKey": "sk-test"}, secret_keys=["kumeo:openaiApiKey"])
    created = {}
    resources = pulumi_mocks.run(lambda: created.setdefault(
        "wf", Workflow("chain", chain(2), jetstream_url="nats://127.0.0.1:4222")))
    wf = created["wf"]
    from kumeo_iac.testing import await_output

    urns = {key: await_output(r.urn) for key, r in wf.jetstream.items()}
    secret = find_resource(resources, "kubernetes:core/v1:Secret", "chain-secret-chain-secrets")
    account = find_resource(resources, "kubernetes:core/v1:ServiceAccount", "chain-serviceaccount-chain-agents")
    for agent in wf.plan.agents:
        (deployment,) = [r for r in resources_of_type(resources, DEPLOYMENT)
                         if r.get("spec.template.spec.containers")[0]["args"][-1] == agent.id]
        for c in agent.consumers:
            assert urns[f"consumer/{c.stream}/{c.durable}"] in deployment.dependencies, agent.id
        assert secret.urn in deployment.dependencies and account.urn in deployment.dependencies


def test_outputs_carry_the_dependencies_of_what_they_name(pulumi_mocks):
    from kumeo_iac.testing import await_output, output_resources

    created = {}
    pulumi_mocks.run(lambda: created.setdefault(
        "wf", Workflow("chain", chain(1), jetstream_url="nats://127.0.0.1:4222")))
    wf = created["wf"]
    streams = {r for key, r in wf.jetstream.items() if key.startswith("stream/")}
    consumers = {r for key, r in wf.jetstream.items() if key.startswith("consumer/")}
    deployments = {r for key, r in wf.kubernetes.items() if key.startswith("Deployment/")}
    assert output_resources(wf.stream_names) >= streams
    assert output_resources(wf.consumer_names) >= consumers
    assert output_resources(wf.deployments) >= deployments
    assert output_resources(wf.subjects) >= streams | consumers
    assert await_output(wf.consumer_names) == [c.durable for c in wf.plan.consumers]
    assert await_output(wf.stream_names) == [s.name for s in wf.plan.streams]


# -- lean by default ----------------------------------------------------------------------------------------------


def test_at_most_three_resources_per_agent_and_shared_objects_do_not_grow(pulumi_mocks):
    counts = {}
    for n in (10, 60):
        _, resources = register(pulumi_mocks, lambda n=n: Workflow("chain", chain(n), jetstream_url="nats://x:4222"))
        counts[n] = len(resources)
    per_agent = (counts[60] - counts[10]) / 50
    assert per_agent <= 3
    # A single replica needs no autoscaler and no disruption budget: its Deployment and its consumer only.
    assert per_agent == 2


def test_scaling_agents_get_an_autoscaler_and_a_budget_only_when_they_scale(pulumi_mocks):
    _, resources = register(pulumi_mocks, lambda: Workflow("chain", chain(2, max_replicas=4), manage_jetstream=False))
    assert len(resources_of_type(resources, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler")) == 3
    assert not resources_of_type(resources, "kubernetes:policy/v1:PodDisruptionBudget")  # min replicas is 1


def test_the_plan_stays_out_of_the_stack_state(pulumi_mocks):
    from kumeo_iac.testing import await_output

    wf, resources = register(pulumi_mocks, lambda: Workflow("chain", chain(30), manage_jetstream=False))
    (_component,) = resources_of_type(resources, "kumeo:index:Workflow")
    assert not hasattr(wf, "plan_json")
    assert await_output(wf.plan_digest).startswith("sha256:")
    assert all(len(json.dumps(r.inputs, default=str)) < 1024 * 1024 for r in resources)


# -- one plan, two outputs ----------------------------------------------------------------------------------------


def test_render_writes_every_object_the_component_registers_with_the_same_names(pulumi_mocks, tmp_path, capsys):
    import argparse

    from kumeo_iac._cli.render import run_render

    work = tmp_path / "fraud"
    shutil.copytree(EXAMPLE, work)
    source = work / "fraud_detection.kumeo"
    # The same settings on both sides (stack config would add the API-key Secret and its references, which
    # render cannot know of without the same settings).
    created = {}
    resources = pulumi_mocks.run(lambda: created.setdefault(
        "wf", Workflow.from_file("fraud", source, manage_jetstream=False)))
    registered = {(r.type.rpartition(":")[2], r.get("metadata.name")) for r in resources
                  if r.type.startswith("kubernetes:")}

    assert run_render(argparse.Namespace(path=str(source), out=str(tmp_path / "out"))) == 0
    import yaml

    rendered = {(d["kind"], d["metadata"]["name"])
                for f in sorted((tmp_path / "out" / "fraud-detection" / "kubernetes").glob("*.yaml"))
                for d in [yaml.safe_load(f.read_text())]}
    secrets = {k for k in registered if k[0] == "Secret"}
    assert rendered == registered - secrets
    summary = capsys.readouterr().out
    for _, name in secrets:
        assert f"needs Secret {name}" in summary, summary


def test_render_writes_every_consumer_the_component_creates_the_gateways_included(pulumi_mocks, tmp_path, capsys):
    """Agents and the gateway only bind to their durables, so render must show every consumer the deployer makes."""
    import argparse

    from kumeo_iac._cli.render import run_render

    source = tmp_path / "hooks.kumeo"
    source.write_text('workflow Hooks {\n  source: NATS("orders.in")\n'
                      '  target: [HTTP("https://hooks.example.com/x", id: "hook"), File("out.jsonl", id: "log")]\n'
                      '  agents: [ DataProcessor(id: "clean", input: source) ]\n}\n')
    _, resources = register(pulumi_mocks, lambda: Workflow.from_file("hooks", source),
                            jetstreamUrl="nats://127.0.0.1:4222")
    created = {r.name for r in resources if r.type.endswith("jetstream:Consumer")}

    assert run_render(argparse.Namespace(path=str(source), out=str(tmp_path / "out"))) == 0
    consumers = tmp_path / "out" / "hooks" / "jetstream" / "consumers"
    rendered = {f"hooks-consumer-{f.parent.name}-{f.stem}" for f in consumers.glob("*/*.json")}
    assert rendered == created and len(created) == 3  # the agent's, and one per HTTP/File target
    assert "3 consumers" in capsys.readouterr().out


# -- streams keep their data ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("retain", [False, True])
def test_retain_streams_keeps_streams_and_buckets_when_they_leave_the_stack(pulumi_mocks, retain):
    spec = chain(1)
    spec = spec.model_copy(update={"agents": [*spec.agents[:-1], LLM("openai/gpt-4o-mini", id="explain",
                                                                     input=spec.agents[0].output, prompt="x")]})
    _, resources = register(pulumi_mocks, lambda: Workflow("chain", spec), jetstreamUrl="nats://127.0.0.1:4222",
                            retainStreams="true" if retain else "false")
    jetstream = [r for r in resources if r.type.startswith("pulumi-python:dynamic/jetstream:")]
    kept = {r.type.rpartition(":")[2] for r in jetstream if r.retain_on_delete}
    assert kept == ({"Stream", "KeyValue"} if retain else set())
    assert any(r.type.endswith(":KeyValue") for r in jetstream)  # the LLM cache bucket


def test_adoption_and_replacement_are_refused_unless_asked_for(pulumi_mocks):
    _, resources = register(pulumi_mocks, lambda: Workflow("chain", chain(1)), jetstreamUrl="nats://127.0.0.1:4222")
    streams = [r for r in resources if r.type == "pulumi-python:dynamic/jetstream:Stream"]
    # Left off, both are left out of the inputs: the provider reads a missing one as false.
    assert streams and all({"adopt", "allow_replace"}.isdisjoint(r.inputs) for r in streams)
    _, resources = register(pulumi_mocks, lambda: Workflow("chain", chain(1)), jetstreamUrl="nats://127.0.0.1:4222",
                            adoptStreams="true", allowStreamReplacement="true")
    streams = [r for r in resources if r.type == "pulumi-python:dynamic/jetstream:Stream"]
    assert all(r.inputs.get("adopt") is True and r.inputs.get("allow_replace") is True for r in streams)


def test_a_2000_agent_workflow_registers_with_every_object_under_one_mebibyte(pulumi_mocks):
    import time

    started = time.perf_counter()
    _, resources = register(pulumi_mocks, lambda: Workflow("chain", chain(2000), manage_jetstream=False))
    sizes = {r.name: len(json.dumps(r.inputs, default=str)) for r in resources}
    assert len(resources_of_type(resources, DEPLOYMENT)) == 2001
    biggest = max(sizes, key=sizes.__getitem__)
    assert sizes[biggest] < 1024 * 1024, f"{biggest} is {sizes[biggest]} bytes"
    # Shared objects do not grow with the agents: the largest object is a single agent's, far under the limit.
    assert sizes[biggest] < 64 * 1024, f"{biggest} is {sizes[biggest]} bytes"
    print(f"2000 agents registered in {time.perf_counter() - started:.1f} s")


def test_a_typo_in_the_file_fails_the_program_instead_of_dropping_the_agent(tmp_path):
    from kumeo_iac.errors import KumeoValidationError

    source = tmp_path / "typo.kumeo"
    source.write_text('workflow Typo {\n  source: NATS("a")\n  target: NATS("b")\n  agents: [\n'
                      '    LLMM(id: "explain", prompt: "p")\n  ]\n}\n')
    with pytest.raises(KumeoValidationError) as raised:
        Workflow.from_file("typo", source)
    assert f"{source}:5:5: error: unknown agent kind 'LLMM'" in str(raised.value)


def test_from_file_reads_a_python_workflow_as_every_command_does(pulumi_mocks, tmp_path):
    from kumeo_iac.errors import KumeoValidationError

    example = Path(__file__).resolve().parents[2] / "examples" / "fraud_detection"

    def objects(resources):
        return sorted((r.type, r.name) for r in resources)

    _, from_kumeo = register(pulumi_mocks, lambda: Workflow.from_file(
        "fraud", example / "fraud_detection.kumeo", manage_jetstream=False))
    _, from_python = register(pulumi_mocks, lambda: Workflow.from_file(
        "fraud", example / "fraud_detection.py", manage_jetstream=False))
    assert objects(from_python) == objects(from_kumeo) and len(from_python) > 10

    bad = tmp_path / "bad.py"
    bad.write_text("from kumeo_iac.spec import NATS, DataProcessor, WorkflowSpec\n\n"
                   "clean = DataProcessor(id='clean', input='source')\n"
                   "late = DataProcessor(id='late', input='nowhere.output')\n"
                   "wf = WorkflowSpec(name='Bad', source=NATS('in'), target=NATS('out'), agents=[clean, late])\n")
    with pytest.raises(KumeoValidationError) as raised:
        Workflow.from_file("bad", bad)
    assert f"{bad}:4:" in str(raised.value)


def test_the_component_refuses_endpoints_no_pod_runs(pulumi_mocks, tmp_path):
    from kumeo_iac.errors import KumeoCompileError

    source = tmp_path / "kafka.kumeo"
    source.write_text('workflow Bridge {\n  source: Kafka("payments")\n  target: NATS("out")\n'
                      '  agents: [ DataProcessor(id: "p", input: source) ]\n}\n')
    with pytest.raises(KumeoCompileError, match="Kafka sources cannot be deployed"):
        Workflow.from_file("bridge", source, manage_jetstream=False)
