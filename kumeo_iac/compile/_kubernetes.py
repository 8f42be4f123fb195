"""Kubernetes objects for one workflow, as plain dicts in apply order.

Lean by construction: no object grows with the number of agents, and an agent has at most three resources.

Per workflow (shared, selecting the agents by label): one ServiceAccount ``<slug>-agents``, one headless metrics
Service ``<slug>-metrics``, one NetworkPolicy ``<slug>-agents`` (ingress on port 8080 from the dashboard's pods and
the monitoring namespace; egress to the cluster DNS pods and the NATS pods, by selector, and nowhere else) and
``<slug>-agents-egress`` for the agents that call out — LLM endpoints, HTTP targets, review webhooks — labelled
``kumeo.dev/egress: external`` (egress on those URLs' ports, to ``PlatformSettings.egress_cidrs`` or, for an
in-cluster Service name, its namespace), and when some agent runs more than one replica
one PodDisruptionBudget ``<slug>-agents`` over them (labelled ``kumeo.dev/replicated``: one eviction at a time).
Per agent (``<slug>-<agent>``): its Deployment, and only when it can scale an autoscaler
(``max_replicas > replicas``): an autoscaling/v2
HorizontalPodAutoscaler on CPU, or with KEDA a ``keda.sh/v1alpha1`` ScaledObject on its consumers' lag, annotated
``kumeo.dev/depends-on: consumer/<stream>/<durable>`` so deployers create it after the consumer.

Each agent's pod reads only its own part of the Plan: the environment variable ``KUMEO_PLAN_JSON`` holds a Plan of
one workflow with that agent alone (``agent_plan``), so a change to one agent changes that agent's pod template and
no other. Files agents read (models, networks, rules) come from one volume: ``PlatformSettings.files_volume``, else
a ConfigMap ``<slug>-files`` (keys: paths with ``/`` → ``__``) that the deployer fills from the files
(``kumeo_iac.manifests``), which also stamps each pod template with the checksum of the files that agent reads.
A workflow with a non-NATS source or an HTTP/File target also gets a gateway ``<slug>-gateway`` (ServiceAccount,
one-replica Deployment running ``python -m kumeo_iac.runtime.io``, Service on its HTTP source ports and health
port, NetworkPolicy), labelled ``kumeo.dev/component: gateway``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from kumeo_iac.compile._names import dns_name
from kumeo_iac.compile._plan import AgentPlan, EndpointPlan, NatsIdentity
from kumeo_iac.compile._security import credentials_secret_name, identity_env, tls_mount
from kumeo_iac.compile._settings import PlatformSettings

HTTP_PORT = 8080
#: The environment variable holding a pod's own part of the Plan (a Plan of one workflow with one agent, or the
#: gateway's endpoints), read by ``python -m kumeo_iac.runtime`` and ``python -m kumeo_iac.runtime.io``.
PLAN_ENV = "KUMEO_PLAN_JSON"
#: The most a pod's own Plan may hold. Linux refuses to start a process with an environment string over 128 KiB
#: (MAX_ARG_STRLEN), so an agent's Plan must stay well below it: large prompts or tables belong in files.
PLAN_ENV_LIMIT = 120 * 1024
DEFAULT_FILES_DIR = "/var/lib/kumeo/files"
RUN_AS = 10001
#: Requests and limits of the gateway container (small: it only moves events between the outside and NATS).
GATEWAY_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
#: The name suffixes of the objects every workflow's agents share.
SHARED_AGENTS = "agents"
SHARED_METRICS = "metrics"
#: The pod label of agents that reach outside NATS (LLM endpoints, HTTP targets, review webhooks), selected by the
#: workflow's egress policy.
EGRESS_LABEL = "kumeo.dev/egress"
#: The endpoint kinds a cluster runs (the gateway runs the non-NATS ones); compile refuses the others (Kafka, MQTT).
CLUSTER_ENDPOINT_KINDS = frozenset({"NATS", "HTTP", "Timer", "File"})
#: The label Kubernetes puts on every namespace (1.22+), naming it: how policies select a namespace by name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: The pod label of agents running more than one replica, selected by the workflow's disruption budget.
REPLICATED_LABEL = "kumeo.dev/replicated"
#: The pod-template annotation holding the checksum of the files an agent reads (set by ``kumeo_iac.manifests``).
FILES_CHECKSUM_ANNOTATION = "kumeo.dev/files-checksum"

#: Apply order by kind (the ScaledObject/HPA last: they need their Deployment and, for KEDA, the consumer).
KIND_ORDER = (
    "Namespace",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Service",
    "Deployment",
    "StatefulSet",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "HorizontalPodAutoscaler",
    "ScaledObject",
)


def files_key(path: str) -> str:
    """The ConfigMap key of a file path (keys allow only ``[-._a-zA-Z0-9]``)."""
    return re.sub(r"[^-._a-zA-Z0-9]", "_", path.replace("/", "__"))


def labels(slug: str, name: str, agent_dns: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "kumeo",
        "app.kubernetes.io/managed-by": "kumeo",
        "kumeo.dev/workflow": slug,
    }
    if agent_dns is not None:
        out["kumeo.dev/agent"] = agent_dns
        out["app.kubernetes.io/component"] = "agent"
    return out


def agents_selector(slug: str) -> dict[str, str]:
    """The labels every agent pod of a workflow carries (and no gateway pod does)."""
    return {"kumeo.dev/workflow": slug, "app.kubernetes.io/component": "agent"}


def _meta(name: str, namespace: str, lbls: dict[str, str], annotations: dict[str, str] | None = None
          ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(lbls)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _port_of(url: str, default: int) -> int:
    try:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        return parts.port or default
    except ValueError:
        return default


def _secret_env(settings: PlatformSettings) -> list[dict[str, Any]]:
    env = []
    for var in sorted(settings.secrets):
        ref = settings.secrets[var]
        secret, _, key = ref.partition("/")
        env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key or var}}})
    return env


def _container_security() -> dict[str, Any]:
    """The restricted container security context every Kumeo container runs with."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probes(port: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(liveness on /healthz, readiness on /readyz) against the named container port."""
    # Kubernetes' own defaults are left out (periodSeconds 10, failureThreshold 3): each field written is one more
    # the SDK serializes, per agent, on every preview.
    probe = {"httpGet": {"path": "/healthz", "port": port}, "initialDelaySeconds": 5, "timeoutSeconds": 2}
    return probe, {**probe, "httpGet": {"path": "/readyz", "port": port}, "periodSeconds": 5}



