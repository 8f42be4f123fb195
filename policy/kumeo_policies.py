"""Kumeo's PR checks as Pulumi policies: what every stack deploying agent workflows must respect.

* ``kumeo-images-pinned-by-digest`` — every container image is ``…@sha256:<64 hex>``: a tag can be moved to other
  bytes after review, a digest cannot.
* ``kumeo-container-resource-limits`` — every container (init containers too) sets ``limits.cpu`` and
  ``limits.memory``: one runaway agent must not starve the node.
* ``kumeo-no-plaintext-secrets-in-configmaps`` — no ConfigMap key that names a credential (api key, password,
  token, secret…) holds a literal value, and no value looks like one (``sk-…``, ``AKIA…``, ``ghp_…``, private keys,
  JWTs, URLs with a password); JSON values (the Plan's ``plan.json``) are searched field by field. Secrets belong in
  Kubernetes Secrets, referenced by ``secretKeyRef``; ``${env.NAME}`` placeholders are fine.
* ``kumeo-no-plaintext-secrets-in-env`` — the same search over every container's environment values (each Kumeo
  pod carries its own part of the Plan in ``KUMEO_PLAN_JSON``); ``valueFrom`` references are the way.
* ``kumeo-replicas-within-scaling-bounds`` — Deployments, HPAs and KEDA ScaledObjects annotated by Kumeo's compile
  step with the workflow's bounds (``kumeo.dev/min-replicas``/``kumeo.dev/max-replicas``) stay within them.

Each policy's logic is a plain function over the resource's inputs (``props``: the Kubernetes object as the
provider receives it), so tests run it on compiled objects without an engine. This module needs only the standard
library and ``pulumi_policy``; the pack in this directory (``__main__.py``) wires the policies into a PolicyPack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

MIN_REPLICAS_ANNOTATION = "kumeo.dev/min-replicas"
MAX_REPLICAS_ANNOTATION = "kumeo.dev/max-replicas"

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}\Z")
_WORKLOADS = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
_SECRET_NAME = re.compile(
    r"(?i)(?:^|[_\-.])(api[_\-]?key|apikey|secret|client[_\-]?secret|password|passwd|pwd|token|auth[_\-]?token|"
    r"access[_\-]?token|access[_\-]?key|secret[_\-]?key|private[_\-]?key|credentials?)\Z"
)
_SECRET_VALUE = re.compile(
    r"sk-[A-Za-z0-9_\-]{20,}"  # OpenAI-style keys
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{36}"  # GitHub tokens
    r"|xox[abpr]-[A-Za-z0-9\-]{10,}"  # Slack tokens
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\."  # JWTs
    r"|[a-z][a-z0-9+.\-]*://[^/\s:@]+:[^/\s@]+@"  # URLs carrying a password
)
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*[=:]\s*(.*?)\s*$")


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod template spec of a workload resource, or None for other kinds."""
    path = _WORKLOADS.get(resource_type)
    spec = _get(props, *path) if path else None
    return spec if isinstance(spec, Mapping) else None


