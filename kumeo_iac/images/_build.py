"""What a workflow's images are made of: one build context per image class its agents use."""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kumeo_iac.images._context import IMAGE_CLASSES, BuildContext, assemble_context, build_project_wheel


@dataclasses.dataclass(frozen=True)
class ImageBuild:
    """How the Workflow component builds its agent images: ``Workflow(..., build_images=ImageBuild(push=True))``.

    One image per image class the workflow uses (``base``, ``ml``, ``llm``), tagged with the content hash of its
    build context; Deployments are pinned to ``repository:tag@sha256:…`` (or ``repository:tag`` while the engine
    knows no manifest digest for a local image).
    """

    #: Push to the registry after building (``kumeo:pushImages``); the pinned reference then uses the pushed digest.
    push: bool = False
    #: Repository per image class; default: the repository of the Plan's image for that class (tag dropped).
    repositories: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: ``KUMEO_BASE_IMAGE`` for the Dockerfiles, e.g. ``python:3.11-slim``; default: the locally built base.
    base_image: str | None = None
    #: Ship every dependency as wheels (offline, reproducible builds); False lets pip in the build use the index.
    wheelhouse: bool = True
    #: Registry login for pushing: ``{"server": …, "username": …, "password": <secret>}``.
    registry: Mapping[str, Any] | None = None
    #: Build isolation for podman's API (``chroot`` where containers cannot run); default ``$KUMEO_BUILD_ISOLATION``.
    isolation: str | None = None
    #: The engine's API (``unix:///…/podman.sock``); default ``$DOCKER_HOST``.
    docker_host: str | None = None
    #: Where contexts are assembled; default ``<workflow dir>/.kumeo/images/<workflow>/<class>``.
    work_dir: str | None = None
    #: A prebuilt kumeo-iac wheel; default: built from the source checkout Kumeo is imported from.
    wheel: str | None = None
    #: A pip constraints file pinning the wheelhouse's versions.
    constraints: str | None = None
    #: ``org.opencontainers.image.revision`` (a commit id); part of the tag, so leave it unset to reuse images.
    revision: str | None = None
    #: The Python 3.11 that collects the wheelhouse.
    python: str = sys.executable
    #: Longest a build (or push) may take.
    timeout_s: float = 1800.0


def classes_used(plan: Any) -> list[str]:
    """The image classes a WorkflowPlan's agents use, in canonical order."""
    used = {a.image_class for a in plan.agents}
    return [c for c in IMAGE_CLASSES if c in used]


def repository_of(image: str) -> str:
    """``registry/name:tag`` or ``name@sha256:…`` without its tag or digest."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def class_repository(plan: Any, image_class: str, build: ImageBuild) -> str:
    """The repository an image class is built into (see :attr:`ImageBuild.repositories`)."""
    if image_class in build.repositories:
        return build.repositories[image_class]
    counts = collections.Counter(repository_of(a.image) for a in plan.agents if a.image_class == image_class)
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


@functools.lru_cache(maxsize=4)
def _project_wheel(out_dir: str, python: str) -> Path:
    return build_project_wheel(out_dir, python=python)


def workflow_contexts(plan: Any, build: ImageBuild, base_dir: str | None) -> dict[str, BuildContext]:
    """Assemble a build context for every image class ``plan`` uses; the files each class's agents read go in."""
    root = Path(build.work_dir) if build.work_dir else Path(base_dir or ".") / ".kumeo" / "images" / plan.slug
    wheel = build.wheel
    if wheel is None:
        # One wheel per process and source tree: previews and `up` rebuild nothing they already built.
        key = hashlib.sha256(os.fspath(Path(base_dir or ".").resolve()).encode()).hexdigest()[:12]
        wheel = os.fspath(_project_wheel(os.path.join(tempfile.gettempdir(), f"kumeo-wheel-{key}"), build.python))
    contexts: dict[str, BuildContext] = {}
    for image_class in classes_used(plan):
        files = sorted({f for a in plan.agents if a.image_class == image_class for f in a.files})
        contexts[image_class] = assemble_context(
            root / image_class,
            image_class,
            wheel=wheel,
            wheelhouse=build.wheelhouse,
            files=files,
            base_dir=base_dir,
            base_image=build.base_image,
            revision=build.revision,
            python=build.python,
            constraints=build.constraints,
        )
    return contexts
