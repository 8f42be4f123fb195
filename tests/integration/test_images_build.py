"""A real agent image built through the Image provider's create path, against podman's Docker-compatible API.

Containers cannot run here, but podman builds with chroot isolation and serves the Docker API on a unix socket
(scripts/podman-service.sh). The base image is Debian bookworm's python3.11 from a debootstrapped root filesystem
(runtime_images/scripts/build-base-rootfs.sh, ~1 min once; kept in podman's storage, so later runs skip it).
Skipped, saying why, only when podman (or debootstrap, for the base image) is not installed or its API does not
start — `make test` installs both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kumeo_iac.images import assemble_context, build_project_wheel, project_root

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPOSITORY = "localhost/kumeo-test-agent-base"
ENTRYPOINT = ["python", "-m", "kumeo_iac.runtime"]
#: Bounds on this machine (2 cores): the base image ~1 min, an agent image ~40 s; generous for a slow mirror.
BASE_IMAGE_BUDGET_S = 420
BUILD_BUDGET_S = 300

ROOT = project_root() or Path(__file__).resolve().parents[2]
SERVICE = ROOT / "scripts" / "podman-service.sh"
BASE_SCRIPT = ROOT / "runtime_images" / "scripts" / "build-base-rootfs.sh"


def _podman_flags() -> list[str]:
    return subprocess.run([str(SERVICE), "flags"], capture_output=True, text=True, check=True).stdout.split()


@pytest.fixture(scope="session")
def podman_socket(tmp_path_factory) -> Any:
    """podman's Docker-compatible API on a socket of this session; its storage (and the base image) persists."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install -y podman; `make test` does it): cannot build images")
    socket = tmp_path_factory.mktemp("podman") / "podman.sock"
    started = subprocess.run([str(SERVICE), "start", str(socket)], capture_output=True, text=True, timeout=60)
    if started.returncode != 0:
        pytest.skip(f"podman's API did not start on {socket}: {started.stderr.strip()[-500:]}")
    try:
        yield f"unix://{socket}"
    finally:
        subprocess.run([str(SERVICE), "stop", str(socket)], capture_output=True, timeout=30)


@pytest.fixture(scope="session")
def base_image(podman_socket: str) -> str:
    """The local Python base image, built once (debootstrap + podman import) and then reused from storage."""
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed (apt-get install -y debootstrap): cannot build the base image")
    started = time.monotonic()
    done = subprocess.run([str(BASE_SCRIPT)], capture_output=True, text=True, timeout=BASE_IMAGE_BUDGET_S)
    assert done.returncode == 0, f"building the base image failed:\n{done.stdout}\n{done.stderr}"
    print(f"\nbase image: {done.stdout.strip()} ({time.monotonic() - started:.1f} s)")
    return "localhost/kumeo-python:3.11-bookworm"


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory) -> Path:
    return build_project_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def engine(podman_socket: str) -> Any:
    try:
        from kumeo_providers.image import ImageEngine
    except ImportError as exc:  # the docker SDK is part of the test extra
        pytest.fail(f"the Image provider needs the docker SDK (pip install docker): {exc}")
    return ImageEngine(podman_socket)


def _props(context: Path, podman_socket: str, build_args: Any) -> dict[str, Any]:
    return {
        "context": str(context),
        "repository": REPOSITORY,
        "dockerfile": "Dockerfile",
        "build_args": dict(build_args),
        "labels": {"kumeo.dev/workflow": "integration"},
        "isolation": "chroot",
        "docker_host": podman_socket,
        "timeout_s": BUILD_BUDGET_S,
    }


@pytest.fixture(scope="session")
def built(tmp_path_factory, podman_socket, base_image, project_wheel, engine) -> dict[str, Any]:
    """One real build of the base agent image through ImageProvider.check + create (the image removed first)."""
    from kumeo_providers.image import ImageProvider

    context = assemble_context(tmp_path_factory.mktemp("ctx-a") / "base", "base", wheel=project_wheel)
    provider = ImageProvider()
    checked = provider.check({}, _props(context.path, podman_socket, context.build_args))
    assert checked.failures == []
    engine.remove(f"{REPOSITORY}:{checked.inputs['tag']}")  # a cached image from an earlier run would skip the build
    started = time.monotonic()
    outs = provider.create(checked.inputs).outs
    seconds = time.monotonic() - started
    print(f"\nagent image {outs['image_name']} built in {seconds:.1f} s")
    return {"outs": outs, "seconds": seconds, "checked": checked.inputs, "context": context}


