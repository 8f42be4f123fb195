"""The edge profile: a whole workflow in one pod, on its own nats-server, a leaf node of the central NATS.

``deployment: { profile: "edge", leaf: { hub, credentials_secret, ca_secret, domain, storage } }`` compiles to:

* **On the site** (the pod): one StatefulSet ``<slug>-edge`` with one replica and two containers. ``nats`` runs
  nats-server with the ConfigMap-rendered config (:func:`leaf_server_config`): clients on 127.0.0.1 only, JetStream
  in the site's own domain with its store on the pod's volume (a ``volumeClaimTemplate``: events queued while the
  link is down survive a pod restart), and one leafnode remote to the hub authenticated by the credentials file of
  the user's Secret, mounted read-only (and, with ``ca_secret``, trusting the hub's private CA from a second Secret,
  mounted read-only too). ``edge`` runs ``python -m kumeo_iac.runtime.edge``: every agent of the
  workflow in one process (`kumeo run`'s runner, the same workers), which creates the workflow's streams,
  consumers and KV buckets on the leaf, as `kumeo run` does. So the site keeps working when its link drops.
* **On the hub** (the central NATS, created by the deployer): the streams of ``EdgePlan.hub_streams``, one per site,
  ``KUMEO_<WF>_EDGE_<DOMAIN>``. It has no subjects of its own: it *sources* the site's results (its NATS target
  subjects) and dead letters from the leaf's streams through the leaf's JetStream domain
  (``external.api = $JS.<domain>.API``). A source remembers how far it got, so after an outage it catches up from
  there: every result reaches the hub once, none lost, none doubled.

The workflow's own streams stay in the Plan (``WorkflowPlan.streams``, the agents' consumers): they are the leaf's.
A deployer creates ``edge.hub_streams`` on the central NATS instead of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any, Final

from nats.js.api import ExternalStream, StreamSource

from kumeo_iac.compile import _kubernetes as k8s
from kumeo_iac.compile._names import Subjects, dns_name, stream_name
from kumeo_iac.compile._nats import stream_config
from kumeo_iac.compile._plan import AgentPlan, EdgePlan, StreamPlan, WorkflowPlan
from kumeo_iac.compile._settings import PlatformSettings
from kumeo_iac.compile._slices import plan_text
from kumeo_iac.compile._values import compile_error
from kumeo_iac.spec import WorkflowSpec, edge_problems, hub_urls, is_edge

__all__ = [
    "EDGE_COMPONENT",
    "HUB_ROLE",
    "LEAF_CA_FILE",
    "LEAF_CONFIG_FILE",
    "LEAF_CREDENTIALS_FILE",
    "LOCAL_NATS_URL",
    "edge_image",
    "edge_objects",
    "edge_pod_plan",
    "hub_streams",
    "leaf_server_config",
    "with_edge",
]

#: The component label (and name suffix) of an edge workflow's pod.
EDGE_COMPONENT: Final = "edge"
#: The role of a hub stream in the Plan (``StreamPlan.role``).
HUB_ROLE: Final = "edge"
#: The leaf nats-server's client port, on the pod's loopback only, and its monitoring port (the probes).
LEAF_CLIENT_PORT: Final = 4222
LEAF_MONITOR_PORT: Final = 8222
LOCAL_NATS_URL: Final = f"nats://127.0.0.1:{LEAF_CLIENT_PORT}"
LEAF_CONFIG_DIR: Final = "/etc/kumeo/leaf"
LEAF_CONFIG_FILE: Final = f"{LEAF_CONFIG_DIR}/nats.conf"
LEAF_CREDENTIALS_DIR: Final = "/etc/kumeo/leaf-credentials"
LEAF_CREDENTIALS_FILE: Final = f"{LEAF_CREDENTIALS_DIR}/leaf.creds"
LEAF_STORE_DIR: Final = "/var/lib/kumeo/leaf"
LEAF_CA_DIR: Final = "/etc/kumeo/leaf-ca"
LEAF_CA_FILE: Final = f"{LEAF_CA_DIR}/ca.crt"
DEFAULT_CREDENTIALS_KEY: Final = "creds"
DEFAULT_CA_KEY: Final = "ca.crt"
DEFAULT_STORAGE: Final = "1Gi"
#: The leaf's JetStream may fill this share of its volume (the rest is room for the server's own files).
STORE_SHARE: Final = 0.9
LEAF_RESOURCES: Final = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
#: The pod-template annotation holding the checksum of the leaf's config (a change rolls the pod).
LEAF_CONFIG_ANNOTATION: Final = "kumeo.dev/leaf-config-checksum"
_IMAGE_PRIORITY: Final = ("ml", "llm", "base")
_UNITS: Final = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10,
                 "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "m": 0.001}
_QUANTITY: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([a-zA-Z]*)\Z")


def with_edge(plan: WorkflowPlan, wf: WorkflowSpec, settings: PlatformSettings) -> WorkflowPlan:
    """The workflow's Plan with its ``edge`` part when its deployment chooses the edge profile (else the Plan as it
    is); raises the first problem of its ``profile``/``leaf`` (the rules ``kumeo check`` reports), a partitioned
    agent, or an endpoint the edge process does not run."""
    deployment = wf.deployment
    for problem in edge_problems(deployment):
        assert deployment is not None
        head, _, rest = problem.argument.partition(".")
        node = deployment.leaf if rest and deployment.leaf is not None else deployment
        raise compile_error(f"deployment {problem.argument} {problem.message}", workflow=wf.name,
                            span=node.span_for(rest or head))
    if not is_edge(deployment):
        return plan
    assert deployment is not None
    for agent in wf.all_agents():
        if agent.partitions is not None:
            raise compile_error(f"agent {agent.id!r} has partitions, but an edge workflow runs every agent in one "
                                "process", workflow=wf.name, agent=agent.id, span=agent.span_for("partitions"),
                                hint="remove `partitions`, or deploy with the cluster profile")
    for role, endpoints in (("source", wf.sources), ("target", wf.targets)):
        for e in endpoints:
            if e.kind_name != "NATS":
                raise compile_error(
                    f"{e.kind_name} {role}s are not run by the edge pod yet ({role} {str(e.address)!r}): an edge "
                    "workflow takes its events and delivers its results on NATS subjects of its leaf server",
                    workflow=wf.name, span=e.span,
                    hint=f"use a NATS {role} (the site's devices publish to the leaf server), or the cluster profile")
    leaf = deployment.leaf
    assert leaf is not None and leaf.credentials_secret is not None
    domain = leaf.domain or plan.slug
    secret, key = _secret_ref(leaf.credentials_secret, DEFAULT_CREDENTIALS_KEY)
    ca_secret, ca_key = _secret_ref(leaf.ca_secret, DEFAULT_CA_KEY) if leaf.ca_secret else (None, None)
    storage = str(leaf.storage or DEFAULT_STORAGE)
    hub = hub_urls(leaf.hub)
    edge = EdgePlan(
        domain=domain, hub=hub, credentials_secret=secret, credentials_key=key, ca_secret=ca_secret, ca_key=ca_key,
        storage=storage, storage_class=leaf.storage_class,
        # One image for the pod: the Kumeo image running the agents also carries nats-server (every image class
        # installs the `local` extra, kumeo_iac.images.IMAGE_EXTRAS), the version Kumeo's tests run.
        image=str(leaf.image) if leaf.image else edge_image(plan.agents),
        hub_streams=hub_streams(plan, domain, settings),
        server_config=leaf_server_config(
            server_name=dns_name(plan.slug, EDGE_COMPONENT, domain), domain=domain, hub=hub,
            credentials=LEAF_CREDENTIALS_FILE, store_dir=LEAF_STORE_DIR, max_file_store=_store_bytes(storage),
            ca_file=LEAF_CA_FILE if ca_secret else None))
    return dataclasses.replace(plan, edge=edge)


def _secret_ref(value: str, default_key: str) -> tuple[str, str]:
    """``"name"`` or ``"name/key"`` (a checked ``leaf.*_secret``) as the Secret's name and key."""
    name, _, key = value.partition("/")
    return name, key or default_key


