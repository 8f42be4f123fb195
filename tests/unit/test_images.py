"""Agent images without an engine: the content hash, context assembly, the Dockerfiles, the Image provider's
check/diff/create against a fake engine, and the Workflow component pinning Deployments under Pulumi mocks."""

from __future__ import annotations

import io
import os
import re
import tarfile
import tomllib
from pathlib import Path
from typing import Any, ClassVar

import pytest

from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.images import (
    IMAGE_CLASSES,
    IMAGE_EXTRAS,
    IMAGE_IMPORT_CHECKS,
    LOCAL_BASE_IMAGE,
    ImageBuild,
    assemble_context,
    class_build_args,
    content_tag,
    context_digest,
    context_files,
    context_tarball,
    dockerfile_for,
    project_root,
    repository_of,
    runtime_images_dir,
    wheel_version,
)

RUN_AS = "10001"


def write_tree(root: Path, files: dict[str, bytes], order: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in order or list(files):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
    return root


TREE = {
    "Dockerfile": b"FROM scratch\nCOPY . /x\n",
    "wheelhouse/a-1.0-py3-none-any.whl": b"wheel a",
    "wheelhouse/b-2.0-py3-none-any.whl": b"wheel b" * 1000,
    "files/models/m.onnx": bytes(range(256)),
}


# -- content hash ---------------------------------------------------------------------------------------------


def test_same_context_gives_the_same_tag_wherever_it_is(tmp_path):
    one = write_tree(tmp_path / "one", TREE)
    two = write_tree(tmp_path / "elsewhere" / "two", TREE)
    os.utime(two / "Dockerfile", (1, 1))  # modification times do not count
    tag = content_tag(one)
    assert re.fullmatch(r"[0-9a-f]{16}", tag)
    assert content_tag(two) == tag
    assert content_tag(one) == tag  # and it is stable


def test_one_changed_byte_changes_the_tag(tmp_path):
    base = content_tag(write_tree(tmp_path / "base", TREE))
    for name, data in TREE.items():
        changed = dict(TREE)
        changed[name] = data[:-1] + bytes([data[-1] ^ 1])
        assert content_tag(write_tree(tmp_path / f"changed-{len(name)}-{name.replace('/', '_')}", changed)) != base


def test_file_creation_order_is_irrelevant(tmp_path):
    names = list(TREE)
    forward = write_tree(tmp_path / "forward", TREE, names)
    backward = write_tree(tmp_path / "backward", TREE, list(reversed(names)))
    assert content_tag(forward) == content_tag(backward)
    assert context_files(forward) == context_files(backward)


def test_renaming_adding_and_mode_change_the_tag(tmp_path):
    base = content_tag(write_tree(tmp_path / "base", TREE))
    renamed = dict(TREE)
    renamed["files/models/n.onnx"] = renamed.pop("files/models/m.onnx")
    assert content_tag(write_tree(tmp_path / "renamed", renamed)) != base
    assert content_tag(write_tree(tmp_path / "added", {**TREE, "extra.txt": b""})) != base
    executable = write_tree(tmp_path / "exec", TREE)
    (executable / "files/models/m.onnx").chmod(0o755)
    assert content_tag(executable) != base


def test_build_args_labels_and_dockerfile_path_are_part_of_the_tag(tmp_path):
    root = write_tree(tmp_path / "ctx", TREE)
    plain = content_tag(root)
    assert content_tag(root, build_args={"A": "1"}) != plain
    assert content_tag(root, build_args={"A": "1"}) != content_tag(root, build_args={"A": "2"})
    assert content_tag(root, labels={"x": "y"}) != plain
    assert content_tag(root, build_args={"A": "1", "B": "2"}) == content_tag(root, build_args={"B": "2", "A": "1"})
    (root / "Other.Dockerfile").write_bytes(TREE["Dockerfile"])
    assert content_tag(root, dockerfile="Other.Dockerfile") != content_tag(root)


def test_dockerignore_excludes_from_hash_and_tarball(tmp_path):
    root = write_tree(tmp_path / "ctx", {**TREE, ".dockerignore": b"# scratch\n*.log\ncache/\n!cache/keep.txt\n"})
    (root / "build.log").write_text("noise")
    (root / "cache").mkdir()
    (root / "cache" / "junk.bin").write_bytes(b"junk")
    (root / "cache" / "keep.txt").write_text("kept")
    files = context_files(root)
    assert "build.log" not in files and "cache/junk.bin" not in files
    assert "cache/keep.txt" in files and ".dockerignore" in files and "Dockerfile" in files
    tag = content_tag(root)
    (root / "build.log").write_text("other noise")
    (root / "cache" / "junk.bin").write_bytes(b"other junk")
    assert content_tag(root) == tag


def test_tarball_holds_exactly_the_hashed_files_and_is_deterministic(tmp_path):
    one = write_tree(tmp_path / "one", TREE)
    two = write_tree(tmp_path / "two", TREE, list(reversed(list(TREE))))
    os.utime(two / "Dockerfile", (12345, 12345))
    blob_one, blob_two = context_tarball(one).read(), context_tarball(two).read()
    assert blob_one == blob_two
    with tarfile.open(fileobj=io.BytesIO(blob_one)) as tar:
        members = tar.getmembers()
        assert sorted(m.name for m in members) == context_files(one)
        assert all(m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)
        extracted = tar.extractfile("files/models/m.onnx")
        assert extracted is not None and extracted.read() == TREE["files/models/m.onnx"]


def test_digest_is_a_full_sha256(tmp_path):
    root = write_tree(tmp_path / "ctx", TREE)
    digest = context_digest(root)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and digest.startswith(content_tag(root))


# -- assembling contexts --------------------------------------------------------------------------------------


@pytest.fixture
def fake_wheel(tmp_path) -> Path:
    path = tmp_path / "dist" / "kumeo_iac-0.1.0-py3-none-any.whl"
    path.parent.mkdir()
    path.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    return path


def test_assemble_context_lays_out_dockerfile_wheel_and_files(tmp_path, fake_wheel):
    workflow_dir = write_tree(tmp_path / "wf", {"models/fraud.onnx": b"onnx", "rules/r.rules": b"rule"})
    context = assemble_context(
        tmp_path / "ctx", "ml", wheel=fake_wheel, wheelhouse=False, files=["models/fraud.onnx", "rules/r.rules"],
        base_dir=workflow_dir, base_image="python:3.11-slim", revision="abc123",
    )
    root = context.path
    assert (root / "Dockerfile").read_bytes() == dockerfile_for("ml").read_bytes()
    assert sorted(p.name for p in (root / "wheelhouse").iterdir()) == [fake_wheel.name]
    assert (root / "files/models/fraud.onnx").read_bytes() == b"onnx"
    assert context.build_args == {
        **class_build_args("ml"), "KUMEO_VERSION": "0.1.0", "PIP_NO_INDEX": "0",
        "KUMEO_BASE_IMAGE": "python:3.11-slim", "KUMEO_REVISION": "abc123",
    }
    tag = context.tag
    again = assemble_context(
        tmp_path / "ctx2", "ml", wheel=fake_wheel, wheelhouse=False, files=["rules/r.rules", "models/fraud.onnx"],
        base_dir=workflow_dir, base_image="python:3.11-slim", revision="abc123",
    )
    assert again.tag == tag
    (workflow_dir / "models/fraud.onnx").write_bytes(b"onnx2")
    assert assemble_context(
        tmp_path / "ctx", "ml", wheel=fake_wheel, wheelhouse=False, files=["models/fraud.onnx", "rules/r.rules"],
        base_dir=workflow_dir, base_image="python:3.11-slim", revision="abc123",
    ).tag != tag


def test_assemble_context_refuses_foreign_directories_and_escaping_files(tmp_path, fake_wheel):
    foreign = write_tree(tmp_path / "mine", {"notes.txt": b"keep me"})
    with pytest.raises(KumeoDeployError, match="not a Kumeo build context"):
        assemble_context(foreign, "base", wheel=fake_wheel, wheelhouse=False)
    assert (foreign / "notes.txt").read_bytes() == b"keep me"
    with pytest.raises(KumeoDeployError, match=r"without '..'"):
        assemble_context(tmp_path / "ctx", "base", wheel=fake_wheel, wheelhouse=False, files=["../secret"])
    with pytest.raises(KumeoDeployError, match=r"needs 'missing.onnx'"):
        assemble_context(tmp_path / "ctx", "base", wheel=fake_wheel, wheelhouse=False, files=["missing.onnx"],
                         base_dir=tmp_path)
    with pytest.raises(KumeoDeployError, match="unknown image class"):
        assemble_context(tmp_path / "ctx", "gpu", wheel=fake_wheel, wheelhouse=False)


def test_wheel_version_and_repository_names(tmp_path):
    assert wheel_version("dist/kumeo_iac-1.2.3-py3-none-any.whl") == "1.2.3"
    with pytest.raises(KumeoDeployError):
        wheel_version("other-1.0-py3-none-any.whl")
    assert repository_of("ghcr.io/kumeo/agent-base:0.1.0") == "ghcr.io/kumeo/agent-base"
    assert repository_of("localhost:5000/agent@sha256:" + "0" * 64) == "localhost:5000/agent"
    assert repository_of("localhost:5000/agent") == "localhost:5000/agent"


# -- the Dockerfiles ------------------------------------------------------------------------------------------


def stages(dockerfile: str) -> list[list[str]]:
    """Instructions (continuation lines joined, comments dropped) grouped by stage; index 0 is before any FROM."""
    text = re.sub(r"\\\n\s*", " ", dockerfile)
    result: list[list[str]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        result[-1].append(line)
    return result


def test_one_dockerfile_is_multi_stage_non_root_with_the_runtime_entrypoint():
    paths = {dockerfile_for(image_class) for image_class in IMAGE_CLASSES}
    assert paths == {runtime_images_dir() / "Dockerfile"}  # one Dockerfile; the class is a build argument
    preamble, builder, final = stages(next(iter(paths)).read_text())
    assert preamble == [f"ARG KUMEO_BASE_IMAGE={LOCAL_BASE_IMAGE}"]
    assert builder[0] == "FROM ${KUMEO_BASE_IMAGE} AS builder"
    assert final[0] == "FROM ${KUMEO_BASE_IMAGE}"
    # Without build arguments it builds the base class.
    assert "ARG KUMEO_EXTRAS=runtime,local" in builder
    assert 'ARG KUMEO_IMPORT_CHECK="kumeo_iac.runtime, nats"' in builder
    assert "ARG KUMEO_IMAGE_CLASS=base" in final
    assert '"kumeo-iac[${KUMEO_EXTRAS}]"' in " ".join(builder)
    assert 'python -c "import ${KUMEO_IMPORT_CHECK}"' in " ".join(builder)
    assert "--find-links /tmp/wheelhouse" in " ".join(builder)
    # The final stage copies the virtualenv and installs nothing: no pip, no apt, no compilers.
    body = " ".join(final)
    assert "COPY --from=builder /opt/kumeo /opt/kumeo" in final
    for forbidden in ("pip install", "apt-get", "apt ", "gcc", "g++", "build-essential", "make ", "wheelhouse"):
        assert forbidden not in body, forbidden
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] == RUN_AS
    assert final[-1] == 'ENTRYPOINT ["python", "-m", "kumeo_iac.runtime"]'
    assert 'ENV PATH=/opt/kumeo/bin:$PATH' in body
    for label in ("org.opencontainers.image.source", "org.opencontainers.image.version",
                  "org.opencontainers.image.revision"):
        assert label + "=" in body
    assert 'kumeo.dev/image-class="${KUMEO_IMAGE_CLASS}"' in body
    assert 'org.opencontainers.image.title="kumeo-${KUMEO_IMAGE_CLASS}"' in body
    assert "groupadd --system --gid 10001" in body and "useradd --system --uid 10001" in body


@pytest.mark.parametrize("image_class", IMAGE_CLASSES)
def test_each_class_builds_the_one_dockerfile_with_its_own_arguments(image_class, tmp_path, fake_wheel):
    args = class_build_args(image_class)
    assert args["KUMEO_IMAGE_CLASS"] == image_class
    assert args["KUMEO_EXTRAS"] == IMAGE_EXTRAS[image_class]
    assert args["KUMEO_IMPORT_CHECK"] == IMAGE_IMPORT_CHECKS[image_class]
    # every argument the class sets is one the Dockerfile declares
    declared = {line.split()[1].split("=")[0] for stage in stages(dockerfile_for(image_class).read_text())
                for line in stage if line.startswith("ARG ")}
    assert set(args) <= declared
    context = assemble_context(tmp_path / "ctx", image_class, wheel=fake_wheel, wheelhouse=False)
    assert {k: context.build_args[k] for k in args} == args


def test_two_classes_never_share_a_tag(tmp_path, fake_wheel):
    tags = {assemble_context(tmp_path / c, c, wheel=fake_wheel, wheelhouse=False).tag for c in IMAGE_CLASSES}
    assert len(tags) == len(IMAGE_CLASSES)


def test_an_unknown_class_has_no_build_arguments():
    with pytest.raises(KumeoDeployError, match="unknown image class 'gpu'; expected one of base, ml, llm"):
        class_build_args("gpu")


def test_image_extras_exist_in_pyproject():
    root = project_root()
    assert root is not None
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for image_class, wanted in IMAGE_EXTRAS.items():
        for extra in wanted.split(","):
            assert extra in extras, (image_class, extra)
    assert runtime_images_dir() == root / "runtime_images"


def test_scripts_are_executable_and_strict():
    root = project_root()
    assert root is not None
    for script in (root / "scripts/podman-service.sh", root / "runtime_images/scripts/build-base-rootfs.sh"):
        assert os.access(script, os.X_OK), script
        assert "set -euo pipefail" in script.read_text()


# -- the Image provider against a fake engine -----------------------------------------------------------------

pytest.importorskip("pulumi")
from kumeo_providers.image import ImageProvider  # noqa: E402 - needs pulumi, checked just above

MANIFEST = "sha256:" + "a" * 64
PUSHED = "sha256:" + "b" * 64


class FakeEngine:
    """Records builds and pushes; knows the images it built (and those a test puts in ``known``)."""

    # shared by every engine a test makes: the provider creates its own, the test reads them here
    instances: ClassVar[list[FakeEngine]] = []
    known: ClassVar[dict[str, dict[str, Any]]] = {}
    repo_digests: ClassVar[list[str]] = []

    def __init__(self, docker_host: str | None = None, timeout_s: float = 0) -> None:
        self.docker_host = docker_host
        self.builds: list[dict[str, Any]] = []
        self.pushes: list[tuple[str, str, Any]] = []
        self.removed: list[str] = []
        FakeEngine.instances.append(self)

    def inspect(self, name: str) -> dict[str, Any] | None:
        return FakeEngine.known.get(name)

    def build(self, context: str, **kwargs: Any) -> list[str]:
        self.builds.append({"context": context, **kwargs})
        FakeEngine.known[kwargs["tag"]] = {"Id": "sha256:" + "c" * 64, "RepoDigests": list(FakeEngine.repo_digests)}
        return ["built"]

    def push(self, repository: str, tag: str, auth: Any) -> str | None:
        self.pushes.append((repository, tag, auth))
        return PUSHED

    def remove(self, name: str) -> None:
        self.removed.append(name)
        FakeEngine.known.pop(name, None)


@pytest.fixture
def provider(monkeypatch) -> ImageProvider:
    FakeEngine.instances, FakeEngine.known, FakeEngine.repo_digests = [], {}, []
    monkeypatch.setattr(ImageProvider, "engine_factory", FakeEngine)
    return ImageProvider()


def image_props(context: Path, **extra: Any) -> dict[str, Any]:
    return {"context": str(context), "repository": "localhost/kumeo-agent-base", "dockerfile": "Dockerfile",
            "build_args": {"KUMEO_VERSION": "0.1.0"}, "labels": {"kumeo.dev/workflow": "demo"}, **extra}


def test_check_computes_the_content_tag_and_diff_sees_no_change_for_the_same_context(tmp_path, provider):
    one = write_tree(tmp_path / "one", TREE)
    two = write_tree(tmp_path / "two", TREE)
    first = provider.check({}, image_props(one))
    assert first.failures == []
    tag = first.inputs["tag"]
    assert tag == content_tag(one, build_args={"KUMEO_VERSION": "0.1.0"}, labels={"kumeo.dev/workflow": "demo"})
    outs = provider.create(first.inputs).outs
    second = provider.check(outs, image_props(two))  # the same files assembled elsewhere
    assert second.inputs["tag"] == tag
    diff = provider.diff(outs["image_name"], outs, second.inputs)
    assert diff.changes is False and not diff.replaces

    (two / "files/models/m.onnx").write_bytes(b"new model")
    changed = provider.check(outs, image_props(two))
    diff = provider.diff(outs["image_name"], outs, changed.inputs)
    assert diff.changes is True and "tag" in diff.replaces and diff.delete_before_replace is False


def test_create_builds_once_and_reuses_an_image_that_already_has_the_tag(tmp_path, provider):
    context = write_tree(tmp_path / "ctx", TREE)
    checked = provider.check({}, image_props(context, isolation="chroot", docker_host="unix:///x.sock")).inputs
    outs = provider.create(checked).outs
    (engine,) = FakeEngine.instances
    assert engine.docker_host == "unix:///x.sock"
    assert [b["tag"] for b in engine.builds] == [f"localhost/kumeo-agent-base:{checked['tag']}"]
    assert engine.builds[0]["isolation"] == "chroot" and engine.builds[0]["build_args"] == {"KUMEO_VERSION": "0.1.0"}
    assert outs["built"] is True and outs["image_name"] == f"localhost/kumeo-agent-base:{checked['tag']}"
    # No manifest digest known (Docker's local images): the digest falls back to the image id, the ref to the tag.
    assert outs["digest"] == outs["image_id"] == "sha256:" + "c" * 64
    assert outs["repo_digest"] == outs["image_id"] and outs["ref"] == outs["image_name"]

    again = provider.create(checked).outs
    assert FakeEngine.instances[-1].builds == [] and again["built"] is False
    assert again["tag"] == outs["tag"]


def test_a_local_repo_digest_pins_the_ref(tmp_path, provider):
    FakeEngine.repo_digests = [f"quay.io/other@{PUSHED}", f"localhost/kumeo-agent-base@{MANIFEST}"]
    context = write_tree(tmp_path / "ctx", TREE)
    outs = provider.create(provider.check({}, image_props(context, repository="kumeo-agent-base")).inputs).outs
    assert outs["digest"] == MANIFEST
    assert outs["repo_digest"] == f"kumeo-agent-base@{MANIFEST}"
    assert outs["ref"] == f"kumeo-agent-base:{outs['tag']}@{MANIFEST}"


def test_push_uses_the_registry_digest_and_never_outputs_the_password(tmp_path, provider):
    context = write_tree(tmp_path / "ctx", TREE)
    registry = {"server": "registry.example:5000", "username": "ci", "password": "s3cret"}
    props = image_props(context, repository="registry.example:5000/kumeo/agent-base", push=True, registry=registry)
    outs = provider.create(provider.check({}, props).inputs).outs
    (engine,) = FakeEngine.instances
    assert engine.pushes == [("registry.example:5000/kumeo/agent-base", outs["tag"],
                              {"username": "ci", "password": "s3cret", "serveraddress": "registry.example:5000"})]
    assert outs["digest"] == PUSHED and outs["pushed"] is True
    assert outs["ref"] == f"registry.example:5000/kumeo/agent-base:{outs['tag']}@{PUSHED}"
    assert "s3cret" not in repr(outs)


def test_turning_push_on_is_an_update_not_a_replacement(tmp_path, provider):
    context = write_tree(tmp_path / "ctx", TREE)
    props = image_props(context, repository="registry.example/kumeo/agent-base")
    outs = provider.create(provider.check({}, props).inputs).outs
    news = provider.check(outs, {**props, "push": True}).inputs
    diff = provider.diff(outs["image_name"], outs, news)
    assert diff.changes is True and diff.replaces == []


def test_check_reports_bad_inputs(tmp_path, provider):
    context = write_tree(tmp_path / "ctx", TREE)
    failures = {f.property: f.reason for f in provider.check({}, {"repository": "Bad Name:tag"}).failures}
    assert set(failures) == {"repository", "context"}
    missing = provider.check({}, image_props(tmp_path / "nowhere")).failures
    assert [f.property for f in missing] == ["context"]
    no_dockerfile = provider.check({}, image_props(context, dockerfile="Missing")).failures
    assert [f.property for f in no_dockerfile] == ["dockerfile"]
    push_local = provider.check({}, image_props(context, repository="agent", push=True)).failures
    assert [f.property for f in push_local] == ["repository"]


def test_a_context_changed_between_check_and_create_fails_loudly(tmp_path, provider):
    context = write_tree(tmp_path / "ctx", TREE)
    checked = provider.check({}, image_props(context)).inputs
    (context / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(KumeoDeployError, match="changed while Pulumi was running"):
        provider.create(checked)


def test_delete_untags_locally_and_read_drops_a_vanished_local_image(tmp_path, provider):
    context = write_tree(tmp_path / "ctx", TREE)
    outs = provider.create(provider.check({}, image_props(context)).inputs).outs
    provider.delete(outs["image_name"], outs)
    assert FakeEngine.instances[-1].removed == [outs["image_name"]]
    assert provider.read(outs["image_name"], outs).id == ""


# -- the Workflow component -----------------------------------------------------------------------------------


DYNAMIC = "pulumi-python:dynamic:Resource"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def ml_and_base_spec():
    from kumeo_iac.spec import NATS, DataProcessor, MLModel, Ref, WorkflowSpec

    normalize = DataProcessor(id="normalize", input=Ref(path=("source",)), config={"required_fields": ["id"]})
    score = MLModel(id="score", input=normalize.output, model="models/m.onnx")
    return WorkflowSpec(name="Demo", source=NATS("demo.in"), target=NATS("demo.out"), agents=[normalize, score])


def report_image_refs(pulumi_mocks) -> None:
    """Make the mocked Image resources report a pinned ``ref`` (``repository:tag@sha256:…``), as a build does."""
    outputs_for = pulumi_mocks.outputs_for

    def with_refs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        outs = outputs_for(type_, name, inputs)
        if type_ == DYNAMIC and "-image-" in name:
            outs["ref"] = f"{inputs['repository']}:{inputs.get('tag') or 'tag'}@{MANIFEST}"
        return outs

    pulumi_mocks.outputs_for = with_refs


def test_workflow_builds_one_image_per_class_and_pins_deployments(tmp_path, fake_wheel, pulumi_mocks):
    from kumeo_iac.components import Workflow

    write_tree(tmp_path / "wf", {"models/m.onnx": b"onnx"})
    report_image_refs(pulumi_mocks)
    build = ImageBuild(wheel=str(fake_wheel), wheelhouse=False, work_dir=str(tmp_path / "build"), isolation="chroot")
    created = {}

    def program():
        created["wf"] = Workflow("demo", ml_and_base_spec(), manage_jetstream=False, base_dir=str(tmp_path / "wf"),
                                 build_images=build)

    resources = pulumi_mocks.run(program)
    images = [r for r in resources if r.type == DYNAMIC and "-image-" in r.name]
    assert sorted(r.name for r in images) == ["demo-image-base", "demo-image-ml"]
    ml = next(r for r in images if r.name == "demo-image-ml")
    assert ml.inputs["repository"] == "ghcr.io/kumeo/ml-runtime"
    assert ml.inputs["isolation"] == "chroot" and ml.inputs["labels"] == {"kumeo.dev/workflow": "demo"}
    assert (Path(ml.inputs["context"]) / "files/models/m.onnx").read_bytes() == b"onnx"
    assert not (tmp_path / "build/base/files/models").exists()  # each class gets only its agents' files
    deployments = {r.name: r for r in resources if r.type == DEPLOYMENT}
    for deployment in deployments.values():
        (container,) = deployment.get("spec.template.spec.containers")
        assert container["image"].endswith("@" + MANIFEST), container["image"]
        assert re.match(r"ghcr\.io/kumeo/(agent-base|ml-runtime):", container["image"])
        image_urns = {r.urn for r in images}
        assert image_urns & set(deployment.dependencies)
    # The Plan keeps the names it was compiled with.
    assert all(not a.image.endswith(MANIFEST) for a in created["wf"].plan.agents)



def test_an_edge_pod_runs_the_built_image_in_both_containers(tmp_path, fake_wheel, pulumi_mocks):
    from kumeo_iac.components import Workflow
    from kumeo_iac.spec import NATS, DataProcessor, Deployment, WorkflowSpec

    report_image_refs(pulumi_mocks)
    spec = WorkflowSpec(name="Site", sources=[NATS("site.in")], targets=[NATS("site.out")],
                        agents=[DataProcessor(id="clean", input="source", config={"required_fields": ["id"]})],
                        deployment=Deployment(profile="edge", leaf={"hub": "nats-leaf://hub.example.com:7422",
                                                                    "credentials_secret": "site-leaf"}))
    build = ImageBuild(wheel=str(fake_wheel), wheelhouse=False, work_dir=str(tmp_path / "build"), isolation="chroot")
    resources = pulumi_mocks.run(lambda: Workflow("site", spec, manage_jetstream=False, build_images=build))
    (image,) = [r for r in resources if r.type == DYNAMIC and "-image-" in r.name]
    (pod,) = [r for r in resources if r.type == "kubernetes:apps/v1:StatefulSet"]
    images = {c["name"]: c["image"] for c in pod.get("spec.template.spec.containers")}
    assert set(images) == {"nats", "edge"}
    assert all(ref.startswith("ghcr.io/kumeo/agent-base:") and ref.endswith("@" + MANIFEST) for ref in images.values())
    assert image.urn in pod.dependencies


def test_workflow_without_build_images_creates_no_image(tmp_path, pulumi_mocks):
    from kumeo_iac.components import Workflow

    write_tree(tmp_path, {"models/m.onnx": b"onnx"})
    created = {}

    def program():
        created["wf"] = Workflow("demo", ml_and_base_spec(), manage_jetstream=False, base_dir=str(tmp_path))

    resources = pulumi_mocks.run(program)
    assert not [r for r in resources if "-image-" in r.name] and created["wf"].images == {}
    plan_images = {a.id: a.image for a in created["wf"].plan.agents}
    for deployment in (r for r in resources if r.type == DEPLOYMENT):
        (container,) = deployment.get("spec.template.spec.containers")
        assert container["image"] in plan_images.values()