def test_create_builds_a_non_root_agent_image_with_the_runtime_entrypoint(built, engine):
    outs = built["outs"]
    assert outs["built"] is True
    assert built["seconds"] < BUILD_BUDGET_S
    assert outs["image_name"] == f"{REPOSITORY}:{outs['tag']}" and len(outs["tag"]) == 16
    info = engine.inspect(outs["image_name"])
    assert info is not None
    config = info["Config"]
    assert config["User"].split(":")[0] == "10001"
    assert config["Entrypoint"] == ENTRYPOINT
    assert "/opt/kumeo/bin" in next(e for e in config["Env"] if e.startswith("PATH="))
    labels = config["Labels"]
    assert labels["kumeo.dev/image-class"] == "base"
    assert labels["kumeo.dev/workflow"] == "integration"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert "org.opencontainers.image.revision" in labels
    # podman records a manifest digest for local images: the ref is pinned to it.
    image_id = info["Id"] if info["Id"].startswith("sha256:") else f"sha256:{info['Id']}"
    assert outs["image_id"] == image_id
    assert outs["digest"].startswith("sha256:") and outs["repo_digest"] == f"{REPOSITORY}@{outs['digest']}"
    assert outs["ref"] == f"{outs['image_name']}@{outs['digest']}"


def test_image_holds_a_working_venv_and_no_build_tools(built):
    """Containers cannot run here, so the image's file system is mounted and its Python run under chroot."""
    flags = _podman_flags()
    name = built["outs"]["image_name"]
    mount = subprocess.run(["podman", *flags, "image", "mount", name], capture_output=True, text=True, timeout=60)
    assert mount.returncode == 0, mount.stderr
    root = Path(mount.stdout.strip())
    try:
        for tool in ("gcc", "cc", "g++", "make"):
            assert not (root / "usr/bin" / tool).exists(), tool
        assert not list((root / "opt/kumeo/lib").glob("python3*/site-packages/pip")), "pip left in the venv"
        assert (root / "var/lib/kumeo/files").is_dir()
        probe = subprocess.run(
            ["chroot", "--userspec=10001:10001", str(root), "/opt/kumeo/bin/python", "-c",
             "import os, kumeo_iac.runtime, nats, pydantic; print(os.getuid())"],
            capture_output=True, text=True, timeout=120,
        )
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.strip() == "10001"
    finally:
        subprocess.run(["podman", *flags, "image", "unmount", name], capture_output=True, timeout=60)


def test_same_context_same_tag_no_diff_and_a_rebuild_keeps_the_tag(tmp_path, built, podman_socket, project_wheel,
                                                                    engine):
    from kumeo_providers.image import ImageProvider

    provider = ImageProvider()
    outs = built["outs"]
    again = assemble_context(tmp_path / "ctx-b" / "base", "base", wheel=project_wheel)  # assembled anew, elsewhere
    checked = provider.check(outs, _props(again.path, podman_socket, again.build_args))
    assert checked.failures == []
    assert checked.inputs["tag"] == outs["tag"], _differences(built["context"].path, again.path)
    assert checked.inputs["content_hash"] == outs["content_hash"]
    diff = provider.diff(outs["image_name"], outs, checked.inputs)
    assert diff.changes is False, diff

    # Building the same context again (image removed) gives the same tag.
    engine.remove(outs["image_name"])
    started = time.monotonic()
    rebuilt = provider.create(checked.inputs).outs
    print(f"\nrebuild of {rebuilt['image_name']}: {time.monotonic() - started:.1f} s")
    assert rebuilt["built"] is True and rebuilt["image_name"] == outs["image_name"]
    assert engine.inspect(rebuilt["image_name"]) is not None

    # One byte of the Dockerfile changed: a different tag, and the diff replaces the image.
    dockerfile = again.path / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# changed\n")
    changed = provider.check(rebuilt, _props(again.path, podman_socket, again.build_args))
    assert changed.inputs["tag"] != outs["tag"]
    assert "tag" in provider.diff(rebuilt["image_name"], rebuilt, changed.inputs).replaces


def _differences(one: Path, two: Path) -> str:
    """Which files differ between two contexts (for a readable failure)."""
    import hashlib

    from kumeo_iac.images import context_files

    def digests(root: Path) -> dict[str, str]:
        return {f: hashlib.sha256((root / f).read_bytes()).hexdigest()[:12] if (root / f).is_file() else "dir"
                for f in context_files(root)}

    a, b = digests(one), digests(two)
    return "contexts differ: " + ", ".join(f"{k}: {a.get(k)} != {b.get(k)}" for k in sorted(set(a) | set(b))
                                           if a.get(k) != b.get(k))


def test_base_image_is_reused(base_image):
    """A second run of the base image script finds the image and does nothing."""
    started = time.monotonic()
    done = subprocess.run([str(BASE_SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "nothing to do" in done.stdout
    assert time.monotonic() - started < 10
    assert os.path.exists(BASE_SCRIPT)