def hub_streams(plan: WorkflowPlan, domain: str, settings: PlatformSettings) -> list[StreamPlan]:
    """The stream the hub keeps for one site: sources of the site's results and dead letters, read from the leaf's
    streams through its JetStream domain. No subjects of its own, so it clashes with nothing on the hub."""
    api = f"$JS.{domain}.API"
    wanted: dict[tuple[str, str | None], None] = {}
    for target in plan.targets:
        if target.kind == "NATS" and target.stream:
            own = next((s for s in plan.streams if s.name == target.stream), None)
            whole = own is not None and own.role == "targets"
            wanted[(target.stream, None if whole else target.subject)] = None
    wanted[(stream_name(plan.slug), f"{Subjects(plan.slug).prefix}.dlq.>")] = None
    sources = [StreamSource(name=name, filter_subject=subject, external=ExternalStream(api=api))
               for name, subject in sorted(wanted, key=lambda w: (w[0], w[1] or ""))]
    name = stream_name(plan.slug, f"{HUB_ROLE}_{domain.replace('-', '_')}")
    config = stream_config(
        name,
        description=f"Kumeo {plan.name}: results and dead letters of edge site {domain}, sourced from its leaf",
        max_age=settings.max_age_seconds, replicas=settings.stream_replicas, sources=sources,
        metadata={"kumeo.dev/workflow": plan.slug, "kumeo.dev/role": HUB_ROLE, "kumeo.dev/edge-domain": domain})
    return [StreamPlan(name=name, role=HUB_ROLE, config=config)]