def containers(resource_type: str, props: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if isinstance(c, Mapping):
                yield c


# -- the checks, as plain functions: (resource type, props) → violation messages -------------------------------


def image_digest_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    out = []
    for c in containers(resource_type, props):
        image = c.get("image")
        if not isinstance(image, str) or not _DIGEST.search(image):
            out.append(f"container {c.get('name')!r} uses image {image!r}, which is not pinned by digest; "
                       "write it as registry/name@sha256:<digest> (e.g. from `crane digest` or the build's output)")
    return out


def resource_limit_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    out = []
    for c in containers(resource_type, props):
        limits = _get(c, "resources", "limits") or {}
        missing = [r for r in ("cpu", "memory") if not (isinstance(limits, Mapping) and limits.get(r))]
        if missing:
            out.append(f"container {c.get('name')!r} has no {' and '.join(f'limits.{m}' for m in missing)}; "
                       "set resources.limits (Kumeo: `deployment.resources` in the workflow)")
    return out


def _is_reference(value: str) -> bool:
    text = value.strip()
    return not text or text.startswith(("${", "$(", "secretKeyRef:", "vault:", "ref+"))


def _scan(value: Any, where: str, out: list[str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            path = f"{where}.{k}"
            literal = (isinstance(v, (int, float)) and not isinstance(v, bool)) or (
                isinstance(v, str) and not _is_reference(v))
            if _SECRET_NAME.search(str(k)) and literal:
                out.append(f"{path} holds a literal credential")
                continue
            _scan(v, path, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _scan(v, f"{where}[{i}]", out)
    elif isinstance(value, str):
        if _SECRET_VALUE.search(value):
            out.append(f"{where} holds a value that looks like a credential")
            return
        text = value.strip()
        if text[:1] in "{[":
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if parsed is not None:
                _scan(parsed, where, out)
                return
        if "\n" in text or "=" in text:
            for n, line in enumerate(text.splitlines(), 1):
                m = _ENV_LINE.match(line)
                if m and _SECRET_NAME.search(m.group(1)) and not _is_reference(m.group(2).strip("'\"")):
                    out.append(f"{where} line {n} sets {m.group(1)} to a literal credential")


def config_map_secret_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type != _CONFIG_MAP:
        return []
    out: list[str] = []
    data = props.get("data") or {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            if _SECRET_NAME.search(str(key)) and isinstance(value, str) and not _is_reference(value):
                out.append(f"data.{key} holds a literal credential")
            else:
                _scan(value, f"data.{key}", out)
    name = _get(props, "metadata", "name") or "?"
    return [f"ConfigMap {name}: {v}; keep it in a Secret and reference it with secretKeyRef" for v in out]


def env_secret_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Literal credentials in containers' environment: a variable named like one with a literal value, or a value
    that looks like one; JSON values (each Kumeo pod's own Plan, ``KUMEO_PLAN_JSON``) are searched field by field."""
    out: list[str] = []
    for c in containers(resource_type, props):
        for e in c.get("env") or []:
            if not isinstance(e, Mapping) or not isinstance(e.get("value"), str):
                continue  # valueFrom (secretKeyRef) is the way
            where = f"container {c.get('name')!r} env {e.get('name')}"
            if _SECRET_NAME.search(str(e.get("name"))) and not _is_reference(e["value"]):
                out.append(f"{where} holds a literal credential")
            else:
                _scan(e["value"], where, out)
    name = _get(props, "metadata", "name") or "?"
    return [f"{resource_type.rpartition(':')[2]} {name}: {v}; keep it in a Secret and reference it with "
            "secretKeyRef" for v in out]


def _int(value: Any) -> int | None:
    try:
        number = float(value)  # engine inputs and mocks turn ints into floats
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def replica_bound_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    annotations = _get(props, "metadata", "annotations") or {}
    if not isinstance(annotations, Mapping) or MIN_REPLICAS_ANNOTATION not in annotations:
        return []
    low, high = _int(annotations.get(MIN_REPLICAS_ANNOTATION)), _int(annotations.get(MAX_REPLICAS_ANNOTATION))
    if low is None or high is None or low > high:
        written = f"{annotations.get(MIN_REPLICAS_ANNOTATION)!r}..{annotations.get(MAX_REPLICAS_ANNOTATION)!r}"
        return [f"scaling bounds {written} are not two integers min <= max"]
    fields = {
        "kubernetes:apps/v1:Deployment": (("spec", "replicas"),),
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": (("spec", "minReplicas"), ("spec", "maxReplicas")),
        "kubernetes:keda.sh/v1alpha1:ScaledObject": (("spec", "minReplicaCount"), ("spec", "maxReplicaCount")),
    }.get(resource_type, ())
    out = []
    for path in fields:
        raw = _get(props, *path)
        if raw is None:
            continue
        value = _int(raw)
        if value is None or not low <= value <= high:
            out.append(f"{'.'.join(path)} = {raw!r} is outside the workflow's scaling bounds {low}..{high}")
    return out


# -- as Pulumi policies -----------------------------------------------------------------------------------------


def _policy(name: str, description: str, check: Any, level: EnforcementLevel) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate, enforcement_level=level)


images_pinned_by_digest = _policy(
    "kumeo-images-pinned-by-digest", "Container images must be pinned by digest (@sha256:…).",
    image_digest_violations, EnforcementLevel.MANDATORY)
container_resource_limits = _policy(
    "kumeo-container-resource-limits", "Every container must set CPU and memory limits.",
    resource_limit_violations, EnforcementLevel.MANDATORY)
no_plaintext_secrets_in_config_maps = _policy(
    "kumeo-no-plaintext-secrets-in-configmaps", "ConfigMaps must not hold API keys, passwords or tokens.",
    config_map_secret_violations, EnforcementLevel.MANDATORY)
no_plaintext_secrets_in_env = _policy(
    "kumeo-no-plaintext-secrets-in-env", "Container environments must not hold API keys, passwords or tokens.",
    env_secret_violations, EnforcementLevel.MANDATORY)
replicas_within_scaling_bounds = _policy(
    "kumeo-replicas-within-scaling-bounds", "Replicas must stay within the workflow's scaling bounds.",
    replica_bound_violations, EnforcementLevel.MANDATORY)

POLICIES: list[ResourceValidationPolicy] = [
    images_pinned_by_digest,
    container_resource_limits,
    no_plaintext_secrets_in_config_maps,
    no_plaintext_secrets_in_env,
    replicas_within_scaling_bounds,
]

__all__ = [
    "MAX_REPLICAS_ANNOTATION",
    "MIN_REPLICAS_ANNOTATION",
    "POLICIES",
    "config_map_secret_violations",
    "container_resource_limits",
    "env_secret_violations",
    "image_digest_violations",
    "images_pinned_by_digest",
    "no_plaintext_secrets_in_config_maps",
    "no_plaintext_secrets_in_env",
    "replica_bound_violations",
    "replicas_within_scaling_bounds",
    "resource_limit_violations",
]
