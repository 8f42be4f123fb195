"""How a workflow is watched (`monitor`) and deployed (`deployment`): images, resources, scaling, storage, registry,
and the profile (`cluster`, or `edge`: every agent in one pod with its own NATS leaf node)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kumeo_iac.spec._base import SpecNode, arg


class Monitor(SpecNode):
    """What to measure and where to show it."""

    metrics: list[str] = Field(default_factory=list, description="Metric names to expose and chart.")
    dashboard: str | None = arg("A dashboard name or path.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Other monitor settings, kept as written.")


class Resources(SpecNode):
    """CPU, memory and image for one resource class (`default`, `ml_models`, `llm`, or an agent id)."""

    cpu: str | int | float | None = arg("CPU request and limit (`\"500m\"`, `\"2\"`).")
    memory: str | None = arg("Memory request and limit (`\"1Gi\"`).")
    gpu: bool | int | None = arg("GPUs to request (`true` means one).")
    image: str | None = arg("An image, or a `base_images` entry (`\"base_images.ml\"`).")
    extra: dict[str, Any] = Field(default_factory=dict)


class Scaling(SpecNode):
    """Replica bounds and the autoscaling signal."""

    min_replicas: int | None = arg("Fewest replicas per agent.")
    max_replicas: int | None = arg("Most replicas per agent.")
    target_lag: int | None = arg("Pending messages per replica that KEDA scales on (when KEDA is enabled).")
    target_cpu: int | None = arg("CPU utilisation percent the HPA scales on (when KEDA is not enabled).")
    extra: dict[str, Any] = Field(default_factory=dict)


class Leaf(SpecNode):
    """The edge pod's own nats-server, a leaf node of the central NATS (see *Edge profile* in docs/deploy.md)."""

    hub: str | list[str] | None = arg(
        "The central NATS server's leafnode URL(s) (`\"nats-leaf://hub.example.com:7422\"`; `tls://…` for TLS).")
    credentials_secret: str | None = arg(
        "The Secret holding the leaf's NATS credentials file (`\"name\"`, key `creds`; or `\"name/key\"`).")
    ca_secret: str | None = arg(
        "The Secret holding the CA certificate the hub's TLS certificate is signed by (`\"name\"`, key `ca.crt`; or "
        "`\"name/key\"`), for a hub whose certificate comes from a private CA (a cert-manager CA); without it the "
        "leaf trusts the system's roots only.")
    domain: str | None = arg("The site's JetStream domain, unique per site (default: the workflow's slug).")
    storage: str | None = arg("Size of the volume holding the site's queued events (default `\"1Gi\"`).")
    storage_class: str | None = arg("StorageClass of that volume (default: the cluster's default class).")
    image: str | None = arg("The image of the leaf container, which runs `nats-server` from its PATH (default: the "
                            "edge pod's own Kumeo image, which carries the nats-server of the `local` extra).")
    extra: dict[str, Any] = Field(default_factory=dict)


class Deployment(SpecNode):
    """Everything the Kubernetes side needs that the agent graph does not say."""

    namespace: str | None = arg("Kubernetes namespace (stack config `kumeo:namespace` overrides it).")
    base_images: dict[str, str] = Field(default_factory=dict, description="Images by class (`default`, `ml`, `llm`).")
    resources: dict[str, Resources] = Field(default_factory=dict, description="Resources by class or agent id.")
    storage: dict[str, str] = Field(default_factory=dict, description=(
        "Mount paths by name (`models`, `data`); `data_root`: a folder outside the workflow's whose files agents may "
        "read (see *File paths*)."))
    scaling: Scaling | None = None
    registry: Any = arg("Registries: a URL, or `{ kumeo: …, user: { url: … }, models: … }`.")
    profile: str | None = arg(
        "`\"cluster\"` (default: a pod per agent on the central NATS) or `\"edge\"` (every agent in one pod with "
        "its own NATS leaf node; needs `leaf`).")
    leaf: Leaf | None = Field(default=None, description=(
        "With `profile: \"edge\"`: the site's leaf node (`hub`, `credentials_secret`, `ca_secret`, `domain`, "
        "`storage`; see *Edge profile*)."))
    extra: dict[str, Any] = Field(default_factory=dict, description="Other deployment settings, kept as written.")