def _rolling_strategy(agent: AgentPlan) -> dict[str, Any]:
    """A new pod before an old one goes (never below the replicas running). With at most one replica that is what
    Kubernetes' default (25% unavailable rounded down, 25% surge rounded up) does already, so it is left out."""
    if agent.max_replicas <= 1:
        return {}
    return {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}

#: The workflow's scaling bounds on every Deployment and autoscaler, for policies (replicas within bounds).
MIN_REPLICAS_ANNOTATION = "kumeo.dev/min-replicas"
MAX_REPLICAS_ANNOTATION = "kumeo.dev/max-replicas"


def scaling_annotations(agent: AgentPlan) -> dict[str, str]:
    return {MIN_REPLICAS_ANNOTATION: str(agent.replicas), MAX_REPLICAS_ANNOTATION: str(agent.max_replicas)}


# -- where pods may connect: NATS, DNS, and what agents call out to ---------------------------------------------

#: A destination outside NATS and DNS: ``(namespace, port)`` for an in-cluster Service, ``(None, port)`` for an
#: address outside the cluster (reached through ``PlatformSettings.egress_cidrs``).
Destination = tuple[str | None, int]

_SERVICE_HOST = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _namespace_of_host(host: str, namespace: str, *, short: bool = False) -> str | None:
    """The namespace of an in-cluster Service host: ``svc`` (the pod's own namespace), ``svc.ns.svc`` or
    ``svc.ns.svc.<cluster domain>`` (and ``svc.ns`` when ``short``: fine for the NATS server, ambiguous with
    ``example.com`` for a URL); None for any other host (outside the cluster)."""
    labels_ = host.lower().rstrip(".").split(".")
    if not all(_SERVICE_HOST.fullmatch(label) for label in labels_):
        return None
    if len(labels_) == 1 and not labels_[0].isdigit():
        return namespace
    if (len(labels_) >= 3 and labels_[2] == "svc") or (short and len(labels_) == 2):
        return labels_[1]
    return None


