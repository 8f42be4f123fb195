"""The policy pack in ``policy/`` run by the engine (``pulumi preview --policy-pack``) on a deployed fraud-detection
stack: with every image pinned by digest the preview passes; with one image left on a tag it is refused, naming the
policy and the image.

The pack's files are used as they are, copied next to a ``venv`` that is the test virtualenv (PulumiPolicy.yaml
says ``virtualenv: venv``; left to itself Pulumi would create that venv and pip-install requirements.txt from the
network on first use, which these tests must not do).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from engine_support import POLICY_DIR, VENV, Stack

pytestmark = [pytest.mark.nats, pytest.mark.timeout(900)]

DIGEST = "@sha256:" + "0123456789abcdef" * 4
PINNED = (
    f'base_images: {{ default: "ghcr.io/kumeo/kumeo-base{DIGEST}", ml: "ghcr.io/kumeo/kumeo-ml{DIGEST}", '
    f'llm: "ghcr.io/kumeo/kumeo-llm{DIGEST}" }},'
)
UNPINNED_LLM_IMAGE = "ghcr.io/kumeo/kumeo-llm:latest"


@pytest.fixture(scope="module")
def policy_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("policy-pack") / "policy"
    shutil.copytree(POLICY_DIR, target, ignore=shutil.ignore_patterns("venv", "__pycache__", "*.pyc"))
    (target / "venv").symlink_to(VENV)
    return target


@pytest.fixture(scope="module")
def stack(engine_env: dict[str, str], jetstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    root = tmp_path_factory.mktemp("policy")
    stack = Stack(root, engine_env, project="kumeo-engine-policy").create(
        {"kumeo:natsUrl": jetstream.url, "kumeo:jetstreamUrl": jetstream.url, "kumeo:awaitKubernetes": "false"}
    )
    text = stack.workflow_file.read_text()
    assert "  deployment: {\n" in text
    stack.workflow_file.write_text(text.replace("  deployment: {\n", f"  deployment: {{\n    {PINNED}\n", 1))
    # Deployed first, as the stack a pull request's preview runs against (CI previews an existing stack).
    stack.up()
    return stack


def test_a_stack_with_pinned_images_passes_the_policy_pack(stack: Stack, policy_pack: Path) -> None:
    result = stack.pulumi("preview", "--policy-pack", str(policy_pack), check=False)
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown
    # The pack ran (the engine evaluates unchanged resources too) and reported nothing.
    assert "kumeo-security@" in result.stdout, shown
    assert "[mandatory]" not in shown and "❌" not in shown, shown


def test_an_image_on_a_tag_is_refused_by_the_policy_pack(stack: Stack, policy_pack: Path) -> None:
    text = stack.workflow_file.read_text()
    stack.workflow_file.write_text(text.replace(f"ghcr.io/kumeo/kumeo-llm{DIGEST}", UNPINNED_LLM_IMAGE))
    result = stack.pulumi("preview", "--policy-pack", str(policy_pack), check=False)
    shown = result.stdout + result.stderr
    assert result.returncode != 0, shown
    # `- [mandatory]  kumeo-images-pinned-by-digest  (kubernetes:apps/v1:Deployment: fraud-deployment-…-explain)`
    violations = re.findall(r"\[mandatory\]\s+(\S+)\s+\(([^)]*)\)", shown)
    assert len(violations) == 1, shown
    ((policy, resource),) = violations
    assert policy == "kumeo-images-pinned-by-digest"
    assert resource.startswith("kubernetes:apps/v1:Deployment") and resource.endswith("fraud-detection-explain")
    assert f"uses image '{UNPINNED_LLM_IMAGE}', which is not pinned by digest" in shown, shown
