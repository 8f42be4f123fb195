"""Plain Kubernetes object dicts (from the Plan) as typed pulumi_kubernetes resources.

The Plan keeps every object as the dict ``kubectl apply`` would take. Here each one becomes the typed resource for
its apiVersion/kind, so previews show real types (``kubernetes:apps/v1:Deployment``) and the provider validates
fields; kinds the table does not know (KEDA's ScaledObject, other CRDs) become ``apiextensions.CustomResource``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import pulumi

from kumeo_iac.errors import KumeoDeployError

#: (apiVersion, kind) → the pulumi_kubernetes class, as a dotted path under the package (imported on first use).
KUBERNETES_TYPES: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "core.v1.Namespace",
    ("v1", "ConfigMap"): "core.v1.ConfigMap",
    ("v1", "Secret"): "core.v1.Secret",
    ("v1", "ServiceAccount"): "core.v1.ServiceAccount",
    ("v1", "Service"): "core.v1.Service",
    ("v1", "PersistentVolumeClaim"): "core.v1.PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "apps.v1.Deployment",
    ("apps/v1", "StatefulSet"): "apps.v1.StatefulSet",
    ("batch/v1", "Job"): "batch.v1.Job",
    ("policy/v1", "PodDisruptionBudget"): "policy.v1.PodDisruptionBudget",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "autoscaling.v2.HorizontalPodAutoscaler",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networking.v1.NetworkPolicy",
    ("rbac.authorization.k8s.io/v1", "Role"): "rbac.v1.Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rbac.v1.RoleBinding",
}

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


@functools.cache
def _resolve(dotted: str) -> type[pulumi.CustomResource]:
    import importlib

    module_path, _, cls_name = dotted.rpartition(".")
    module = importlib.import_module(f"pulumi_kubernetes.{module_path}")
    return getattr(module, cls_name)


def type_token(obj: dict[str, Any]) -> str:
    """The Pulumi type token an object becomes (``kubernetes:apps/v1:Deployment``)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


def kubernetes_resource(resource_name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Create the typed resource for one object dict; nested field names stay as Kubernetes spells them."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not api_version or not kind:
        raise KumeoDeployError(f"Kubernetes object {resource_name!r} has no apiVersion/kind; the Plan is malformed")
    dotted = KUBERNETES_TYPES.get((api_version, kind))
    fields = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if dotted is None:
        extra = sorted(set(fields) - {"metadata", "spec"})
        if extra:
            raise KumeoDeployError(
                f"{kind} {resource_name!r} ({api_version}) has top-level fields {extra} that "
                "apiextensions.CustomResource cannot carry; add the kind to KUBERNETES_TYPES"
            )
        from pulumi_kubernetes.apiextensions import CustomResource

        return CustomResource(
            resource_name, api_version=api_version, kind=kind, metadata=fields.get("metadata"),
            spec=fields.get("spec"), opts=opts,
        )
    cls = _resolve(dotted)
    return cls(resource_name, opts=opts, **{_snake(k): v for k, v in fields.items()})
