"""examples/yaml_stack under the real engine: a Pulumi YAML program composes ``kumeo:index:Workflow``, served by the
``kumeo`` component provider (providers/kumeo_component: the Python SDK's component provider host over
kumeo_iac/components/_multilang.py).

The example is copied to a temporary directory; only its two repository-relative paths (the ``kumeo`` package and the
virtualenv) are made absolute. Its own ``pulumi:providers:kubernetes`` renders YAML files (``renderYamlToDirectory``,
the ``renderDir`` config) and reaches the component through ``options: providers:``; the JetStream dynamic providers
create the streams and consumers on a real nats-server. Nothing is downloaded: the YAML language host, the Kubernetes
provider and the dynamic-provider launcher come from ``make toolchain``, the component provider from the repository.

The tests run in file order on one stack: preview, up, an idle preview, destroy.

Run: ``.venv/bin/python -m pytest tests/engine/test_yaml_stack.py`` (needs ``make toolchain``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from engine_support import (
    COMPONENT_TYPE,
    REPO,
    VENV,
    Stack,
    compiled_plan,
    consumer_info,
    expected_objects,
    run_command,
    stream_info,
    stream_names,
)

pytestmark = [pytest.mark.nats, pytest.mark.timeout(900)]

EXAMPLE = REPO / "examples" / "yaml_stack"
WORKFLOW_FILE = "fraud_screening.kumeo"
PLUGIN_DIR = REPO / "providers" / "kumeo_component"
#: The example's `namespace:` property.
NAMESPACE = "payments"
JETSTREAM_KINDS = ("stream", "consumer", "kv")


class YamlStack(Stack):
    """The example's Pulumi YAML project in a temporary directory, with one stack on a ``file://`` backend."""

    @property
    def workflow_file(self) -> Path:
        return self.project_dir / WORKFLOW_FILE

    def create(self, config: Mapping[str, str] | None = None) -> YamlStack:
        shutil.copytree(EXAMPLE, self.project_dir, ignore=shutil.ignore_patterns("Pulumi.*.yaml", "rendered"))
        self.backend_dir.mkdir(parents=True)
        self.render_dir.mkdir(parents=True)
        project_file = self.project_dir / "Pulumi.yaml"
        project = yaml.safe_load(project_file.read_text())
        project["runtime"]["options"]["virtualenv"] = str(VENV)
        project["packages"]["kumeo"] = str(PLUGIN_DIR)
        project_file.write_text(yaml.safe_dump(project, sort_keys=False))
        if VENV.resolve() != (REPO / ".venv").resolve():
            # The plugin's launcher takes the repository's .venv unless told otherwise.
            self.env["KUMEO_PYTHON"] = str(VENV / "bin" / "python")
        self.pulumi("stack", "init", self.stack, "--secrets-provider", "passphrase")
        for key, value in dict(config or {}).items():
            self.config_set(key, value)
        return self


@pytest.fixture(scope="module")
def stack(engine_env: dict[str, str], jetstream: Any, tmp_path_factory: pytest.TempPathFactory) -> YamlStack:
    root = tmp_path_factory.mktemp("yaml-stack")
    stack = YamlStack(root, engine_env, project="kumeo-yaml-stack")
    return stack.create({"natsUrl": jetstream.url, "renderDir": str(stack.render_dir)})


@pytest.fixture(scope="module")
def plan(stack: YamlStack, jetstream: Any) -> Any:
    return compiled_plan(stack.workflow_file, jetstream.url)


@pytest.fixture(scope="module")
def expected(stack: YamlStack, jetstream: Any) -> set[tuple[str, str]]:
    return expected_objects(stack.workflow_file, jetstream.url)


