"""The repository's own Pulumi programs (root __main__.py and examples/platform_stack) under Pulumi mocks.

No engine, cluster or NATS server: ``kumeo_iac.testing.PulumiMocks`` stands in for the Pulumi engine and records
what each program registers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pulumi
import pytest

from kumeo_iac.testing import find_resource, resources_of_type

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stack_config(values: dict[str, str]) -> None:
    """Set stack config; JetStream resources are left out while the providers package lacks them."""
    import kumeo_providers

    if not hasattr(kumeo_providers, "Stream"):
        values = {**values, "kumeo:manageJetStream": "false"}
    pulumi.runtime.set_all_config(values)


def env_of(deployment) -> dict:
    return {e["name"]: e for e in deployment.get("spec.template.spec.containers.0.env")}


def test_root_program_deploys_the_fraud_detection_example(pulumi_mocks):
    """Mocks stand in for the engine; the root Pulumi.yaml project runs __main__.program()."""
    stack_config({"kumeo:namespace": "fraud-prod", "kumeo:natsUrl": "nats://nats.bus:4222"})
    main = load(ROOT / "__main__.py", "kumeo_root_stack")
    resources = pulumi_mocks.run(main.program)
    (workflow,) = resources_of_type(resources, "kumeo:index:Workflow")
    deployments = resources_of_type(resources, DEPLOYMENT)
    assert sorted(d.get("metadata.labels")["kumeo.dev/agent"] for d in deployments) == [
        "anomaly", "dispatch", "explain", "normalize", "policy",
    ]
    assert all(d.parent == workflow.urn for d in deployments)
    assert {d.get("metadata.namespace") for d in deployments} == {"fraud-prod"}
    assert {env_of(d)["NATS_URL"]["value"] for d in deployments} == {"nats://nats.bus:4222"}
    files = find_resource(resources, "kubernetes:core/v1:ConfigMap", "fraud-detection-configmap-fraud-detection-files")
    assert "models__isolation_forest.onnx" in files.inputs["binaryData"]


def test_platform_stack_composes_namespace_nats_release_and_workflow(pulumi_mocks):
    """Mocks stand in for the engine (the Helm release's status comes from PulumiMocks.outputs_for)."""
    stack_config({"platform:namespace": "team-platform", "kumeo:keda": "true"})
    platform = load(ROOT / "examples" / "platform_stack" / "__main__.py", "kumeo_platform_stack")
    resources = pulumi_mocks.run(platform.program)

    namespace = find_resource(resources, "kubernetes:core/v1:Namespace", "platform")
    assert namespace.get("metadata.name") == "team-platform"

    release = find_resource(resources, "kubernetes:helm.sh/v3:Release", "nats")
    assert release.get("chart") == "nats"
    assert release.get("repositoryOpts.repo") == "https://nats-io.github.io/k8s/helm/charts/"
    assert release.get("values.config.jetstream.enabled") is True
    assert release.get("namespace") == "team-platform"
    assert namespace.urn in release.dependencies

    (workflow,) = resources_of_type(resources, "kumeo:index:Workflow")
    assert release.urn in workflow.dependencies
    deployments = resources_of_type(resources, DEPLOYMENT)
    assert len(deployments) == 5
    for deployment in deployments:
        assert deployment.parent == workflow.urn
        assert deployment.get("metadata.namespace") == "team-platform"
        assert env_of(deployment)["NATS_URL"]["value"] == "nats://nats.team-platform.svc.cluster.local:4222"
        assert release.urn in deployment.dependencies
    scaled_objects = resources_of_type(resources, "kubernetes:keda.sh/v1alpha1:ScaledObject")
    assert len(scaled_objects) == 5
    for scaled in scaled_objects:  # KEDA polls the release's monitoring endpoint, derived from the NATS URL
        assert "placeholder" not in str(scaled.inputs)
        assert "nats.team-platform.svc.cluster.local" in str(scaled.get("spec.triggers"))


@pytest.mark.parametrize("program", ["__main__.py", "examples/platform_stack/__main__.py"])
def test_programs_have_a_pulumi_project_file(program):
    import yaml

    project = yaml.safe_load((ROOT / program).parent.joinpath("Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert project["name"]