def url_destination(url: str, namespace: str, default_port: int = 443) -> Destination | None:
    """Where a pod connects to reach ``url``: None for the pod itself (loopback). A URL whose host is only known at
    run time (``${env.NAME}``) counts as outside the cluster, on its port or its scheme's (else ``default_port``)."""
    try:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        return (None, default_port)
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme, default_port)
    if host in ("localhost", "") or host.endswith(".localhost"):
        return None if host else (None, port)
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
        return (None, port)
    except ValueError:
        pass
    return (_namespace_of_host(host, namespace) if "$" not in host else None, port)


def agent_destinations(agent: AgentPlan, targets: dict[str, EndpointPlan], namespace: str) -> set[Destination]:
    """Where an agent connects besides NATS and DNS: the HTTP targets it delivers to and the URLs its kind declares
    (``AgentPlan.egress``: an LLM's model server, a review's webhooks). Empty: it talks to NATS only."""
    delivered = set(agent.target_subjects) | {r.subject for r in agent.routes}
    urls = [ep.address for ep in targets.values() if ep.kind == "HTTP" and ep.subject in delivered]
    urls += agent.egress
    found = {url_destination(url, namespace) for url in urls}
    return {d for d in found if d is not None}


def nats_namespace(settings: PlatformSettings, nats_url: str, namespace: str) -> str:
    """The namespace of the NATS server's pods: the setting, else the one the NATS URL's host names, else nats."""
    if settings.nats_namespace:
        return settings.nats_namespace
    try:
        host = urlsplit(nats_url if "://" in nats_url else f"nats://{nats_url}").hostname or ""
    except ValueError:
        host = ""
    return _namespace_of_host(host, namespace, short=True) or "nats"


def _peer(namespace: str, pod_labels: dict[str, str] | None = None) -> dict[str, Any]:
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}
    if pod_labels:
        peer["podSelector"] = {"matchLabels": dict(pod_labels)}
    return peer


def _ports(ports: Iterable[int], protocol: str = "TCP") -> list[dict[str, Any]]:
    return [{"protocol": protocol, "port": port} for port in sorted(set(ports))]


def base_egress(settings: PlatformSettings, nats_url: str, namespace: str) -> list[dict[str, Any]]:
    """Egress every Kumeo pod needs: DNS (53, UDP and TCP) to the cluster DNS pods, the NATS port to the NATS pods."""
    return [
        {"to": [_peer(settings.dns_namespace, dict(settings.dns_pod_labels))],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [_peer(nats_namespace(settings, nats_url, namespace), dict(settings.nats_pod_labels))],
         "ports": _ports([_port_of(nats_url, 4222)])},
    ]