def leaf_server_config(*, server_name: str, domain: str, hub: list[str], credentials: str | None, store_dir: str,
                       port: int = LEAF_CLIENT_PORT, monitor_port: int = LEAF_MONITOR_PORT,
                       max_file_store: int | None = None, ca_file: str | None = None) -> str:
    """The leaf nats-server's configuration (JSON, which nats-server reads as its config format): clients on
    loopback only, JetStream in the site's ``domain``, one remote to the hub (``credentials``: a creds file;
    ``ca_file``: the CA the hub's TLS certificate must be signed by, in place of the system's roots)."""
    remote: dict[str, Any] = {"urls": list(hub)}
    if credentials:
        remote["credentials"] = credentials
    if ca_file:
        remote["tls"] = {"ca_file": ca_file}
    jetstream: dict[str, Any] = {"store_dir": store_dir, "domain": domain, "max_memory_store": 64 * 1024 * 1024}
    if max_file_store:
        jetstream["max_file_store"] = max_file_store
    config = {
        "server_name": server_name,
        "host": "127.0.0.1",
        "port": port,
        "http_port": monitor_port,
        "jetstream": jetstream,
        "leafnodes": {"reconnect": "2s", "remotes": [remote]},
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def edge_pod_plan(plan: WorkflowPlan) -> WorkflowPlan:
    """The workflow as the edge process sees it: every agent, the streams it creates on the leaf, its own NATS;
    no Kubernetes objects, no hub streams, no source lines (an edit above an agent must not roll the pod)."""
    return dataclasses.replace(
        plan, nats_url=LOCAL_NATS_URL, kubernetes=[], edge=None, gateway_identity=None,
        agents=[dataclasses.replace(a, line=None) for a in plan.agents],
        sources=[dataclasses.replace(e, line=None) for e in plan.sources],
        targets=[dataclasses.replace(e, line=None) for e in plan.targets])


def edge_objects(plan: WorkflowPlan, settings: PlatformSettings, *, files_mount_path: str) -> list[dict[str, Any]]:
    """The edge workflow's Kubernetes objects: the agents' shared objects, the leaf's ConfigMap, the StatefulSet
    and a NetworkPolicy letting the pod reach the hub."""
    edge = plan.edge
    assert edge is not None
    slug, namespace = plan.slug, plan.namespace
    name = dns_name(slug, EDGE_COMPONENT)
    lbl = {**k8s.labels(slug, name), "app.kubernetes.io/component": "agent", "kumeo.dev/component": EDGE_COMPONENT}
    selector = {"kumeo.dev/workflow": slug, "kumeo.dev/component": EDGE_COMPONENT}
    targets = {ep.subject: ep for ep in plan.targets}
    objects = k8s.shared_agent_objects(slug=slug, namespace=namespace, nats_url=LOCAL_NATS_URL, agents=plan.agents,
                                       targets=targets, settings=settings)
    objects.append({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": k8s._meta(name, namespace, k8s.labels(slug, name)),
        "data": {"nats.conf": edge.server_config},
    })
    objects.append(_stateful_set(plan, settings, name, lbl, selector, files_mount_path))
    destinations = {k8s.url_destination(url, namespace, default_port=7422) for url in edge.hub}
    egress = [k8s.base_egress(settings, LOCAL_NATS_URL, namespace)[0]]  # DNS
    egress += k8s.external_egress(settings, {d for d in destinations if d is not None})
    objects.append({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": k8s._meta(name, namespace, k8s.labels(slug, name)),
        "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Egress"], "egress": egress},
    })
    return objects


