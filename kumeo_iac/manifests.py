"""The objects a deployer applies for one workflow, the same for `kumeo render` and the Pulumi ``Workflow``.

Compile is pure and never reads a file, so the Plan's objects name the ConfigMap of the files agents read
(``<slug>-files``) and the Secrets pods read (API keys, NATS passwords, the NATS TLS Secret) without holding them.
``workflow_manifests`` is the one step that reads the files: it adds that ConfigMap, stamps each Deployment's pod
template with the checksum of exactly the files its agent reads (``kumeo.dev/files-checksum``, so editing a model
rolls the agents that read it and no other), and lists the Secrets the pods need. `kumeo render` writes the objects
and lists the Secrets for the user to create; the component creates the Secrets whose values it has (stack
secrets) and the same objects with the same names.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Iterator
from typing import Any

from kumeo_iac._paths import escapes
from kumeo_iac.compile import FILES_CHECKSUM_ANNOTATION, ConsumerPlan, WorkflowPlan, dns_name, files_key, labels
from kumeo_iac.errors import KumeoDeployError

__all__ = ["CONFIG_MAP_LIMIT", "Manifests", "RequiredSecret", "deployed_consumers", "files_config_map_name",
           "required_secrets", "workflow_manifests"]

#: A ConfigMap holds at most 1 MiB (less some room for its metadata); bigger files belong on a volume.
CONFIG_MAP_LIMIT = 1024 * 1024 - 16 * 1024


@dataclasses.dataclass(frozen=True)
class RequiredSecret:
    """A Secret the workflow's pods read, with the keys they read from it."""

    name: str
    keys: tuple[str, ...]
    #: The keys pods read as files (a mounted credentials file, TLS certificates), among ``keys``.
    file_keys: tuple[str, ...] = ()

    def create_command(self, namespace: str) -> str:
        """The ``kubectl`` command that creates it: values left for the user to fill in, files read from the current
        directory under the key's name."""
        sources = " ".join(f"--from-file={key}=./{key}" if key in self.file_keys else f"--from-literal={key}=…"
                           for key in self.keys)
        return f"kubectl -n {namespace} create secret generic {self.name} {sources}"


@dataclasses.dataclass(frozen=True)
class Manifests:
    """A workflow's objects in apply order, and the Secrets they read (which are not among the objects)."""

    objects: list[dict[str, Any]]
    secrets: list[RequiredSecret]


def files_config_map_name(plan: WorkflowPlan) -> str:
    return dns_name(plan.slug, "files")


def workflow_manifests(plan: WorkflowPlan, base_dir: str | os.PathLike[str] | None) -> Manifests:
    """The Plan's objects with the files ConfigMap added and the pods stamped; the files are read from ``base_dir``.

    Raises :class:`KumeoDeployError` naming the file when one is missing, and when the files together pass what
    a ConfigMap holds (put them on a volume: ``PlatformSettings.files_volume``).
    """
    name = files_config_map_name(plan)
    mounted = sorted({item["path"] for d in _deployments(plan.kubernetes) for item in _files_items(d, name)})
    objects = list(plan.kubernetes)  # the Plan's dicts are shared, never changed: stamping makes new ones
    if mounted:
        contents = {path: _read(plan, base_dir, path) for path in mounted}
        total = sum(len(data) for data in contents.values())
        if total > CONFIG_MAP_LIMIT:
            raise KumeoDeployError(
                f"workflow {plan.name!r} reads {total} bytes of files, more than a ConfigMap holds (1 MiB); put "
                "them on a volume: PlatformSettings(files_volume={'persistentVolumeClaim': {...}})")
        digests = {path: hashlib.sha256(data).hexdigest() for path, data in contents.items()}
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": plan.namespace, "labels": labels(plan.slug, name)},
            "binaryData": {files_key(p): base64.b64encode(contents[p]).decode("ascii") for p in mounted},
        }
        at = next((i for i, o in enumerate(objects) if o.get("kind") in _WORKLOADS), len(objects))
        objects.insert(at, config_map)
        objects = [_stamped(o, name, digests) if o.get("kind") in _WORKLOADS else o for o in objects]
    return Manifests(objects, required_secrets(objects))