def ip_blocks(settings: PlatformSettings) -> list[dict[str, Any]]:
    """``egress_cidrs`` as ipBlocks, each leaving out the ``egress_except_cidrs`` strictly inside it."""
    from kumeo_iac.compile._values import compile_error

    def network(text: str, what: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        try:
            return ipaddress.ip_network(str(text), strict=True)
        except ValueError as exc:
            raise compile_error(f"PlatformSettings.{what}: {text!r} is not a CIDR ({exc})",
                                hint='write e.g. "0.0.0.0/0" or "203.0.113.0/24"') from None

    excepts = [network(e, "egress_except_cidrs") for e in settings.egress_except_cidrs]
    blocks = []
    for text in settings.egress_cidrs:
        cidr = network(text, "egress_cidrs")
        inside = sorted({str(e) for e in excepts
                         if e.version == cidr.version and e != cidr and e.subnet_of(cidr)})  # type: ignore[arg-type]
        blocks.append({"ipBlock": {"cidr": str(cidr), **({"except": inside} if inside else {})}})
    return blocks


def external_egress(settings: PlatformSettings, destinations: Iterable[Destination]) -> list[dict[str, Any]]:
    """Egress rules for destinations: one to the ``egress_cidrs`` on the outside ports, one per namespace."""
    outside = sorted({port for ns, port in destinations if ns is None})
    by_namespace: dict[str, set[int]] = {}
    for ns, port in destinations:
        if ns is not None:
            by_namespace.setdefault(ns, set()).add(port)
    rules = []
    blocks = ip_blocks(settings) if outside else []
    if blocks:
        rules.append({"to": blocks, "ports": _ports(outside)})
    rules += [{"to": [_peer(ns)], "ports": _ports(ports)} for ns, ports in sorted(by_namespace.items())]
    return rules


def metrics_ingress_from(settings: PlatformSettings, namespace: str) -> list[dict[str, Any]]:
    """Who may reach a pod's metrics/health port (and a HumanReview agent's review API): the dashboard's pods
    and the monitoring namespace."""
    return [_peer(settings.dashboard_namespace or namespace, dict(settings.dashboard_pod_labels)),
            _peer(settings.monitoring_namespace)]


def _tmp_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    return {"name": "tmp", "mountPath": "/tmp"}, {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}


def shared_agent_objects(
    *, slug: str, namespace: str, nats_url: str, agents: list[AgentPlan], targets: dict[str, EndpointPlan],
    settings: PlatformSettings,
) -> list[dict[str, Any]]:
    """The objects a workflow's agents share: ServiceAccount, headless metrics Service and NetworkPolicies.

    Sharing them is as tight as one per agent: the ServiceAccount grants nothing (no RBAC, no token mounted), the
    Service only names the pods for scraping, and the policies allow every agent the same traffic (DNS and NATS
    pods out, the dashboard and monitoring in), except calling out, allowed only to the agents labelled
    ``kumeo.dev/egress: external`` (those with an LLM endpoint, an HTTP target or a review webhook), to the
    destinations all of them need together.
    """
    if not agents:
        return []
    selector = agents_selector(slug)
    account = dns_name(slug, SHARED_AGENTS)
    metrics = dns_name(slug, SHARED_METRICS)
    metrics_annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(HTTP_PORT),
                           "prometheus.io/path": "/metrics"}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(account, namespace, labels(slug, account)),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(metrics, namespace, labels(slug, metrics), metrics_annotations),
            # Headless: one DNS record per agent pod, so a scraper reaches every pod, not one at random.
            "spec": {"clusterIP": "None", "selector": selector,
                     "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(account, namespace, labels(slug, account)),
            "spec": {
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": metrics_ingress_from(settings, namespace), "ports": _ports([HTTP_PORT])}],
                "egress": base_egress(settings, nats_url, namespace),
            },
        },
    ]
    if any(a.replicas > 1 for a in agents):
        # One budget for every agent running several replicas: at most one of their pods is evicted at a time,
        # so each keeps at least all but one of its replicas through a node drain (a single replica is left out:
        # a budget over it would block every drain).
        objects.append({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(account, namespace, labels(slug, account)),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {**selector, REPLICATED_LABEL: "true"}}},
        })
    destinations = set().union(*(agent_destinations(a, targets, namespace) for a in agents))
    rules = external_egress(settings, destinations)
    if rules:
        name = dns_name(slug, SHARED_AGENTS, "egress")
        objects.append({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(name, namespace, labels(slug, name)),
            "spec": {
                "podSelector": {"matchLabels": {**selector, EGRESS_LABEL: "external"}},
                "policyTypes": ["Egress"],
                "egress": rules,
            },
        })
    return objects


