"""Platform settings: what a Plan needs to know about the cluster that the Spec does not say."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

#: Image classes and the `deployment.base_images` keys each one reads (first found wins).
IMAGE_CLASS_KEYS: dict[str, tuple[str, ...]] = {"base": ("base", "default"), "ml": ("ml",), "llm": ("llm",)}
#: The ``deployment.resources`` entry that applies to every agent of an image class (after the agent's own id).
IMAGE_CLASS_RESOURCES: dict[str, str] = {"ml": "ml_models", "llm": "llm"}

#: What ``egress_cidrs`` leaves out by default: the private ranges (RFC 1918, where pods, Services and nodes
#: usually live), carrier-grade NAT (some clusters' pod range) and link-local (the cloud metadata endpoint
#: 169.254.169.254), so an agent calling out reaches the internet and nothing inside the cluster or its VPC.
PRIVATE_CIDRS: tuple[str, ...] = ("10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16")


@dataclasses.dataclass(frozen=True)
class PlatformSettings:
    """Where and how a workflow is deployed; every field has a default that works on a plain cluster.

    Precedence for images: ``runtime_images`` (by agent id, then by class) > the workflow's `deployment.resources`
    ``image`` > the workflow's `deployment.base_images` > ``images`` > ``<image_registry>/kumeo-<class>:<image_tag>``.
    """

    #: Kubernetes namespace; default: the workflow's `deployment.namespace`, else its slug.
    namespace: str | None = None
    #: NATS URL agents connect to; default: the workflow's `nats:` block, else ``nats://nats:4222``.
    nats_url: str | None = None
    #: ``host:port`` of the NATS monitoring endpoint KEDA polls; default: the NATS host on port 8222.
    nats_monitoring_endpoint: str | None = None
    image_registry: str = "ghcr.io/kumeo"
    image_tag: str = "0.1.0"
    #: Default images by class (``base``, ``ml``, ``llm``), below the workflow's `deployment.base_images`.
    images: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Overrides by agent id or class, above everything the workflow says.
    runtime_images: Mapping[str, str] = dataclasses.field(default_factory=dict)
    keda_enabled: bool = False
    #: API keys: environment variable → ``"secret-name"`` (key = the variable's name) or ``"secret-name/key"``.
    #: Only the Secret's name and key reach the Plan, as ``secretKeyRef``s on LLM and Custom agents.
    secrets: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The Kubernetes volume source holding the files agents read (models, networks, rules), e.g.
    #: ``{"persistentVolumeClaim": {"claimName": "models", "readOnly": True}}``. Default: a ConfigMap named
    #: ``<slug>-files`` whose keys are the files' paths with ``/`` replaced by ``__`` (the deployer creates it).
    files_volume: Mapping[str, Any] | None = None
    #: Where that volume is mounted; default: the workflow's `deployment.storage.models`, else /var/lib/kumeo/files.
    files_mount_path: str | None = None
    #: How long the workflow's streams keep messages.
    max_age_seconds: float = 7 * 24 * 3600
    stream_replicas: int = 1
    #: The namespace Prometheus scrapes from (allowed in by the agents' and the gateway's NetworkPolicies).
    monitoring_namespace: str = "monitoring"
    #: Values for ``${env.NAME}`` placeholders in images (compile reads no environment itself).
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    llm_cache_ttl_seconds: float = 3600.0
    #: Pending messages per replica KEDA scales on when `deployment.scaling.target_lag` is not given.
    default_lag_threshold: int = 100
    #: CPU utilisation percent the HPA targets when `deployment.scaling.target_cpu` is not given.
    default_target_cpu: int = 70
    #: Per-agent NATS users: each Deployment reads NATS_USER (a value) and NATS_PASSWORD (``secretKeyRef`` to the
    #: workflow's Secret ``<slug>-nats``, key: the NATS user) and uses its own inbox prefix. The deployer creates the
    #: Secret (the Workflow component does when ``kumeo:natsAuthSeed`` is set) and the server's authorization
    #: block (``kumeo_iac.compile.render_nats_config``). Identities are in the Plan either way.
    nats_auth: bool = False
    #: TLS to NATS: ``{"secret": NAME}`` mounts that Secret (keys ``ca.crt``, ``tls.crt``, ``tls.key`` unless
    #: ``ca``/``cert``/``key`` name others; ``cert`` and ``key`` may be ``""`` when the server does not verify
    #: clients) at /etc/kumeo/nats-tls and sets NATS_TLS_CA/NATS_TLS_CERT/NATS_TLS_KEY. Workers always verify
    #: the server's certificate against that CA.
    nats_tls: Mapping[str, Any] | None = None
    #: Add a Prometheus Operator PodMonitor (``monitoring.coreos.com/v1``) per workflow scraping every agent's
    #: ``/metrics``; pods carry ``prometheus.io/*`` annotations either way (see ``_observability.py``).
    pod_monitor: bool = False
    #: Extra labels on the PodMonitor and the Grafana dashboard ConfigMap (e.g. ``{"release": "prometheus"}`` for
    #: a Prometheus Operator that selects monitors by label).
    monitoring_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The NATS server's pods: agents and the gateway may reach them (and only them) on the NATS URL's port.
    #: Default namespace: the one the NATS URL's host names (``nats.<namespace>[.svc[.cluster.local]]``; a host
    #: of one label, like the default ``nats``, is a Service of the workflow's namespace), else ``nats``.
    nats_namespace: str | None = None
    #: The labels of the NATS server's pods (the official Helm chart's by default).
    nats_pod_labels: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: {"app.kubernetes.io/name": "nats"})
    #: The cluster DNS pods, the only destination of port 53 (CoreDNS keeps kube-dns's label on most clusters).
    dns_namespace: str = "kube-system"
    dns_pod_labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"k8s-app": "kube-dns"})
    #: Where agents that call out (LLM endpoints, HTTP targets, review webhooks) and the gateway (HTTP targets)
    #: may connect outside the cluster, on the ports those URLs name only; endpoints written as in-cluster
    #: Service names (``svc``, ``svc.ns.svc[.cluster.local]``) are reached by namespace instead. Each CIDR leaves
    #: out the ``egress_except_cidrs`` inside it. An empty list: no egress beyond NATS, DNS and in-cluster Services.
    egress_cidrs: Sequence[str] = ("0.0.0.0/0",)
    #: Left out of every ``egress_cidrs`` entry that contains them (default: ``PRIVATE_CIDRS``). To reach an
    #: endpoint on a private address, add its range to ``egress_cidrs`` (a range equal to an exception is kept).
    egress_except_cidrs: Sequence[str] = PRIVATE_CIDRS
    #: The pods allowed to reach agents' port 8080 (metrics, health, the HumanReview API), besides the
    #: ``monitoring_namespace``: the Kumeo dashboard's, in ``dashboard_namespace`` (default: the workflow's).
    dashboard_pod_labels: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: {"kumeo.dev/component": "dashboard"})
    dashboard_namespace: str | None = None
    #: A PersistentVolumeClaim (by name, in the workflow's namespace) mounted at the gateway's data directory
    #: (``/var/lib/kumeo/io``, where File sources and targets are) instead of a 1 Gi emptyDir that a restart empties.
    gateway_data_claim: str | None = None
    #: Compile for a cluster: a workflow with a Kafka or MQTT endpoint, which no pod runs yet, is refused with its
    #: line. The deployers of the cluster objects (`kumeo render`, the Workflow component) set it; `kumeo run` and
    #: the dashboard leave it off (the local runtime refuses those endpoints itself when it starts).
    for_cluster: bool = False
    #: The largest event (bytes, its compact JSON) an agent or a gateway HTTP/File source takes; a larger one is
    #: dead-lettered unread (an HTTP source answers 413). A workflow's ``deployment: { max_input_bytes: N }`` wins;
    #: default 1 MiB. The Plan carries it (agent setting and source option ``max_input_bytes``) only when it is not
    #: the default, so the Plans of workflows that do not set it stay as they were.
    max_input_bytes: int | None = None


#: The input size limit when neither the platform nor the workflow sets one (``KUMEO_MAX_INPUT_BYTES`` overrides it at
#: run time, as ``kumeo_iac.runtime.envelope.DEFAULT_MAX_INPUT_BYTES``).
DEFAULT_MAX_INPUT_BYTES = 1024 * 1024
#: NATS's own ceiling for ``max_payload``: a larger input could never be published.
MAX_INPUT_BYTES_CEILING = 64 * 1024 * 1024


def max_input_bytes(settings: PlatformSettings, deployment_extra: Mapping[str, Any] | None) -> int:
    """The workflow's input size limit: its ``deployment.max_input_bytes``, else the platform's, else 1 MiB.

    Raises ValueError naming the setting when a value is not a whole number of bytes between 1 and 64 MiB.
    """
    for where, value in (("deployment.max_input_bytes", (deployment_extra or {}).get("max_input_bytes")),
                         ("PlatformSettings.max_input_bytes", settings.max_input_bytes)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or \
                not 1 <= value <= MAX_INPUT_BYTES_CEILING:
            raise ValueError(f"{where} must be a whole number of bytes from 1 to {MAX_INPUT_BYTES_CEILING} "
                             f"(64 MiB, NATS's largest max_payload), got {value!r}")
        return int(value)
    return DEFAULT_MAX_INPUT_BYTES