#: The kinds whose pod templates read the files (a partitioned agent runs as a StatefulSet).
_WORKLOADS = ("Deployment", "StatefulSet")


def _deployments(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (o for o in objects if o.get("kind") in _WORKLOADS)


def _pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def _files_items(deployment: dict[str, Any], config_map: str) -> list[dict[str, str]]:
    return [item for v in _pod_spec(deployment).get("volumes") or []
            if (v.get("configMap") or {}).get("name") == config_map for item in v["configMap"].get("items") or []]


def _read(plan: WorkflowPlan, base_dir: str | os.PathLike[str] | None, relative: str) -> bytes:
    """A file of the Plan, read only when it lies inside ``base_dir``, even from a hand-made Plan: an absolute path
    elsewhere, a ``..`` escape or a symlink pointing out is refused, never read (files of a data root cannot go in
    the files ConfigMap either, whose item paths are relative to its mount; put those on ``files_volume``)."""
    base = base_dir or "."
    full = os.path.join(base, relative)
    if escapes(relative, base) is not None:
        raise KumeoDeployError(
            f"workflow {plan.name!r} names {relative!r}, which leaves the workflow's folder "
            f"{os.path.realpath(base)}; refused, not read — keep the file under that folder (files of a data root "
            "go on a volume: PlatformSettings(files_volume=...))")
    try:
        with open(full, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise KumeoDeployError(
            f"workflow {plan.name!r} needs {relative!r} (looked in {os.path.abspath(full)}): {exc.strerror}; "
            "create the file or pass base_dir= where it lives") from None


def _stamped(deployment: dict[str, Any], config_map: str, digests: dict[str, str]) -> dict[str, Any]:
    """The Deployment with its pod template annotated with the checksum of the files its agent reads."""
    paths = sorted(item["path"] for item in _files_items(deployment, config_map))
    if not paths:
        return deployment
    checksum = hashlib.sha256("".join(f"{p}\0{digests[p]}\n" for p in paths).encode()).hexdigest()
    template = deployment["spec"]["template"]
    metadata = template.get("metadata") or {}
    annotations = {**(metadata.get("annotations") or {}), FILES_CHECKSUM_ANNOTATION: checksum}
    return {**deployment, "spec": {**deployment["spec"], "template": {
        **template, "metadata": {**metadata, "annotations": annotations}}}}


def required_secrets(objects: list[dict[str, Any]]) -> list[RequiredSecret]:
    """The Secrets (and their keys) the pods of these objects read by ``secretKeyRef`` or as volumes."""
    keys: dict[str, set[str]] = {}
    files: dict[str, set[str]] = {}
    for deployment in _deployments(objects):
        spec = _pod_spec(deployment)
        for container in spec.get("containers") or []:
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    keys.setdefault(ref["name"], set()).add(ref["key"])
        for volume in spec.get("volumes") or []:
            secret = volume.get("secret")
            if secret:
                mounted = {i["key"] for i in secret.get("items") or []}
                keys.setdefault(secret["secretName"], set()).update(mounted)
                files.setdefault(secret["secretName"], set()).update(mounted)
    return [RequiredSecret(name, tuple(sorted(k)), tuple(sorted(files.get(name, ()))))
            for name, k in sorted(keys.items())]


def deployed_consumers(plan: WorkflowPlan) -> list[ConsumerPlan]:
    """Every durable consumer a deployer creates for one workflow: the agents' (in the Plan) and the gateway's, one
    per HTTP/File target. Agents and the gateway only bind to them (their NATS identities may not create one), so
    `kumeo render`, the ``Workflow`` component and `kumeo run` must all create exactly these."""
    consumers = list(plan.consumers)
    if any(t.kind in ("HTTP", "File") for t in plan.targets):
        # The target adapters decide their consumers' settings (an HTTP target's ack wait follows its retries and
        # timeout), so they are asked rather than restated here.
        from kumeo_iac.runtime.io import target_consumers

        consumers += target_consumers(plan)
    return consumers