def _stateful_set(plan: WorkflowPlan, settings: PlatformSettings, name: str, lbl: dict[str, str],
                  selector: dict[str, str], files_mount_path: str) -> dict[str, Any]:
    edge = plan.edge
    assert edge is not None
    pod_text = plan_text(edge_pod_plan(plan))
    if len(pod_text.encode("utf-8")) > k8s.PLAN_ENV_LIMIT:
        raise compile_error(
            f"the edge pod's Plan is {len(pod_text.encode('utf-8')) // 1024} KiB, more than the "
            f"{k8s.PLAN_ENV_LIMIT // 1024} KiB a pod's environment can carry", workflow=plan.name,
            hint="move large prompts, rule tables or inline data into files the agents read")
    pod_labels = dict(lbl)
    targets = {ep.subject: ep for ep in plan.targets}
    if any(k8s.external_egress(settings, k8s.agent_destinations(a, targets, plan.namespace)) for a in plan.agents):
        pod_labels[k8s.EGRESS_LABEL] = "external"
    tmp_mount, tmp_volume = k8s._tmp_volume()
    env: list[dict[str, Any]] = [
        {"name": "NATS_URL", "value": LOCAL_NATS_URL},
        {"name": "KUMEO_WORKFLOW", "value": plan.name},
        {"name": k8s.PLAN_ENV, "value": pod_text},
    ]
    mounts: list[dict[str, Any]] = [tmp_mount]
    volumes: list[dict[str, Any]] = [
        tmp_volume,
        {"name": "leaf-config", "configMap": {"name": name, "items": [{"key": "nats.conf", "path": "nats.conf"}]}},
        {"name": "leaf-credentials", "secret": {
            "secretName": edge.credentials_secret, "defaultMode": 0o440,
            "items": [{"key": edge.credentials_key, "path": LEAF_CREDENTIALS_FILE.rsplit("/", 1)[1]}]}},
    ]
    nats_mounts: list[dict[str, Any]] = [
        {"name": "leaf-config", "mountPath": LEAF_CONFIG_DIR, "readOnly": True},
        {"name": "leaf-credentials", "mountPath": LEAF_CREDENTIALS_DIR, "readOnly": True},
        {"name": "leaf-store", "mountPath": LEAF_STORE_DIR},
    ]
    if edge.ca_secret:
        volumes.append({"name": "leaf-ca", "secret": {
            "secretName": edge.ca_secret, "defaultMode": 0o440,
            "items": [{"key": edge.ca_key or DEFAULT_CA_KEY, "path": LEAF_CA_FILE.rsplit("/", 1)[1]}]}})
        nats_mounts.append({"name": "leaf-ca", "mountPath": LEAF_CA_DIR, "readOnly": True})
    files = sorted({f for a in plan.agents for f in a.files})
    if files:
        env.append({"name": "KUMEO_FILES_DIR", "value": files_mount_path})
        mounts.append({"name": "files", "mountPath": files_mount_path, "readOnly": True})
        if settings.files_volume is not None:
            volumes.append({"name": "files", **dict(settings.files_volume)})
        else:
            volumes.append({"name": "files", "configMap": {
                "name": dns_name(plan.slug, "files"), "items": [{"key": k8s.files_key(f), "path": f} for f in files]}})
    if any(a.uses_secrets for a in plan.agents):  # a kind that reads the platform's secrets (LLM, Custom)
        env += k8s._secret_env(settings)
    image = edge_image(plan.agents)
    probe, ready = k8s._probes("http")
    runtime = {
        "name": EDGE_COMPONENT,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "kumeo_iac.runtime.edge"],
        "args": ["--workflow", plan.name, "--nats", LOCAL_NATS_URL,
                 *(["--base-dir", files_mount_path] if files else [])],
        "env": env,
        "ports": [{"name": "http", "containerPort": k8s.HTTP_PORT, "protocol": "TCP"}],
        "livenessProbe": probe,
        "readinessProbe": ready,
        "resources": _largest([a.resources for a in plan.agents]),
        "securityContext": k8s._container_security(),
        "volumeMounts": mounts,
    }
    nats_probe = {"httpGet": {"path": "/healthz", "port": "nats-monitor"}, "initialDelaySeconds": 5,
                  "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}
    nats = {
        "name": "nats",
        "image": edge.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["nats-server", "--config", LEAF_CONFIG_FILE],
        "ports": [{"name": "nats-monitor", "containerPort": LEAF_MONITOR_PORT, "protocol": "TCP"}],
        "livenessProbe": nats_probe,
        "readinessProbe": {**nats_probe, "httpGet": {"path": "/healthz?js-enabled-only=true", "port": "nats-monitor"},
                           "periodSeconds": 5},
        "resources": {"requests": dict(LEAF_RESOURCES["requests"]), "limits": dict(LEAF_RESOURCES["limits"])},
        "securityContext": k8s._container_security(),
        "volumeMounts": nats_mounts,
    }
    claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": edge.storage}}}
    if edge.storage_class:
        claim["storageClassName"] = edge.storage_class
    timeout = max([a.timeout_seconds for a in plan.agents], default=0.0)
    checksum = hashlib.sha256(edge.server_config.encode("utf-8")).hexdigest()
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": k8s._meta(name, plan.namespace, lbl, {k8s.MIN_REPLICAS_ANNOTATION: "1",
                                                          k8s.MAX_REPLICAS_ANNOTATION: "1"}),
        "spec": {
            "replicas": 1,  # one leaf server and one process per site: a second pod would be a second site
            "serviceName": dns_name(plan.slug, k8s.SHARED_METRICS),
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {
                    "prometheus.io/scrape": "true", "prometheus.io/port": str(k8s.HTTP_PORT),
                    "prometheus.io/path": "/metrics", LEAF_CONFIG_ANNOTATION: checksum}},
                "spec": {
                    "serviceAccountName": dns_name(plan.slug, k8s.SHARED_AGENTS),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": max(30, int(timeout) + 5),
                    "securityContext": k8s._pod_security(),
                    "containers": [nats, runtime],
                    "volumes": volumes,
                },
            },
            "volumeClaimTemplates": [{
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "leaf-store", "labels": k8s.labels(plan.slug, name)},
                "spec": claim,
            }],
        },
    }


def edge_image(agents: list[AgentPlan]) -> str:
    """The image of the edge pod: it runs every agent, so the image of the richest class among them; its leaf
    container runs the same image unless ``leaf.image`` names another."""
    for image_class in _IMAGE_PRIORITY:
        for agent in agents:
            if agent.image_class == image_class:
                return agent.image
    return agents[0].image if agents else ""


def _amount(quantity: Any) -> float | None:
    match = _QUANTITY.match(str(quantity))
    if not match or match.group(2) not in _UNITS:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


def _largest(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """The edge container's requests and limits: per resource, the largest any agent asks for (one process runs
    them all, one event at a time per agent; the agents' own figures are sized for one agent's pod)."""
    out: dict[str, dict[str, Any]] = {}
    for res in resources:
        for section in ("requests", "limits"):
            for key, value in (res.get(section) or {}).items():
                current = out.setdefault(section, {}).get(key)
                if current is None or (_amount(value) or 0) > (_amount(current) or 0):
                    out[section][key] = value
    return out


def _store_bytes(storage: str) -> int | None:
    amount = _amount(storage)
    return int(amount * STORE_SHARE) if amount else None