def test_the_example_names_the_component_provider_and_the_virtualenv_of_the_repository() -> None:
    project = yaml.safe_load((EXAMPLE / "Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "yaml"
    assert (EXAMPLE / project["packages"]["kumeo"]).resolve() == PLUGIN_DIR.resolve()
    assert (EXAMPLE / project["runtime"]["options"]["virtualenv"]).resolve() == (REPO / ".venv").resolve()
    assert (PLUGIN_DIR / "pulumi-resource-kumeo").stat().st_mode & 0o111, "the plugin launcher is not executable"
    workflow = project["resources"]["fraud"]
    assert workflow["type"] == COMPONENT_TYPE
    assert (EXAMPLE / workflow["properties"]["path"]).is_file()


def test_the_plugin_serves_a_schema_inferred_from_the_component(stack: YamlStack) -> None:
    """``pulumi package get-schema`` starts the plugin as the engine does (the launcher, then the provider host) and
    asks for the schema the host inferred from the type hints of kumeo_iac/components/_multilang.py."""
    result = run_command(
        ["pulumi", "package", "get-schema", str(PLUGIN_DIR / "pulumi-resource-kumeo")],
        cwd=stack.project_dir, env=stack.env, timeout=120,
    )
    schema = json.loads(result.stdout)
    assert schema["name"] == "kumeo"
    workflow = schema["resources"][COMPONENT_TYPE]
    assert workflow["isComponent"] is True
    assert workflow["requiredInputs"] == ["path"]
    assert set(workflow["inputProperties"]) == {
        "path", "workflow", "baseDir", "namespace", "natsUrl", "jetstreamUrl", "imageRegistry", "keda",
        "createNamespace", "manageJetstream", "retainStreams", "allowStreamReplacement", "adoptStreams",
        "awaitKubernetes", "buildImages", "secrets",
    }
    assert workflow["inputProperties"]["path"].get("plain") is True
    # Another resource's Output may feed these two (the namespace and NATS URL become Outputs again in the objects).
    assert "plain" not in workflow["inputProperties"]["natsUrl"]
    assert "plain" not in workflow["inputProperties"]["namespace"]
    assert set(workflow["properties"]) == {
        "namespace", "streamNames", "consumerNames", "deployments", "subjects", "planDigest",
    }


def test_preview_lists_the_workflow_streams_consumers_and_deployments(
    stack: YamlStack, expected: set[tuple[str, str]]
) -> None:
    preview = stack.preview()
    listed = preview.ops()
    assert set(listed) - expected == set(), f"the preview registers objects compile does not:\n{preview.summary()}"
    assert expected - set(listed) == set(), f"the preview misses objects compile has:\n{preview.summary()}"
    assert {k: ops for k, ops in listed.items() if ops != {"create"}} == {}
    assert {k[0] for k in listed} >= {"stream", "consumer", "Deployment"}

    types = {s.type for s in preview.steps}
    assert COMPONENT_TYPE in types
    assert "pulumi:providers:kubernetes" in types
    # The YAML program's resource is the Python component itself: the streams, consumers and Kubernetes objects are
    # its direct children (no second component in between).
    for step in preview.steps:
        if step.key is not None:
            assert step.urn.split("::")[-2].startswith(f"{COMPONENT_TYPE}$"), step.urn
    for step in preview.steps:
        if step.type == "kubernetes:apps/v1:Deployment":
            assert step.inputs["metadata"]["namespace"] == NAMESPACE


def test_up_creates_the_streams_on_the_server_and_the_manifests_on_disk(
    stack: YamlStack, jetstream: Any, plan: Any, expected: set[tuple[str, str]]
) -> None:
    stack.pulumi("up", "--yes")  # as a user runs it: preview, then update
    url = jetstream.url

    for s in plan.streams:
        info = stream_info(url, s.name)
        assert info is not None, f"stream {s.name} was not created"
        assert sorted(info.config.subjects) == sorted(s.config["subjects"])
    for c in plan.consumers:
        info = consumer_info(url, c.stream, c.durable)
        assert info is not None, f"consumer {c.stream}/{c.durable} was not created"

    rendered = stack.rendered()
    assert set(rendered) == {k for k in expected if k[0] not in JETSTREAM_KINDS}
    deployments = [key for key in rendered if key[0] == "Deployment"]
    assert len(deployments) == len(plan.agents)
    for key in deployments:
        deployment = yaml.safe_load(rendered[key].read_text())
        assert deployment["metadata"]["namespace"] == NAMESPACE
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["NATS_URL"] == url

    outputs = stack.outputs()
    assert outputs["namespace"] == NAMESPACE
    assert sorted(outputs["streams"]) == sorted(s.name for s in plan.streams)
    assert sorted(outputs["consumers"]) == sorted(c.durable for c in plan.consumers)
    assert sorted(outputs["deployments"]) == sorted(name for kind, name in deployments)
    assert outputs["subjects"]["sources"] == ["payments.transactions"]
    assert str(outputs["planDigest"]).startswith("sha256:")


def test_a_second_preview_changes_nothing(stack: YamlStack) -> None:
    preview = stack.preview()
    assert preview.changes() == [], preview.summary()


def test_destroy_deletes_the_streams_and_the_rendered_files(stack: YamlStack, jetstream: Any, plan: Any) -> None:
    stack.destroy()
    assert stream_names(jetstream.url) & {s.name for s in plan.streams} == set()
    assert stack.rendered() == {}
    assert stack.outputs() == {}
