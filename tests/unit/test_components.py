"""The Workflow component under Pulumi mocks.

No Pulumi engine runs here: ``kumeo_iac.testing.PulumiMocks`` stands in for it (``pulumi.runtime.set_mocks``) and
records every registration with its type, inputs, parent, provider and dependencies. Mocked inputs pass through
protobuf, so integers come back as floats.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pulumi
import pulumi_kubernetes as k8s
import pytest

from kumeo_iac.components import Workflow, WorkflowArgs, type_token
from kumeo_iac.errors import KumeoDeployError, KumeoSpecError, KumeoValidationError
from kumeo_iac.spec import LLM, NATS, DataProcessor, Deployment, Ref, Scaling, WorkflowSpec
from kumeo_iac.testing import (
    await_output,
    find_resource,
    is_secret,
    output_is_secret,
    resources_of_type,
    unwrap_secret,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"


def demo_spec(name: str = "Demo") -> WorkflowSpec:
    normalize = DataProcessor(id="normalize", input=Ref(path=("source",)), config={"required_fields": ["id"]})
    explain = LLM("openai/gpt-4o-mini", id="explain", input=normalize.output, prompt="Why is {{id}} odd?")
    return WorkflowSpec(
        name=name,
        source=NATS("demo.in"),
        target=NATS("demo.out"),
        agents=[normalize, explain],
        deployment=Deployment(scaling=Scaling(min_replicas=1, max_replicas=3)),
    )


def workflow_of(resources):
    (workflow,) = resources_of_type(resources, "kumeo:index:Workflow")
    return workflow


def containers(deployment):
    return deployment.get("spec.template.spec.containers")


def env_of(deployment) -> dict:
    return {e["name"]: e for e in containers(deployment)[0]["env"]}


# -- types, names, parents -----------------------------------------------------------------------------------


def test_every_plan_object_becomes_its_typed_resource_parented_by_the_workflow(pulumi_mocks):
    """Mocks stand in for the engine: each Plan object is registered as its typed pulumi_kubernetes resource."""
    created = {}

    def program():
        created["wf"] = Workflow("demo", demo_spec(), manage_jetstream=False)

    resources = pulumi_mocks.run(program)
    plan = created["wf"].plan
    workflow = workflow_of(resources)
    assert workflow.urn.endswith("kumeo:index:Workflow::demo")
    children = [r for r in resources if r is not workflow]
    assert children and all(r.parent == workflow.urn for r in children)
    assert sorted(r.type for r in children) == sorted(type_token(o) for o in plan.kubernetes)
    assert {r.type for r in children} >= {
        DEPLOYMENT, CONFIG_MAP, "kubernetes:core/v1:ServiceAccount", "kubernetes:core/v1:Service",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    }
    find_resource(resources, DEPLOYMENT, "demo-deployment-demo-normalize")
    assert [d.get("metadata.name") for d in resources_of_type(resources, DEPLOYMENT)] != []


def test_deployment_inputs_carry_image_security_context_and_nats_url(pulumi_mocks):
    """Mocks stand in for the engine; the Deployment's inputs are what the Kubernetes provider would receive."""
    resources = pulumi_mocks.run(lambda: Workflow("demo", demo_spec(), nats_url="nats://bus:4222",
                                                  image_registry="registry.example.com/team",
                                                  manage_jetstream=False))
    deployment = find_resource(resources, DEPLOYMENT, "demo-deployment-demo-normalize")
    (container,) = containers(deployment)
    assert container["image"].startswith("registry.example.com/team/")
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert env_of(deployment)["NATS_URL"]["value"] == "nats://bus:4222"
    assert deployment.get("spec.replicas") == 1.0  # ints come back as floats from the mock monitor
    assert deployment.get("metadata.namespace") == "demo"


def test_dsl_keyword_arguments_build_the_same_workflow(pulumi_mocks):
    """Mocks stand in for the engine: DSL kwargs (source=, agents=…) give the same resources as a WorkflowSpec."""
    spec = demo_spec()
    by_spec = pulumi_mocks.run(lambda: Workflow("Demo", spec, manage_jetstream=False))
    by_dsl = pulumi_mocks.run(lambda: Workflow(
        "Demo", source=spec.sources, target=spec.targets, agents=demo_spec().agents, deployment=spec.deployment,
        manage_jetstream=False,
    ))
    assert sorted((r.type, r.name) for r in by_spec) == sorted((r.type, r.name) for r in by_dsl)


