"""Agent images: assembling a build context (Dockerfile + the kumeo-iac wheel + files) and its content hash.

    from kumeo_iac.images import assemble_context, build_project_wheel

    wheel = build_project_wheel("dist")
    context = assemble_context(".kumeo/images/base", "base", wheel=wheel)
    context.tag        # '3f9a…' (16 hex digits): same context → same tag → no rebuild

The Pulumi resource that builds and pushes a context is :class:`kumeo_providers.Image`; the Workflow component
creates one per image class when asked to (``build_images=True`` or ``kumeo:buildImages``). Nothing here imports
Pulumi or the docker SDK.
"""

from kumeo_iac.images._build import ImageBuild, class_repository, classes_used, repository_of, workflow_contexts
from kumeo_iac.images._context import (
    CONTEXT_MARKER,
    IMAGE_CLASSES,
    IMAGE_DESCRIPTIONS,
    IMAGE_EXTRAS,
    IMAGE_IMPORT_CHECKS,
    IMAGE_PYTHON,
    LOCAL_BASE_IMAGE,
    NATS_SERVER_EXTRA,
    REGISTRY_BASE_IMAGE,
    SOURCE_DATE_EPOCH,
    BuildContext,
    assemble_context,
    build_project_wheel,
    build_wheelhouse,
    class_build_args,
    context_tarball,
    dockerfile_for,
    project_root,
    runtime_images_dir,
    wheel_version,
)
from kumeo_iac.images._hash import HASH_VERSION, TAG_LENGTH, content_tag, context_digest, context_files

__all__ = [
    "CONTEXT_MARKER",
    "HASH_VERSION",
    "IMAGE_CLASSES",
    "IMAGE_DESCRIPTIONS",
    "IMAGE_EXTRAS",
    "IMAGE_IMPORT_CHECKS",
    "IMAGE_PYTHON",
    "LOCAL_BASE_IMAGE",
    "NATS_SERVER_EXTRA",
    "REGISTRY_BASE_IMAGE",
    "SOURCE_DATE_EPOCH",
    "TAG_LENGTH",
    "BuildContext",
    "ImageBuild",
    "assemble_context",
    "build_project_wheel",
    "build_wheelhouse",
    "class_build_args",
    "class_repository",
    "classes_used",
    "content_tag",
    "context_digest",
    "context_files",
    "context_tarball",
    "dockerfile_for",
    "project_root",
    "repository_of",
    "runtime_images_dir",
    "wheel_version",
    "workflow_contexts",
]
