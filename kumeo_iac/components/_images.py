"""Agent images for the Workflow component: one :class:`kumeo_providers.Image` per image class the workflow uses,
and Deployments pinned to what was built (``repository:tag@sha256:…``).

Opt-in (``Workflow(..., build_images=True)`` or ``pulumi config set kumeo:buildImages true``), since most teams build
and push images in CI and deploy the names the Plan already holds.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pulumi

from kumeo_iac.compile import WorkflowPlan
from kumeo_iac.images import ImageBuild, class_repository, repository_of, workflow_contexts


def image_build(value: Any, push: bool | None) -> ImageBuild:
    """The ImageBuild for a ``build_images`` argument (True or an ImageBuild) and the ``kumeo:pushImages`` config."""
    build = value if isinstance(value, ImageBuild) else ImageBuild()
    if push is not None and not isinstance(value, ImageBuild):
        build = ImageBuild(**{**build.__dict__, "push": push})
    return build


def workflow_images(
    resource_name: str, plan: WorkflowPlan, build: ImageBuild, base_dir: str | None, opts: pulumi.ResourceOptions
) -> dict[str, tuple[pulumi.Resource, str]]:
    """Image resources by image class, each with the repository it builds into."""
    from kumeo_providers.image import Image, ImageArgs

    contexts = workflow_contexts(plan, build, base_dir)
    labels = {"kumeo.dev/workflow": plan.slug}
    isolation = build.isolation or os.environ.get("KUMEO_BUILD_ISOLATION") or None
    images: dict[str, tuple[pulumi.Resource, str]] = {}
    for image_class, context in contexts.items():
        repository = class_repository(plan, image_class, build)
        image = Image(
            f"{resource_name}-image-{image_class}",
            ImageArgs(
                context=os.fspath(context.path.resolve()),
                repository=repository,
                dockerfile=context.dockerfile,
                build_args=dict(context.build_args),
                labels={**labels, **context.labels},
                push=build.push,
                registry=dict(build.registry) if build.registry else None,
                isolation=isolation,
                docker_host=build.docker_host,
                timeout_s=build.timeout_s,
            ),
            opts,
        )
        images[image_class] = (image, repository)
    return images


def pin_image(
    plan: WorkflowPlan, obj: dict[str, Any], images: dict[str, tuple[pulumi.Resource, str]]
) -> tuple[dict[str, Any], list[pulumi.Resource]]:
    """A workload whose containers running an agent image of a built class use the built image's ``ref``, and the
    Images it now depends on: an agent's Deployment or StatefulSet, and an edge pod (both of its containers run the
    image of its richest agent class).

    Agents given an image of their own (a repository other than their class's) keep it; the Plan is not modified.
    """
    if obj.get("kind") not in ("Deployment", "StatefulSet") or not images:
        return obj, []
    built = {a.image: images[a.image_class] for a in plan.agents
             if a.image_class in images and repository_of(a.image) == images[a.image_class][1]}
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    if not any(c.get("image") in built for c in containers):
        return obj, []
    pinned = json.loads(json.dumps(obj))  # a private copy: the Plan stays untouched
    used: list[pulumi.Resource] = []
    for container in pinned["spec"]["template"]["spec"]["containers"]:
        if container.get("image") in built:
            image, _ = built[container["image"]]
            container["image"] = image.ref  # type: ignore[attr-defined]
            if image not in used:
                used.append(image)
    return pinned, used