def agent_objects(
    *,
    slug: str,
    namespace: str,
    nats_url: str,
    agent: AgentPlan,
    agent_dns: str,
    agent_plan_json: str,
    targets: dict[str, EndpointPlan],
    settings: PlatformSettings,
    files_mount_path: str,
) -> list[dict[str, Any]]:
    """An agent's Deployment (the workflow's shared objects, its autoscaler and its consumers are made elsewhere).

    ``agent_plan_json`` is the agent's own Plan (see ``agent_plan``), passed in the pod's environment, so the pod
    template changes exactly when that agent's behaviour does.
    """
    name = dns_name(slug, agent_dns)
    lbl = labels(slug, name, agent_dns)
    pod_labels = dict(lbl)
    if external_egress(settings, agent_destinations(agent, targets, namespace)):
        pod_labels[EGRESS_LABEL] = "external"
    if agent.replicas > 1:
        pod_labels[REPLICATED_LABEL] = "true"
    selector = {"kumeo.dev/workflow": slug, "kumeo.dev/agent": agent_dns}

    env = [
        {"name": "NATS_URL", "value": nats_url},
        {"name": PLAN_ENV, "value": agent_plan_json},
    ]
    tmp_mount, tmp_volume = _tmp_volume()
    volume_mounts = [tmp_mount]
    volumes: list[dict[str, Any]] = [tmp_volume]
    if agent.files:
        env.append({"name": "KUMEO_FILES_DIR", "value": files_mount_path})
        volume_mounts.append({"name": "files", "mountPath": files_mount_path, "readOnly": True})
        if settings.files_volume is not None:
            volumes.append({"name": "files", **dict(settings.files_volume)})
        else:
            volumes.append({"name": "files", "configMap": {
                "name": dns_name(slug, "files"),
                "items": [{"key": files_key(f), "path": f} for f in agent.files],
            }})
    if agent.uses_secrets:  # the kind's declaration (LLM, Custom)
        env += _secret_env(settings)
    if settings.nats_auth and agent.identity is not None:
        env += identity_env(agent.identity, credentials_secret_name(slug))
    if settings.nats_tls:
        tls_env, tls_volume_mount, tls_volume = tls_mount(settings.nats_tls)
        env += tls_env
        volume_mounts.append(tls_volume_mount)
        volumes.append(tls_volume)

    probe, ready = _probes("http")
    container = {
        "name": "agent",
        "image": agent.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "kumeo_iac.runtime"],
        "args": ["--agent", agent.id],
        "env": env,
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],  # TCP, the default
        "livenessProbe": probe,
        "readinessProbe": ready,
        "resources": agent.resources,
        "securityContext": _container_security(),
        "volumeMounts": volume_mounts,
    }
    objects: list[dict[str, Any]] = [{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, lbl, scaling_annotations(agent)),
        "spec": {
            "replicas": agent.replicas,
            "selector": {"matchLabels": selector},
            **_rolling_strategy(agent),
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(HTTP_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "serviceAccountName": dns_name(slug, SHARED_AGENTS),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": max(30, int(agent.timeout_seconds) + 5),
                    "securityContext": _pod_security(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }]
    return objects


# -- the gateway: the pod running a workflow's HTTP/Timer/File sources and HTTP/File targets ------------------------

#: The component label (and name suffix) of a workflow's gateway; agents carry ``kumeo.dev/agent`` instead.
GATEWAY = "gateway"
#: The HTTP source port when the source names none (the runtime's ``HttpSource`` default).
GATEWAY_DEFAULT_SOURCE_PORT = 8080
#: The gateway's /healthz, /readyz and /metrics port (moved up when an HTTP source takes it).
GATEWAY_HEALTH_PORT = 8081
#: Where File sources and targets are relative to in the gateway pod (an emptyDir, or the claim
#: ``PlatformSettings.gateway_data_claim`` names).
GATEWAY_DATA_DIR = "/var/lib/kumeo/io"


def needs_gateway(sources: list[EndpointPlan], targets: list[EndpointPlan]) -> bool:
    """A workflow needs a gateway pod when it has a non-NATS source or an HTTP/File target."""
    return any(ep.kind != "NATS" for ep in sources) or any(ep.kind in ("HTTP", "File") for ep in targets)


def http_source_port(endpoint: EndpointPlan) -> int:
    """The port an HTTP source listens on: ``{ port: N }``, else the URL's port, else 8080 — the same rule as
    ``kumeo_iac.runtime.io.HttpSource`` (a unit test keeps the two in step)."""
    options = endpoint.options or {}
    if options.get("port") is not None:
        return int(options["port"])
    address = endpoint.address or ""
    if "://" in address:
        try:
            port = urlsplit(address).port
        except ValueError:
            port = None
        if port is not None:
            return port
    return GATEWAY_DEFAULT_SOURCE_PORT


def gateway_health_port(source_ports: list[int]) -> int:
    port = GATEWAY_HEALTH_PORT
    while port in source_ports:
        port += 1
    return port


def gateway_objects(
    *,
    slug: str,
    namespace: str,
    nats_url: str,
    workflow_name: str,
    sources: list[EndpointPlan],
    targets: list[EndpointPlan],
    image: str,
    settings: PlatformSettings,
    gateway_plan_json: str,
    identity: NatsIdentity | None = None,
) -> list[dict[str, Any]]:
    """ServiceAccount, Deployment (one replica: Timer and File sources must not run twice), Service (the HTTP
    source ports and the health port) and NetworkPolicy of the workflow's gateway, which runs
    ``python -m kumeo_iac.runtime.io`` (the Gateway ``kumeo run`` starts in-process). ``gateway_plan_json`` is its
    own part of the Plan (the workflow's endpoints, see ``gateway_plan``), passed in the pod's environment."""
    name = dns_name(slug, GATEWAY)
    lbl = labels(slug, name)
    lbl["app.kubernetes.io/component"] = GATEWAY
    lbl["kumeo.dev/component"] = GATEWAY
    selector = {"kumeo.dev/workflow": slug, "kumeo.dev/component": GATEWAY}
    source_ports = sorted({http_source_port(ep) for ep in sources if ep.kind == "HTTP"})
    health_port = gateway_health_port(source_ports)
    uses_files = any(ep.kind == "File" for ep in [*sources, *targets])
    objects: list[dict[str, Any]] = [{
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(name, namespace, lbl),
        "automountServiceAccountToken": False,
    }]

    env = [
        {"name": "NATS_URL", "value": nats_url},
        {"name": "KUMEO_WORKFLOW", "value": workflow_name},
        {"name": PLAN_ENV, "value": gateway_plan_json},
    ]
    tmp_mount, tmp_volume = _tmp_volume()
    volume_mounts = [tmp_mount]
    volumes: list[dict[str, Any]] = [tmp_volume]
    args = ["--workflow", workflow_name, "--health-port", str(health_port)]
    if uses_files:
        args += ["--base-dir", GATEWAY_DATA_DIR]
        volume_mounts.append({"name": "data", "mountPath": GATEWAY_DATA_DIR})
        if settings.gateway_data_claim:
            volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": settings.gateway_data_claim}})
        else:
            volumes.append({"name": "data", "emptyDir": {"sizeLimit": "1Gi"}})
    if settings.nats_auth and identity is not None:
        env += identity_env(identity, credentials_secret_name(slug))
    if settings.nats_tls:
        tls_env, tls_volume_mount, tls_volume = tls_mount(settings.nats_tls)
        env += tls_env
        volume_mounts.append(tls_volume_mount)
        volumes.append(tls_volume)

    ports = [{"name": "http", "containerPort": health_port, "protocol": "TCP"}]
    ports += [{"name": f"in-{port}", "containerPort": port, "protocol": "TCP"} for port in source_ports]
    probe, ready = _probes("http")
    metrics_annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(health_port),
        "prometheus.io/path": "/metrics",
    }
    container = {
        "name": GATEWAY,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "kumeo_iac.runtime.io"],
        "args": args,
        "env": env,
        "ports": ports,
        "livenessProbe": probe,
        "readinessProbe": ready,
        "resources": {"requests": dict(GATEWAY_RESOURCES["requests"]), "limits": dict(GATEWAY_RESOURCES["limits"])},
        "securityContext": _container_security(),
        "volumeMounts": volume_mounts,
    }
    objects.append({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, lbl, {MIN_REPLICAS_ANNOTATION: "1", MAX_REPLICAS_ANNOTATION: "1"}),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            # One gateway at a time: a Timer or File source in two pods would publish twice.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": lbl, "annotations": metrics_annotations},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": _pod_security(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    })

    service_ports = [{"name": "http", "port": health_port, "targetPort": "http", "protocol": "TCP"}]
    service_ports += [{"name": f"in-{port}", "port": port, "targetPort": f"in-{port}", "protocol": "TCP"}
                      for port in source_ports]
    objects.append({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, lbl, metrics_annotations),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": service_ports},
    })

    ingress: list[dict[str, Any]] = [{"from": metrics_ingress_from(settings, namespace),
                                      "ports": _ports([health_port])}]
    if source_ports:
        # HTTP sources take events from anywhere in the cluster (any pod of any namespace).
        ingress.append({"from": [{"namespaceSelector": {}}],
                        "ports": [{"protocol": "TCP", "port": port} for port in source_ports]})
    destinations = {url_destination(ep.address, namespace) for ep in targets if ep.kind == "HTTP"}
    egress = base_egress(settings, nats_url, namespace)
    egress += external_egress(settings, {d for d in destinations if d is not None})
    objects.append({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, namespace, lbl),
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    })
    return objects