# -- options -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["providers", "provider"])
def test_a_custom_kubernetes_provider_reaches_every_deployment(pulumi_mocks, how):
    """Mocks stand in for the engine; the provider reference each child registers with is recorded."""

    def program():
        provider = k8s.Provider("staging-cluster", namespace="ignored")
        opts = pulumi.ResourceOptions(**{how: [provider] if how == "providers" else provider})
        Workflow("demo", demo_spec(), manage_jetstream=False, opts=opts)

    resources = pulumi_mocks.run(program)
    provider = find_resource(resources, "pulumi:providers:kubernetes", "staging-cluster")
    kube = [r for r in resources if r.type.startswith("kubernetes:")]
    assert len(resources_of_type(kube, DEPLOYMENT)) == 2
    assert all(r.provider_urn == provider.urn for r in kube), {r.name: r.provider for r in kube}


def test_protect_and_depends_on_given_to_the_workflow_reach_its_children(pulumi_mocks):
    """Mocks stand in for the engine; protect and dependencies are read from the registration requests."""

    def program():
        bus = k8s.core.v1.Namespace("bus", metadata={"name": "bus"})
        Workflow("demo", demo_spec(), manage_jetstream=False,
                 opts=pulumi.ResourceOptions(protect=True, depends_on=[bus]))

    resources = pulumi_mocks.run(program)
    bus = find_resource(resources, "kubernetes:core/v1:Namespace", "bus")
    children = [r for r in resources if r.parent == workflow_of(resources).urn]
    assert all(r.protect for r in children)
    assert all(bus.urn in r.dependencies for r in children)


# -- namespace, NATS URL and stack config --------------------------------------------------------------------


