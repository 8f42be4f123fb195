"""Kubernetes hardening, checked on the rendered objects of every example (examples/**/*.kumeo) and scenario.

For every pod: the restricted Pod Security Standard (non-root, seccomp RuntimeDefault, no privilege escalation,
all capabilities dropped, read-only root filesystem, only restricted volume types, no host namespaces), resource
requests and limits; for every agent: the NetworkPolicies that select its pods (as Kubernetes applies them: every
policy whose podSelector matches the pod's labels, their rules added up) allow egress, as (destination, port) pairs,
to the DNS pods, the NATS pods and — for the agents that call out — the destinations of their LLM endpoint, HTTP
targets and review webhooks (the CIDRs of ``egress_cidrs`` or a Service's namespace), and nothing more, and ingress
only on the metrics port from the dashboard's pods and the monitoring namespace; a ServiceAccount that mounts no
token and no RBAC at all; a (shared) PodDisruptionBudget exactly when it runs more than one replica. Each check also
runs with per-agent NATS users, TLS and KEDA on, and those objects are validated against the Kubernetes 1.30 schema.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kumeo_iac.compile import PlatformSettings, compile_program
from kumeo_iac.compile._kubernetes import (
    HTTP_PORT,
    agent_destinations,
    nats_namespace,
    url_destination,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p for p in (ROOT / "tests" / "scenarios").iterdir()
                   if p.is_dir() and not p.name.startswith(("_", ".")))
EXAMPLES = sorted((ROOT / "examples").glob("**/*.kumeo"))
SECURED = {"nats_auth": True, "nats_tls": {"secret": "nats-client-tls"}}
RESTRICTED_VOLUMES = {"configMap", "secret", "emptyDir", "persistentVolumeClaim", "projected", "downwardAPI",
                      "csi", "ephemeral"}
RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def _program(source: Path):
    if source.suffix == ".kumeo":
        from kumeo_iac.lang import parse_file

        result = parse_file(source)
        assert result.ok, [d.format() for d in result.diagnostics]
        return result.program, source.parent, {}
    settings_file = source / "settings.json"
    settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}
    if (source / "workflow.kumeo").exists():
        program, _, _ = _program(source / "workflow.kumeo")
        return program, source, settings
    return runpy.run_path(str(source / "program.py"))["PROGRAM"], source, settings


CASES = [(f"example:{p.relative_to(ROOT)}", p) for p in EXAMPLES] + [(f"scenario:{d.name}", d) for d in SCENARIOS]
VARIANTS = {"default": {}, "secured": SECURED, "secured-keda": {**SECURED, "keda_enabled": True}}


def _plans():
    for label, source in CASES:
        program, base, settings = _program(source)
        for variant, extra in VARIANTS.items():
            platform = PlatformSettings(**{**settings, **extra})
            plan = compile_program(program, base_dir=base, settings=platform)
            for wf in plan.workflows:
                yield f"{label}[{variant}]", wf, platform


SETTINGS = {label: platform for label, _, platform in _plans()}
PLANS = [(label, wf) for label, wf, _ in _plans()]
IDS = [label for label, _ in PLANS]


def _objects(wf, kind):
    return [o for o in wf.kubernetes if o["kind"] == kind]


def _workloads(wf):
    """The objects that run pods: Deployments, and StatefulSets for partitioned agents."""
    return _objects(wf, "Deployment") + _objects(wf, "StatefulSet")


def _pods(wf):
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in _workloads(wf)]


def test_every_example_and_scenario_is_covered():
    assert len(EXAMPLES) >= 2 and len(SCENARIOS) >= 5
    assert all(_workloads(wf) for _, wf in PLANS)  # an edge workflow runs one StatefulSet, no Deployment
    # some agent delivers to an HTTP target, so the egress policy and its label are exercised
    assert any(p["metadata"]["name"] == f"{wf.slug}-agents-egress" for _, wf in PLANS
               for p in _objects(wf, "NetworkPolicy"))
    # and some LLM agent calls out to its endpoint (labelled for the egress policy)
    assert any(a.kind == "LLM" and d["spec"]["template"]["metadata"]["labels"].get("kumeo.dev/egress") == "external"
               and d["metadata"]["name"].endswith(f"-{a.id}") for _, wf in PLANS for a in wf.agents
               for d in _objects(wf, "Deployment"))


@pytest.mark.parametrize("label, wf", PLANS, ids=IDS)
def test_every_pod_meets_the_restricted_pod_security_standard(label, wf):
    for name, pod in _pods(wf):
        where = f"{label} {name}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["securityContext"].get("runAsUser", 1) != 0, where
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(host), where
        for volume in pod.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUMES, f"{where}: volume {volume['name']} is {kinds}"
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True and sc.get("runAsUser", 1) != 0, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where  # nothing added back
            assert not sc.get("privileged"), where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert "hostPort" not in json.dumps(c.get("ports", [])), where


@pytest.mark.parametrize("label, wf", PLANS, ids=IDS)
def test_every_container_has_resource_requests_and_limits(label, wf):
    for name, pod in _pods(wf):
        for c in pod.get("initContainers", []) + pod["containers"]:
            for part in ("requests", "limits"):
                assert c["resources"][part].get("cpu") and c["resources"][part].get("memory"), f"{label} {name}"


def _selector_of(obj):
    return obj["spec"].get("podSelector", obj["spec"].get("selector", {})).get("matchLabels")


def _applying_policies(wf, deployment):
    """The NetworkPolicies Kubernetes applies to the Deployment's pods: those whose podSelector (matchLabels only,
    as compile writes them) is a subset of the pod template's labels."""
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    found = []
    for policy in _objects(wf, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        assert set(selector) == {"matchLabels"}, "compile selects pods by matchLabels only"
        assert selector["matchLabels"], "an empty podSelector selects every pod of the namespace"
        if selector["matchLabels"].items() <= labels.items():
            found.append(policy)
    return found


def _peer_key(peer):
    """A peer of a rule as a hashable value; a selector must name its namespace (never every namespace)."""
    if "ipBlock" in peer:
        assert set(peer) == {"ipBlock"}
        block = peer["ipBlock"]
        return ("cidr", block["cidr"], tuple(block.get("except", ())))
    assert set(peer) <= {"namespaceSelector", "podSelector"} and "namespaceSelector" in peer, peer
    namespace = peer["namespaceSelector"]
    assert set(namespace) == {"matchLabels"} and list(namespace["matchLabels"]) == ["kubernetes.io/metadata.name"]
    pods = peer.get("podSelector", {"matchLabels": {}})
    assert set(pods) == {"matchLabels"}
    return ("pods", namespace["matchLabels"]["kubernetes.io/metadata.name"],
            tuple(sorted(pods["matchLabels"].items())))


def _union(policies, direction):
    """(peer, port, protocol) triples the policies allow in one direction (each rule: its peers × its ports).
    A rule without ports or without peers would allow every port or every destination: refused here."""
    key, side = direction.lower(), ("to" if direction == "Egress" else "from")
    allowed = set()
    for policy in policies:
        if direction not in policy["spec"]["policyTypes"]:
            continue
        for rule in policy["spec"].get(key, []):
            assert rule.get("ports"), f"{policy['metadata']['name']}: a {key} rule without ports allows every port"
            assert rule.get(side), f"{policy['metadata']['name']}: a {key} rule without peers allows every peer"
            allowed |= {(_peer_key(peer), p["port"], p.get("protocol", "TCP"))
                        for peer in rule[side] for p in rule["ports"]}
    return allowed


def _outside(platform):
    """The peers of ``egress_cidrs``, independently of compile: each CIDR minus the exceptions strictly inside."""
    import ipaddress

    peers = set()
    for text in platform.egress_cidrs:
        cidr = ipaddress.ip_network(text)
        inside = sorted(str(e) for e in map(ipaddress.ip_network, platform.egress_except_cidrs)
                        if e.version == cidr.version and e != cidr and e.subnet_of(cidr))
        peers.add(("cidr", str(cidr), tuple(inside)))
    return peers


def _base_needs(wf, platform):
    nats_port = urlsplit(wf.nats_url if "://" in wf.nats_url else f"nats://{wf.nats_url}").port or 4222
    dns = ("pods", platform.dns_namespace, tuple(sorted(platform.dns_pod_labels.items())))
    nats = ("pods", nats_namespace(platform, wf.nats_url, wf.namespace),
            tuple(sorted(platform.nats_pod_labels.items())))
    return {(dns, 53, "UDP"), (dns, 53, "TCP"), (nats, nats_port, "TCP")}


def _destination_needs(destinations, platform):
    needed = set()
    for namespace, port in destinations:
        if namespace is None:
            needed |= {(peer, port, "TCP") for peer in _outside(platform)}
        else:
            needed.add((("pods", namespace, ()), port, "TCP"))
    return needed


def _metrics_sources(wf, platform):
    dashboard_labels = tuple(sorted(platform.dashboard_pod_labels.items()))
    return {("pods", platform.dashboard_namespace or wf.namespace, dashboard_labels),
            ("pods", platform.monitoring_namespace, ())}


@pytest.mark.parametrize("label, wf", PLANS, ids=IDS)
def test_network_policies_allow_only_nats_dns_declared_endpoints_and_metrics(label, wf):
    platform = SETTINGS[label]
    targets = {t.subject: t for t in wf.targets}
    # the agents calling out share one egress policy: each may reach what all of them need together
    calling_out = set().union(*(agent_destinations(a, targets, wf.namespace) for a in wf.agents))
    for deployment in _workloads(wf):
        where = f"{label} {deployment['metadata']['name']}"
        policies = _applying_policies(wf, deployment)
        # isolated both ways: some policy selecting the pod restricts ingress and egress
        assert any(sorted(p["spec"]["policyTypes"]) == ["Egress", "Ingress"] for p in policies), where
        if _is_edge(deployment):
            continue  # the edge pod reaches its hub, not the central NATS: tests/unit/test_edge.py checks it
        if _is_gateway(deployment):
            (policy,) = policies  # the gateway's own policy, and none of the agents' applies to it
            _check_gateway_policy(label, wf, deployment, policy, platform)
            continue
        assert not any(_is_gateway(p) for p in policies), where
        agent = wf.agent(_agent_of(deployment))
        own = agent_destinations(agent, targets, wf.namespace)
        needed = _base_needs(wf, platform) | (_destination_needs(calling_out, platform) if own else set())
        assert _destination_needs(own, platform) <= needed
        egress = _union(policies, "Egress")
        assert egress == needed, f"{where}: egress {sorted(egress)}, needs exactly {sorted(needed)}"
        ingress = _union(policies, "Ingress")
        assert ingress == {(peer, HTTP_PORT, "TCP") for peer in _metrics_sources(wf, platform)}, where
        # the LLM agents reach their endpoint (they could not before: no egress beyond NATS and DNS)
        if agent.kind == "LLM" and own:
            assert deployment["spec"]["template"]["metadata"]["labels"].get("kumeo.dev/egress") == "external"


def _agent_of(workload) -> str:
    """The agent a worker pod runs: ``--agent ID`` in its container's args."""
    args = workload["spec"]["template"]["spec"]["containers"][0]["args"]
    return args[args.index("--agent") + 1]


def _is_gateway(obj) -> bool:
    return obj["metadata"]["labels"].get("kumeo.dev/component") == "gateway"


def _is_edge(obj) -> bool:
    """The one pod of an edge workflow (every agent in one process beside its leaf nats-server)."""
    return obj["metadata"]["labels"].get("kumeo.dev/component") == "edge"


def _check_gateway_policy(label, wf, deployment, policy, platform):
    """The gateway: ingress on its health port (the dashboard's pods, monitoring) and its HTTP source ports
    (anywhere in the cluster, nothing else); egress to the DNS pods, the NATS pods and the workflow's HTTP targets
    only."""
    from kumeo_iac.compile._kubernetes import http_source_port

    spec = policy["spec"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    health = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
    sources = {http_source_port(s) for s in wf.sources if s.kind == "HTTP"}
    ingress = {p["port"] for rule in spec["ingress"] for p in rule["ports"]}
    assert ingress == {health} | sources, label
    for rule in spec["ingress"]:
        assert rule.get("ports") and rule.get("from"), f"{label}: an ingress rule open to everything"
        if any(p["port"] == health for p in rule["ports"]):
            assert {_peer_key(peer) for peer in rule["from"]} == _metrics_sources(wf, platform), label
    destinations = {url_destination(t.address, wf.namespace) for t in wf.targets if t.kind == "HTTP"}
    needed = _base_needs(wf, platform) | _destination_needs({d for d in destinations if d}, platform)
    assert _union([policy], "Egress") == needed, label


def test_workflows_with_http_timer_or_file_endpoints_get_a_gateway():
    seen = 0
    for label, wf in PLANS:
        needs = any(s.kind != "NATS" for s in wf.sources) or any(t.kind in ("HTTP", "File") for t in wf.targets)
        gateways = [d for d in _workloads(wf) if _is_gateway(d)]
        assert len(gateways) == (1 if needs else 0), label
        seen += needs
    assert seen  # at least one example or scenario exercises the gateway


@pytest.mark.parametrize("label, wf", PLANS, ids=IDS)
def test_rbac_service_accounts_mount_no_token_and_agents_get_no_roles(label, wf):
    assert not [o for o in wf.kubernetes if o["kind"] in RBAC_KINDS], f"{label}: agents need no Kubernetes API"
    accounts = {a["metadata"]["name"]: a for a in _objects(wf, "ServiceAccount")}
    used = {}
    for deployment in _workloads(wf):
        pod = deployment["spec"]["template"]["spec"]
        account = accounts.get(pod["serviceAccountName"])
        assert account is not None, f"{label}: {pod['serviceAccountName']} is not created"
        assert account["automountServiceAccountToken"] is False
        assert pod["automountServiceAccountToken"] is False
        used.setdefault(pod["serviceAccountName"], []).append("gateway" if _is_gateway(deployment) else "agent")
    # the agents share one account (it grants nothing: no token, no role); the gateway has its own
    gateway = [d for d in _workloads(wf) if _is_gateway(d)]
    expected = {f"{wf.slug}-agents": ["agent"] * (1 if wf.edge is not None else len(wf.agents))}
    if gateway:
        expected[f"{wf.slug}-gateway"] = ["gateway"]
    assert used == expected, label
    assert set(accounts) == set(expected), f"{label}: an account no pod uses"


@pytest.mark.parametrize("label, wf", PLANS, ids=IDS)
def test_a_pod_disruption_budget_covers_exactly_the_deployments_running_more_than_one_replica(label, wf):
    budgets = _objects(wf, "PodDisruptionBudget")
    assert len(budgets) <= 1, label  # one per workflow, over every replicated agent
    for deployment in _workloads(wf):
        where = f"{label} {deployment['metadata']['name']}"
        pod = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if _selector_of(b).items() <= pod.items()]
        # one replica: a budget over it would block every node drain (and the gateway runs one)
        assert len(covering) == (1 if deployment["spec"]["replicas"] > 1 else 0), where
    for budget in budgets:
        assert budget["spec"] == {"maxUnavailable": 1, "selector": budget["spec"]["selector"]}, label


@pytest.mark.parametrize("label, wf", [(lbl, wf) for lbl, wf in PLANS if "[secured" in lbl],
                         ids=[lbl for lbl in IDS if "[secured" in lbl])
def test_secured_pods_read_their_own_credentials_and_tls_from_secrets(label, wf):
    for deployment in _workloads(wf):
        if _is_edge(deployment):
            continue  # its agents talk to the pod's own leaf server; the leaf reads its credentials file
        pod = deployment["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        identity = wf.gateway_identity if _is_gateway(deployment) else wf.agent(_agent_of(deployment)).identity
        assert env["NATS_USER"]["value"] == identity.user
        ref = env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        # one Secret per workflow, one key per NATS user: each pod reads its own key only
        assert ref == {"name": f"{wf.slug}-nats", "key": identity.user}
        assert "value" not in env["NATS_PASSWORD"]
        assert env["NATS_TLS_CA"]["value"].startswith("/etc/kumeo/nats-tls/")
        (tls,) = [v for v in pod["volumes"] if v["name"] == "nats-tls"]
        assert tls["secret"]["secretName"] == "nats-client-tls"
    names = [json.dumps(d["spec"]["template"]["spec"]["containers"][0]["env"]) for d in _workloads(wf)
             if not _is_edge(d)]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("label, wf", PLANS, ids=IDS)
def test_the_metrics_service_selects_every_agent_pod_and_no_gateway(label, wf):
    (service,) = [s for s in _objects(wf, "Service") if not _is_gateway(s)]
    assert service["metadata"]["name"] == f"{wf.slug}-metrics" and service["spec"]["clusterIP"] == "None"
    selector = service["spec"]["selector"]
    for deployment in _workloads(wf):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert (selector.items() <= labels.items()) is not _is_gateway(deployment), label


def test_secured_objects_are_valid_for_kubernetes_1_30():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for label, wf in PLANS:
        if "[secured]" not in label:
            continue
        for obj in wf.kubernetes:
            if obj["apiVersion"].startswith("keda.sh/") or obj["apiVersion"].startswith("monitoring.coreos.com/"):
                continue
            try:
                kubernetes_validate.validate(json.loads(json.dumps(obj)), "1.30", strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{label} {obj['kind']}/{obj['metadata']['name']}: {exc.message}")
            checked += 1
    assert checked