def autoscaler(
    *,
    slug: str,
    namespace: str,
    nats_url: str,
    agent: AgentPlan,
    agent_dns: str,
    settings: PlatformSettings,
    target_cpu: int,
    lag_threshold: int,
) -> dict[str, Any]:
    name = dns_name(slug, agent_dns)
    lbl = labels(slug, name, agent_dns)
    if not settings.keda_enabled:
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(name, namespace, lbl, scaling_annotations(agent)),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": agent.replicas,
                "maxReplicas": agent.max_replicas,
                "metrics": [{
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target_cpu}},
                }],
            },
        }
    monitoring = settings.nats_monitoring_endpoint
    if not monitoring:
        host = urlsplit(nats_url if "://" in nats_url else f"nats://{nats_url}").hostname or "nats"
        monitoring = f"{host}:8222"
    triggers = [{
        "type": "nats-jetstream",
        "metadata": {
            "natsServerMonitoringEndpoint": monitoring,
            "account": "$G",
            "stream": c.stream,
            "consumer": c.durable,
            "lagThreshold": str(lag_threshold),
        },
    } for c in agent.consumers]
    depends = ",".join(f"consumer/{c.stream}/{c.durable}" for c in agent.consumers)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(name, namespace, lbl, {**scaling_annotations(agent),
                                                  **({"kumeo.dev/depends-on": depends} if depends else {})}),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicaCount": agent.replicas,
            "maxReplicaCount": agent.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": triggers,
        },
    }


def apply_order(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable sort by kind (agents keep their order within a kind)."""
    rank = {k: i for i, k in enumerate(KIND_ORDER)}
    return sorted(objects, key=lambda o: rank.get(o["kind"], len(rank)))
