"""kumeo_iac.testing: the mocks fixture, the recorder and the plan assertions users write their tests with.

Mocks stand in for the Pulumi engine in every test here; no engine runs in a unit test.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from kumeo_iac.compile import compile_program
from kumeo_iac.spec import NATS, DataProcessor, Program, Ref, WorkflowSpec
from kumeo_iac.testing import (
    PulumiMocks,
    assert_plan_has_agent,
    assert_plan_has_consumer,
    assert_plan_has_kubernetes_object,
    assert_plan_has_stream,
    await_output,
    find_resource,
    is_secret,
    output_is_secret,
    resources_of_type,
    run_program,
    unwrap_secret,
)


class Box(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("test:index:Box", name, {}, opts)
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-cm", metadata={"name": "cm"}, data={"a": "1"}, opts=pulumi.ResourceOptions(parent=self))
        self.secret = k8s.core.v1.Secret(
            f"{name}-secret", string_data={"token": pulumi.Output.secret("t0p")},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.config_map]))
        self.register_outputs({})


def test_the_fixture_records_type_name_inputs_parent_provider_and_dependencies(pulumi_mocks):
    """Mocks stand in for the engine: what the recorder keeps is what a registration request carries."""
    created = {}

    def program():
        provider = k8s.Provider("cluster")
        created["box"] = Box("box", opts=pulumi.ResourceOptions(providers=[provider], protect=True))

    resources = pulumi_mocks.run(program)
    assert isinstance(pulumi_mocks, PulumiMocks) and resources == pulumi_mocks.resources
    box = find_resource(resources, "test:index:Box", "box")
    assert not box.custom
    config_map = find_resource(resources, "kubernetes:core/v1:ConfigMap", "box-cm")
    secret = find_resource(resources, "kubernetes:core/v1:Secret", "box-secret")
    provider = find_resource(resources, "pulumi:providers:kubernetes", "cluster")
    assert config_map.parent == box.urn and secret.parent == box.urn
    assert config_map.provider_urn == provider.urn and config_map.protect
    assert config_map.urn in secret.dependencies
    assert config_map.get("data.a") == "1" and config_map.get("metadata.name") == "cm"
    assert config_map.get("no.such.path", "default") == "default"
    assert is_secret(secret.inputs["stringData"]) and unwrap_secret(secret.inputs["stringData"]) == {"token": "t0p"}
    assert [r.name for r in resources_of_type(resources, "kubernetes:core/v1:ConfigMap")] == ["box-cm"]
    assert await_output(created["box"].config_map.data) == {"a": "1"}
    assert output_is_secret(created["box"].secret.string_data)


def test_auto_named_objects_get_their_resource_name_as_metadata_name(pulumi_mocks):
    """Mocks stand in for the engine; PulumiMocks.outputs_for fills what a provider would compute."""
    created = {}
    pulumi_mocks.run(lambda: created.setdefault("ns", k8s.core.v1.Namespace("apps")))
    assert await_output(created["ns"].metadata.name) == "apps"


def test_each_test_starts_clean(pulumi_mocks):
    """Mocks stand in for the engine; no resources or config leak from the previous tests."""
    assert pulumi_mocks.resources == []
    assert pulumi.Config("kumeo").get("namespace") is None
    pulumi.runtime.set_all_config({"kumeo:namespace": "set-here"})
    assert pulumi.Config("kumeo").get("namespace") == "set-here"


def test_config_set_in_one_test_is_gone_in_the_next(pulumi_mocks):
    """Mocks stand in for the engine; paired with the test above (pytest runs them in order)."""
    assert pulumi.Config("kumeo").get("namespace") is None


def test_run_program_reports_the_programs_exception(pulumi_mocks):
    """Mocks stand in for the engine; errors raised by the program reach the test."""

    def program():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_program(program, pulumi_mocks)


def test_find_resource_names_what_exists(pulumi_mocks):
    """Mocks stand in for the engine; a miss lists the registered names."""
    resources = pulumi_mocks.run(lambda: k8s.core.v1.ConfigMap("real", data={}))
    with pytest.raises(AssertionError, match=r"registered: \['real'\]"):
        find_resource(resources, "kubernetes:core/v1:ConfigMap", "imaginary")


# -- plan assertions -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan():
    spec = WorkflowSpec(name="Shop", source=NATS("orders.in"), target=NATS("orders.out"), agents=[
        DataProcessor(id="clean", input=Ref(path=("source",)), config={"required_fields": ["id"]}),
    ])
    return compile_program(Program(workflows=[spec]))


def test_plan_assertions_return_what_they_found(plan):
    agent = assert_plan_has_agent(plan, "clean", kind="DataProcessor")
    assert agent.output_subject == "kumeo.shop.clean.out"
    assert assert_plan_has_stream(plan, "KUMEO_SHOP").name == "KUMEO_SHOP"
    assert [c.durable for c in assert_plan_has_consumer(plan, "clean")] == ["clean"]
    deployment = assert_plan_has_kubernetes_object(plan, "Deployment", "shop-clean")
    assert deployment["metadata"]["labels"]["kumeo.dev/workflow"] == "shop"
    assert_plan_has_agent(plan.workflows[0], "clean")  # a WorkflowPlan works too


def test_plan_assertions_fail_with_what_exists(plan):
    with pytest.raises(AssertionError, match=r"agents: \['clean'\]"):
        assert_plan_has_agent(plan, "dirty")
    with pytest.raises(AssertionError, match="is a DataProcessor"):
        assert_plan_has_agent(plan, "clean", kind="LLM")
    with pytest.raises(AssertionError, match="streams:"):
        assert_plan_has_stream(plan, "NOPE")
    with pytest.raises(AssertionError, match="Deployment/shop-clean"):
        assert_plan_has_kubernetes_object(plan, "Deployment", "shop-dirty")
