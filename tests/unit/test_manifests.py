"""`kumeo_iac.manifests.workflow_manifests`: the one step that reads the files agents read.

It adds the ``<slug>-files`` ConfigMap before the first Deployment, stamps each Deployment whose agent reads files
with the checksum of exactly those files (so editing a model rolls the agents that read it and no other), and lists
the Secrets the pods read. The same objects are what `kumeo render` writes and the Workflow component applies.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from pathlib import Path

import pytest

from kumeo_iac.compile import PlatformSettings, compile_program
from kumeo_iac.compile._kubernetes import FILES_CHECKSUM_ANNOTATION, files_key
from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.manifests import (
    CONFIG_MAP_LIMIT,
    RequiredSecret,
    files_config_map_name,
    required_secrets,
    workflow_manifests,
)
from kumeo_iac.spec import LLM, NATS, DataProcessor, MLModel, Program, WorkflowSpec

FILES = {
    "models/a.onnx": b"model a",
    "models/b.onnx": b"model b",
    "schemas/scores.json": b'{"type": "object"}',
}


def workflow(**settings):
    """A reads models/a.onnx, B reads models/b.onnx, both read schemas/scores.json; C reads nothing."""
    program = Program(workflows=[WorkflowSpec(
        name="Scoring", sources=[NATS("in")], targets=[NATS("out")],
        schemas={"scores": "schemas/scores.json"},
        agents=[
            DataProcessor(id="c"),
            MLModel("models/a.onnx", id="a", input="c.output", output_schema="schemas.scores"),
            MLModel("models/b.onnx", id="b", input="c.output", output_schema="schemas.scores",
                    output="target.out"),
        ])])
    return compile_program(program, settings=PlatformSettings(**settings) if settings else None).workflows[0]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    for path, data in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    return tmp_path


def deployments(objects) -> dict[str, dict]:
    return {o["metadata"]["labels"]["kumeo.dev/agent"]: o for o in objects
            if o["kind"] == "Deployment" and "kumeo.dev/agent" in o["metadata"]["labels"]}


def checksums(objects) -> dict[str, str | None]:
    return {agent: d["spec"]["template"]["metadata"]["annotations"].get(FILES_CHECKSUM_ANNOTATION)
            for agent, d in deployments(objects).items()}


def test_the_files_config_map_comes_before_the_first_deployment_with_every_mounted_file(base: Path) -> None:
    wf = workflow()
    before = copy.deepcopy(wf.kubernetes)
    manifests = workflow_manifests(wf, base)
    assert wf.kubernetes == before  # the Plan's objects are not touched
    kinds = [o["kind"] for o in manifests.objects]
    at = [o["metadata"]["name"] for o in manifests.objects].index("scoring-files")
    assert manifests.objects[at]["kind"] == "ConfigMap" and kinds.index("Deployment") == at + 1
    assert len(manifests.objects) == len(wf.kubernetes) + 1
    config_map = manifests.objects[at]
    assert config_map["metadata"]["name"] == files_config_map_name(wf) == "scoring-files"
    assert config_map["metadata"]["namespace"] == wf.namespace
    assert config_map["metadata"]["labels"]["kumeo.dev/workflow"] == "scoring"
    assert config_map["binaryData"] == {files_key(p): base64.b64encode(data).decode() for p, data in FILES.items()}
    assert sorted(config_map["binaryData"]) == ["models__a.onnx", "models__b.onnx", "schemas__scores.json"]
    assert "data" not in config_map
    # every key a Deployment mounts is in the ConfigMap, under the path the agent reads
    for agent, dep in deployments(manifests.objects).items():
        volumes = [v for v in dep["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
        items = [i for v in volumes for i in v["configMap"]["items"]]
        assert {i["path"] for i in items} == set(wf.agent(agent).files)
        assert all(i["key"] in config_map["binaryData"] and i["key"] == files_key(i["path"]) for i in items)


def test_each_deployment_is_stamped_with_the_checksum_of_exactly_the_files_it_reads(base: Path) -> None:
    sums = checksums(workflow_manifests(workflow(), base).objects)
    assert sums["c"] is None  # reads no file: no annotation
    for agent, own in (("a", "models/a.onnx"), ("b", "models/b.onnx")):
        paths = sorted([own, "schemas/scores.json"])
        expected = hashlib.sha256("".join(f"{p}\0{hashlib.sha256(FILES[p]).hexdigest()}\n"
                                          for p in paths).encode()).hexdigest()
        assert sums[agent] == expected
    assert sums["a"] != sums["b"]
    # and only Deployments carry it
    others = [o for o in workflow_manifests(workflow(), base).objects if o["kind"] != "Deployment"]
    assert FILES_CHECKSUM_ANNOTATION not in str(others)


def test_changing_a_file_read_by_one_agent_changes_that_agents_checksum_only(base: Path) -> None:
    wf = workflow()
    before = workflow_manifests(wf, base).objects
    (base / "models" / "a.onnx").write_bytes(b"model a, retrained")
    after = workflow_manifests(wf, base).objects
    old, new = checksums(before), checksums(after)
    assert old["a"] != new["a"]
    assert (old["b"], old["c"]) == (new["b"], new["c"])
    # the pod templates: A's changes, no other Deployment changes at all
    changed = {agent for agent in deployments(before) if deployments(before)[agent] != deployments(after)[agent]}
    assert changed == {"a"}


def test_changing_a_file_read_by_two_agents_changes_both(base: Path) -> None:
    wf = workflow()
    before = checksums(workflow_manifests(wf, base).objects)
    (base / "schemas" / "scores.json").write_bytes(b'{"type": "object", "required": ["score"]}')
    after = checksums(workflow_manifests(wf, base).objects)
    assert before["a"] != after["a"] and before["b"] != after["b"]
    assert before["c"] is after["c"] is None


def test_a_missing_file_is_an_error_naming_it(base: Path) -> None:
    (base / "models" / "b.onnx").unlink()
    with pytest.raises(KumeoDeployError) as info:
        workflow_manifests(workflow(), base)
    message = str(info.value)
    assert "'models/b.onnx'" in message and "Scoring" in message
    assert str((base / "models" / "b.onnx").resolve()) in message


def test_files_too_big_for_a_config_map_are_refused_with_the_way_out(base: Path) -> None:
    (base / "models" / "a.onnx").write_bytes(b"\0" * (CONFIG_MAP_LIMIT - 10))  # alone it would fit...
    with pytest.raises(KumeoDeployError) as info:  # ...but with the other two it does not
        workflow_manifests(workflow(), base)
    message = str(info.value)
    assert "'Scoring'" in message and "1 MiB" in message and "files_volume" in message
    (base / "models" / "a.onnx").write_bytes(b"\0" * (CONFIG_MAP_LIMIT - len(FILES["models/b.onnx"])
                                                    - len(FILES["schemas/scores.json"])))
    assert workflow_manifests(workflow(), base).objects  # exactly at the limit: fits


def test_with_a_files_volume_nothing_is_read_and_no_config_map_is_added(tmp_path: Path) -> None:
    wf = workflow(files_volume={"persistentVolumeClaim": {"claimName": "models", "readOnly": True}})
    manifests = workflow_manifests(wf, tmp_path / "nowhere")  # no file exists there: none is read
    assert manifests.objects == wf.kubernetes
    assert all(v is None for v in checksums(manifests.objects).values())


def test_a_workflow_reading_no_file_gets_its_objects_unchanged(tmp_path: Path) -> None:
    program = Program(workflows=[WorkflowSpec(name="Plain", sources=[NATS("in")], targets=[NATS("out")],
                                              agents=[DataProcessor(id="x")])])
    wf = compile_program(program).workflows[0]
    manifests = workflow_manifests(wf, None)
    assert manifests.objects == wf.kubernetes and manifests.secrets == []


def test_required_secrets_are_the_secret_key_refs_and_secret_volumes_of_the_pods(base: Path) -> None:
    program = Program(workflows=[WorkflowSpec(
        name="Scoring", sources=[NATS("in")], targets=[NATS("out")],
        agents=[DataProcessor(id="c"), LLM("openai/gpt-4o", id="l", prompt="x", input="c.output")])])
    settings = PlatformSettings(nats_auth=True, nats_tls={"secret": "nats-tls", "cert": "", "key": ""},
                                secrets={"OPENAI_API_KEY": "llm-keys/openai", "OTHER_KEY": "llm-keys"})
    wf = compile_program(program, settings=settings).workflows[0]
    manifests = workflow_manifests(wf, base)
    assert manifests.secrets == required_secrets(wf.kubernetes) == [
        RequiredSecret("llm-keys", ("OTHER_KEY", "openai")),  # only the LLM agent reads them
        RequiredSecret("nats-tls", ("ca.crt",), file_keys=("ca.crt",)),  # mounted: created from a file
        RequiredSecret("scoring-nats", ("scoring-c", "scoring-l")),
    ]
    assert manifests.secrets[2].create_command("scoring") == (
        "kubectl -n scoring create secret generic scoring-nats --from-literal=scoring-c=… "
        "--from-literal=scoring-l=…")
    assert manifests.secrets[1].create_command("scoring") == (
        "kubectl -n scoring create secret generic nats-tls --from-file=ca.crt=./ca.crt")
    assert not [o for o in manifests.objects if o["kind"] == "Secret"]  # listed, never rendered
    assert workflow_manifests(compile_program(program).workflows[0], base).secrets == []