def test_stack_config_sets_namespace_nats_url_registry_and_keda(pulumi_mocks):
    """Mocks stand in for the engine; stack config is set the way `pulumi config set kumeo:…` would."""
    pulumi.runtime.set_all_config({
        "kumeo:namespace": "prod", "kumeo:natsUrl": "nats://nats.prod:4222",
        "kumeo:imageRegistry": "cr.example.org/kumeo", "kumeo:keda": "true",
    })
    resources = pulumi_mocks.run(lambda: Workflow("demo", demo_spec(), manage_jetstream=False))
    kube = [r for r in resources if r.type.startswith("kubernetes:")]
    assert {r.get("metadata.namespace") for r in kube} == {"prod"}
    for deployment in resources_of_type(resources, DEPLOYMENT):
        assert env_of(deployment)["NATS_URL"]["value"] == "nats://nats.prod:4222"
        assert containers(deployment)[0]["image"].startswith("cr.example.org/kumeo/")
    assert len(resources_of_type(resources, SCALED_OBJECT)) == 2
    assert not resources_of_type(resources, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler")


def test_explicit_arguments_win_over_stack_config(pulumi_mocks):
    """Mocks stand in for the engine; WorkflowArgs beat `kumeo:` config."""
    pulumi.runtime.set_all_config({"kumeo:namespace": "from-config"})
    resources = pulumi_mocks.run(lambda: Workflow("demo", demo_spec(), args=WorkflowArgs(namespace="explicit"),
                                                  manage_jetstream=False))
    assert {r.get("metadata.namespace") for r in resources if r.type.startswith("kubernetes:")} == {"explicit"}


def test_namespace_and_nats_url_may_be_outputs_of_other_resources(pulumi_mocks):
    """Mocks stand in for the engine; Outputs of other resources flow into every object that names them."""
    created = {}

    def program():
        ns = k8s.core.v1.Namespace("team", metadata={"name": "team-a"})
        url = ns.metadata.apply(lambda m: f"nats://nats.{m['name']}.svc:4222")
        created["wf"] = Workflow("demo", demo_spec(), namespace=ns.metadata.name, nats_url=url,
                                 manage_jetstream=False)

    resources = pulumi_mocks.run(program)
    team = find_resource(resources, "kubernetes:core/v1:Namespace", "team")
    kube = [r for r in resources if r.type.startswith("kubernetes:") and r.parent == workflow_of(resources).urn]
    assert {r.get("metadata.namespace") for r in kube} == {"team-a"}
    assert all(team.urn in r.dependencies for r in kube)
    for deployment in resources_of_type(resources, DEPLOYMENT):
        assert env_of(deployment)["NATS_URL"]["value"] == "nats://nats.team-a.svc:4222"
        own_plan = json.loads(env_of(deployment)["KUMEO_PLAN_JSON"]["value"])
        assert own_plan["workflows"][0]["nats_url"] == "nats://nats.team-a.svc:4222"
    assert all("placeholder" not in json.dumps(r.inputs) for r in kube)
    assert await_output(created["wf"].namespace) == "team-a"


def test_create_namespace_adds_a_namespace_every_object_depends_on(pulumi_mocks):
    """Mocks stand in for the engine; the Namespace is a child of the Workflow and a dependency of the rest."""
    resources = pulumi_mocks.run(lambda: Workflow("demo", demo_spec(), namespace="kumeo-demo",
                                                  create_namespace=True, manage_jetstream=False))
    namespace = find_resource(resources, "kubernetes:core/v1:Namespace", "demo-namespace")
    assert namespace.get("metadata.name") == "kumeo-demo"
    assert namespace.parent == workflow_of(resources).urn
    namespaced = [r for r in resources if r.type.startswith("kubernetes:") and r is not namespace]
    assert all(namespace.urn in r.dependencies for r in namespaced)


# -- secrets -------------------------------------------------------------------------------------------------


def test_api_keys_from_secret_config_become_a_secret_referenced_by_secret_key_ref(pulumi_mocks):
    """Mocks stand in for the engine; a secret input arrives wrapped as a secret, never in plain text."""
    pulumi.runtime.set_all_config({"kumeo:openaiApiKey": "sk-test-123"}, secret_keys=["kumeo:openaiApiKey"])
    resources = pulumi_mocks.run(lambda: Workflow("demo", demo_spec(), manage_jetstream=False))
    (secret,) = resources_of_type(resources, SECRET)
    assert secret.get("metadata.name") == "demo-secrets"
    assert is_secret(secret.inputs["stringData"])
    assert unwrap_secret(secret.inputs["stringData"]) == {"OPENAI_API_KEY": "sk-test-123"}
    llm = find_resource(resources, DEPLOYMENT, "demo-deployment-demo-explain")
    assert env_of(llm)["OPENAI_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "demo-secrets", "key": "OPENAI_API_KEY"}
    }
    processor = find_resource(resources, DEPLOYMENT, "demo-deployment-demo-normalize")
    assert "OPENAI_API_KEY" not in env_of(processor)  # only LLM and Custom agents see API keys
    everything_else = json.dumps([r.inputs for r in resources if r is not secret])
    assert "sk-test-123" not in everything_else


def test_extra_secrets_from_the_secrets_object_and_arguments(pulumi_mocks):
    """Mocks stand in for the engine; `kumeo:secrets` (a secret object) and secrets= add keys."""
    pulumi.runtime.set_all_config({"kumeo:secrets": json.dumps({"VENDOR_TOKEN": "v-1"})}, ["kumeo:secrets"])
    resources = pulumi_mocks.run(lambda: Workflow("demo", demo_spec(), manage_jetstream=False,
                                                  secrets={"EXTRA": pulumi.Output.secret("e-2")}))
    (secret,) = resources_of_type(resources, SECRET)
    assert unwrap_secret(secret.inputs["stringData"]) == {"EXTRA": "e-2", "VENDOR_TOKEN": "v-1"}
    explain = find_resource(resources, DEPLOYMENT, "demo-deployment-demo-explain")
    assert set(env_of(explain)) >= {"EXTRA", "VENDOR_TOKEN"}


# -- outputs -------------------------------------------------------------------------------------------------


def test_outputs_namespace_streams_subjects_deployments_and_plan(pulumi_mocks):
    """Mocks stand in for the engine; the component's Outputs resolve to the Plan's values."""
    created = {}
    pulumi_mocks.run(lambda: created.setdefault("wf", Workflow("demo", demo_spec(), manage_jetstream=False)))
    wf = created["wf"]
    assert await_output(wf.namespace) == "demo"
    assert await_output(wf.stream_names) == ["KUMEO_DEMO", "KUMEO_DEMO_SOURCES", "KUMEO_DEMO_TARGETS"]
    subjects = await_output(wf.subjects)
    assert subjects["sources"] == ["demo.in"] and subjects["targets"] == ["demo.out"]
    assert subjects["agents"]["explain"] == "kumeo.demo.explain.out"
    assert subjects["deadLetters"]["normalize"] == "kumeo.demo.dlq.normalize"
    assert await_output(wf.deployments) == ["demo-normalize", "demo-explain"]
    assert await_output(wf.consumer_names) == ["normalize", "explain"]
    from kumeo_iac.components._workflow import plan_digest

    assert await_output(wf.plan_digest) == plan_digest(wf.plan)
    assert await_output(wf.plan_digest).startswith("sha256:") and not output_is_secret(wf.plan_digest)


# -- JetStream -----------------------------------------------------------------------------------------------


def test_jetstream_streams_consumers_and_scaled_objects_are_ordered_by_dependencies(pulumi_mocks):
    """Mocks stand in for the engine; consumers depend on their stream and each ScaledObject on its consumer."""
    providers = pytest.importorskip("kumeo_providers")
    if not hasattr(providers, "Stream"):
        pytest.skip("the JetStream dynamic providers (kumeo_providers.Stream) have not landed yet")
    created = {}
    resources = pulumi_mocks.run(lambda: created.setdefault(
        "wf", Workflow("demo", demo_spec(), keda=True, jetstream_url="nats://127.0.0.1:4222")))
    plan = created["wf"].plan
    dynamic = [r for r in resources if r.type.startswith("pulumi-python:dynamic/jetstream:")]
    assert len(dynamic) == len(plan.streams) + len(plan.key_values) + len(plan.consumers)
    workflow = workflow_of(resources)
    assert all(r.parent == workflow.urn for r in dynamic)
    by_name = {r.name: r for r in dynamic}
    for consumer in plan.consumers:
        resource = by_name[f"demo-consumer-{consumer.stream}-{consumer.durable}"]
        assert by_name[f"demo-stream-{consumer.stream}"].urn in resource.dependencies
    for scaled in resources_of_type(resources, SCALED_OBJECT):
        depends_on = scaled.get("metadata.annotations")["kumeo.dev/depends-on"]
        _, stream, durable = depends_on.split("/")
        assert by_name[f"demo-consumer-{stream}-{durable}"].urn in scaled.dependencies


# -- errors and the mapping table ----------------------------------------------------------------------------


def test_an_invalid_workflow_raises_kumeo_validation_error_before_any_resource(pulumi_mocks):
    """Mocks stand in for the engine; nothing is registered when validation fails."""
    broken = WorkflowSpec(name="Broken", source=NATS("in"), agents=[
        DataProcessor(id="a", input=Ref(path=("nowhere", "output"))),
    ])
    with pytest.raises(KumeoValidationError) as info:
        pulumi_mocks.run(lambda: Workflow("broken", broken))
    assert "nowhere" in str(info.value)
    assert pulumi_mocks.resources == []


def test_a_workflow_needs_a_spec_or_dsl_arguments():
    with pytest.raises(KumeoSpecError, match="needs a WorkflowSpec"):
        Workflow("empty")


def test_every_kind_registers_under_its_own_type_token():
    assert type_token({"apiVersion": "apps/v1", "kind": "Deployment"}) == DEPLOYMENT
    assert type_token({"apiVersion": "v1", "kind": "Secret"}) == "kubernetes:core/v1:Secret"
    assert type_token({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject"}) == SCALED_OBJECT


def test_objects_are_registered_as_written_with_the_provider_version_and_secret_outputs(pulumi_mocks):
    """Mocks stand in for the engine; the object's fields reach the provider as Kubernetes spells them."""
    from importlib.metadata import version

    from kumeo_iac.components import kubernetes_resource

    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "data": {"a": "b"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
    resources = pulumi_mocks.run(lambda: [kubernetes_resource("w", widget, pulumi.ResourceOptions()),
                                          kubernetes_resource("s", secret, pulumi.ResourceOptions())])
    registered = find_resource(resources, "kubernetes:example.com/v1:Widget", "w")
    assert registered.inputs == widget
    assert registered.version == version("pulumi_kubernetes")
    assert find_resource(resources, "kubernetes:core/v1:Secret", "s").additional_secret_outputs == [
        "data", "stringData"]


def test_an_object_without_api_version_is_refused():
    from kumeo_iac.components import kubernetes_resource

    with pytest.raises(KumeoDeployError, match="no apiVersion/kind"):
        kubernetes_resource("w", {"kind": "Widget"}, pulumi.ResourceOptions())


def test_importing_kumeo_iac_does_not_import_pulumi():
    code = (
        "import sys, kumeo_iac, kumeo_iac.spec, kumeo_iac.compile, kumeo_iac.errors\n"
        "assert 'pulumi' not in sys.modules, 'kumeo_iac imported pulumi'\n"
        "import kumeo_iac.components\n"
        "assert 'pulumi' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
