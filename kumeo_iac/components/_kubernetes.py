"""Plain Kubernetes object dicts (from the Plan) as Pulumi resources of the Kubernetes provider.

The Plan keeps every object as the dict ``kubectl apply`` would take, and each one is registered as is, under the
type token of its apiVersion/kind (``kubernetes:apps/v1:Deployment``, ``kubernetes:keda.sh/v1alpha1:ScaledObject``):
the same resources, URNs and previews as pulumi_kubernetes' typed classes, which would only translate the same
fields back and forth (that translation costs more than the rest of a Workflow's registration). The provider is
pinned to the pulumi_kubernetes version installed, as its typed classes do; Secrets keep their data secret in the
state, as the typed ``Secret`` does.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pulumi

from kumeo_iac.errors import KumeoDeployError

#: Outputs the provider computes from a Secret's inputs that must stay secret in the state.
_SECRET_OUTPUTS = {"Secret": ["data", "stringData"]}


def type_token(obj: dict[str, Any]) -> str:
    """The Pulumi type token an object becomes (``kubernetes:apps/v1:Deployment``)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


@functools.cache
def _provider_version() -> str | None:
    try:
        return version("pulumi_kubernetes")
    except PackageNotFoundError:
        return None


def kubernetes_resource(resource_name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register one object dict as the Kubernetes provider's resource of its kind; field names stay as Kubernetes
    spells them."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not api_version or not kind:
        raise KumeoDeployError(f"Kubernetes object {resource_name!r} has no apiVersion/kind; the Plan is malformed")
    defaults = pulumi.ResourceOptions(version=_provider_version(),
                                      additional_secret_outputs=_SECRET_OUTPUTS.get(kind))
    return pulumi.CustomResource(type_token(obj), resource_name, dict(obj),
                                 pulumi.ResourceOptions.merge(defaults, opts))
