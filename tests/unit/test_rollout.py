"""Which pods roll for which change: one kind of change at a time to the fraud example, compared pod template by pod
template (a Deployment rolls exactly when its ``spec.template`` changes).

Each pod carries only its own part of the Plan (``KUMEO_PLAN_JSON``) and the checksum of only the files it reads, so
a change rolls the agents whose behaviour it changes and no other. The expected sets below are what happens; where a
change rolls more than its agent, the comment says why.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from kumeo_iac.compile import PlatformSettings, compile_program
from kumeo_iac.lang import parse_file
from kumeo_iac.manifests import workflow_manifests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud_detection"
SOURCE = "fraud_detection.kumeo"
TEXT = (EXAMPLE / SOURCE).read_text()
AGENTS = {"normalize", "anomaly", "explain", "policy", "dispatch"}


def edit(text: str, old: str, new: str) -> str:
    """``text`` with the one occurrence of ``old`` replaced (so an edit never lands somewhere unintended)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


#: The example with a gateway: an HTTP source next to the NATS one, and the review alerts sent to an HTTP target.
WITH_GATEWAY = edit(edit(edit(
    TEXT,
    'source: NATS("payments.transactions")', 'source: [NATS("payments.transactions"), HTTP("/tx", { port: 8088 })]'),
    'NATS("payments.alerts.review")', 'HTTP("https://review.example.com/alerts", id: "review")'),
    '"target.payments.alerts.review"', '"target.review"')


class Deployed:
    """The objects `kumeo render` writes and the Workflow component applies, for one version of the example."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        self.templates = {name.removeprefix("fraud-detection-"): o["spec"]["template"]
                          for (kind, name), o in self.objects.items() if kind == "Deployment"}


def deploy(directory: Path, text: str = TEXT, settings: PlatformSettings | None = None,
           files: dict[str, bytes] | None = None) -> Deployed:
    shutil.copytree(EXAMPLE, directory)
    for relative, data in (files or {}).items():
        assert (directory / relative).is_file(), relative  # a change to a file the example has
        (directory / relative).write_bytes(data)
    (directory / SOURCE).write_text(text)
    result = parse_file(directory / SOURCE)
    assert result.ok, [d.format() for d in result.diagnostics]
    (wf,) = compile_program(result.program, base_dir=directory, settings=settings or PlatformSettings()).workflows
    return Deployed(workflow_manifests(wf, directory).objects)


def rolled(before: Deployed, after: Deployed) -> set[str]:
    """The existing Deployments whose pod template changed (they roll); a removed one counts too."""
    return {name for name, template in before.templates.items() if after.templates.get(name) != template}


def added(before: Deployed, after: Deployed) -> set[str]:
    return set(after.templates) - set(before.templates)


def changed_objects(before: Deployed, after: Deployed) -> set[tuple[str, str]]:
    """Every object (kind, name) that is new, gone or different."""
    keys = set(before.objects) | set(after.objects)
    return {k for k in keys if before.objects.get(k) != after.objects.get(k)}


@pytest.fixture
def base(tmp_path: Path) -> Deployed:
    deployed = deploy(tmp_path / "before")
    assert set(deployed.templates) == AGENTS  # NATS only: no gateway
    return deployed


def test_the_same_sources_deploy_the_same_objects(tmp_path: Path, base: Deployed) -> None:
    again = deploy(tmp_path / "after")
    assert changed_objects(base, again) == set()


# -- (1) one agent's own arguments: that agent only -------------------------------------------------------------


@pytest.mark.parametrize("old, new, expected", [
    # the prompt, in place and with a line added (lines below it shift: no other agent cares)
    ("In one sentence, say why", "In two sentences, say why", {"explain"}),
    ("anomaly score {{anomaly_score}}.", "anomaly score {{anomaly_score}},\n        category {{merchant_category}}.",
     {"explain"}),
    ("when: \"anomaly_score > 0.6\"", "when: \"anomaly_score > 0.7\"", {"explain"}),
    ("timeout: \"30s\"", "timeout: \"45s\"", {"explain"}),
    ("max_tokens: 48", "max_tokens: 64", {"explain"}),
    # a DataProcessor's config, with a line added
    ('"hour",\n          "is_high_value', '"hour",\n          "weekend: false",\n          "is_high_value',
     {"normalize"}),
    ('required_fields: ["tx_id", "amount",', 'required_fields: ["tx_id", "amount", "currency",', {"normalize"}),
    # an MLModel's features
    ('features: ["amount", "hour", "merchant_category", "country_mismatch"]',
     'features: ["amount", "merchant_category", "country_mismatch"]', {"anomaly"}),
    # a Router's rules
    ("\"decision == 'block'\"", "\"decision == 'block' || amount > 50000\"", {"dispatch"}),
    # the resources of one class: only its agents (here the one LLM)
    ('llm: { cpu: "500m", memory: "512Mi" }', 'llm: { cpu: "750m", memory: "512Mi" }', {"explain"}),
    # the workflow's config block: the agents that read `config.` (normalize, for config.high_value) carry the
    # whole block, so even a key only other agents could read rolls them; no other agent carries it
    ("review: 0.5", "review: 0.4", {"normalize"}),
], ids=["prompt", "prompt-longer", "when", "timeout", "max_tokens", "config-longer", "config", "features", "rules",
        "class-resources", "workflow-config"])
def test_an_agents_own_change_rolls_that_agent_only(tmp_path: Path, base: Deployed, old: str, new: str,
                                                    expected: set[str]) -> None:
    after = deploy(tmp_path / "after", edit(TEXT, old, new))
    assert rolled(base, after) == expected
    assert added(base, after) == set()
    # nothing else changes either: the shared objects do not depend on any agent's arguments
    assert changed_objects(base, after) == {("Deployment", f"fraud-detection-{a}") for a in expected}


# -- (2) a file's contents: the agents reading it ----------------------------------------------------------------


@pytest.mark.parametrize("path, readers", [
    ("models/isolation_forest.onnx", {"anomaly"}),
    ("policy.dmx", {"policy"}),
    ("models/risk.bn", {"policy"}),  # the context network, read by the agent naming it (context: "risk")
])
def test_a_files_contents_roll_only_the_agents_reading_it(tmp_path: Path, base: Deployed, path: str,
                                                          readers: set[str]) -> None:
    after = deploy(tmp_path / "after", files={path: (EXAMPLE / path).read_bytes() + b"\n"})
    assert rolled(base, after) == readers
    # the files ConfigMap changes with it, and only the readers' checksum annotation differs in their templates
    assert changed_objects(base, after) == {("ConfigMap", "fraud-detection-files")} | {
        ("Deployment", f"fraud-detection-{a}") for a in readers}
    for agent in readers:
        old, new = base.templates[agent], after.templates[agent]
        assert old["spec"] == new["spec"]
        assert old["metadata"]["annotations"]["kumeo.dev/files-checksum"] != \
            new["metadata"]["annotations"]["kumeo.dev/files-checksum"]


# -- (3) the image of one class: the agents of that class --------------------------------------------------------


@pytest.mark.parametrize("image_class, agents", [
    ("ml", {"anomaly"}),
    ("llm", {"explain"}),
    ("base", {"normalize", "policy", "dispatch"}),
])
def test_one_image_class_rolls_only_its_agents(tmp_path: Path, base: Deployed, image_class: str,
                                               agents: set[str]) -> None:
    image = f"registry.example.com/kumeo-{image_class}@sha256:" + "ab" * 32
    after = deploy(tmp_path / "after", settings=PlatformSettings(images={image_class: image}))
    assert rolled(base, after) == agents
    for agent in agents:
        assert after.templates[agent]["spec"]["containers"][0]["image"] == image


# -- (4) the NATS URL: every pod ---------------------------------------------------------------------------------


def test_the_nats_url_rolls_every_agent(tmp_path: Path, base: Deployed) -> None:
    after = deploy(tmp_path / "after", settings=PlatformSettings(nats_url="nats://nats.fraud-detection.svc:4222"))
    assert rolled(base, after) == AGENTS  # NATS_URL in each pod's environment (and in its own Plan)
    # the same port and namespace: the agents' NetworkPolicy stays; the KEDA/HPA objects do not depend on it
    # without KEDA
    assert changed_objects(base, after) == {("Deployment", f"fraud-detection-{a}") for a in AGENTS}
    # a NATS server in another namespace: the policy's egress goes there instead
    moved = deploy(tmp_path / "moved", settings=PlatformSettings(nats_url="nats://nats.messaging:4222"))
    assert changed_objects(base, moved) == {("Deployment", f"fraud-detection-{a}") for a in AGENTS} | {
        ("NetworkPolicy", "fraud-detection-agents")}


def test_the_nats_url_rolls_every_agent_and_the_gateway(tmp_path: Path) -> None:
    before = deploy(tmp_path / "before", WITH_GATEWAY)
    assert set(before.templates) == AGENTS | {"gateway"}
    after = deploy(tmp_path / "after", WITH_GATEWAY, settings=PlatformSettings(nats_url="nats://nats:4333"))
    assert rolled(before, after) == AGENTS | {"gateway"}
    # a new port also changes the egress the agents' and the gateway's policies allow
    assert changed_objects(before, after) - {("Deployment", f"fraud-detection-{a}") for a in AGENTS | {"gateway"}} \
        == {("NetworkPolicy", "fraud-detection-agents"), ("NetworkPolicy", "fraud-detection-gateway")}


# -- (5) a new agent: only agents whose inputs or outputs really change --------------------------------------------


def test_a_new_agent_reading_an_existing_output_rolls_nothing(tmp_path: Path, base: Deployed) -> None:
    # What an agent publishes does not depend on who reads it (each reader has its own consumer), so a new
    # reader of normalize.output leaves normalize alone; the lines it adds shift the agents below, which no pod sees.
    after = deploy(tmp_path / "after", edit(
        TEXT, "    Router(\n", '    DataProcessor(id: "audit", input: normalize.output),\n\n    Router(\n'))
    assert added(base, after) == {"audit"}
    assert rolled(base, after) == set()


def test_a_new_agent_in_the_chain_rolls_the_agent_now_reading_it(tmp_path: Path, base: Deployed) -> None:
    # enrich goes between normalize and anomaly: anomaly now reads enrich.output (its input subject and consumer
    # filter change), normalize still publishes the same subject.
    text = edit(TEXT, "input: normalize.output,\n      features", "input: enrich.output,\n      features")
    text = edit(text, "    // Unsupervised", '    DataProcessor(id: "enrich", input: normalize.output),\n\n'
                                             "    // Unsupervised")
    after = deploy(tmp_path / "after", text)
    assert added(base, after) == {"enrich"}
    assert rolled(base, after) == {"anomaly"}


def test_a_new_route_destination_rolls_the_router(tmp_path: Path, base: Deployed) -> None:
    # The Router gains a route (a rule and its subject): its own Plan changes. The new agent reads that route only.
    text = edit(TEXT, "default: \"target.payments.cleared\"",
                "\"decision == 'escalate'\": \"escalation\",\n        default: \"target.payments.cleared\"")
    text = edit(text, "    Router(\n", '    DataProcessor(id: "escalation"),\n\n    Router(\n')
    after = deploy(tmp_path / "after", text)
    assert added(base, after) == {"escalation"}
    assert rolled(base, after) == {"dispatch"}


# -- (6) a target's address ---------------------------------------------------------------------------------------


def test_a_nats_targets_subject_rolls_the_agent_delivering_there(tmp_path: Path, base: Deployed) -> None:
    # dispatch publishes its default route on the target's subject itself; no other agent delivers there.
    text = edit(edit(TEXT, 'NATS("payments.cleared")', 'NATS("payments.settled")'),
                '"target.payments.cleared"', '"target.payments.settled"')
    after = deploy(tmp_path / "after", text)
    assert rolled(base, after) == {"dispatch"}


def test_a_nats_targets_subject_rolls_only_the_agent_publishing_there(tmp_path: Path) -> None:
    # The gateway's part holds only the endpoints it runs (HTTP/Timer/File), so renaming a NATS target leaves it
    # alone (it is Recreate: a restart would pause its HTTP source).
    before = deploy(tmp_path / "before", WITH_GATEWAY)
    text = edit(edit(WITH_GATEWAY, 'NATS("payments.cleared")', 'NATS("payments.settled")'),
                '"target.payments.cleared"', '"target.payments.settled"')
    after = deploy(tmp_path / "after", text)
    assert rolled(before, after) == {"dispatch"}


@pytest.mark.parametrize("new_url, other_objects", [
    # another host: the gateway delivers there; dispatch's route names the URL (in its error messages), so its
    # Plan changes too, though it only publishes on kumeo.fraud-detection.target.review
    ("https://review2.example.com/alerts", set()),
    # another port: the same two pods, and the egress both policies allow follows the port
    ("https://review.example.com:8443/alerts", {("NetworkPolicy", "fraud-detection-agents-egress"),
                                               ("NetworkPolicy", "fraud-detection-gateway")}),
])
def test_an_http_targets_address_rolls_the_gateway_and_the_agent_routing_there(
        tmp_path: Path, new_url: str, other_objects: set[tuple[str, str]]) -> None:
    before = deploy(tmp_path / "before", WITH_GATEWAY)
    after = deploy(tmp_path / "after", edit(WITH_GATEWAY, "https://review.example.com/alerts", new_url))
    assert rolled(before, after) == {"dispatch", "gateway"}
    assert changed_objects(before, after) == {("Deployment", "fraud-detection-dispatch"),
                                              ("Deployment", "fraud-detection-gateway")} | other_objects


def test_an_http_sources_port_rolls_the_gateway_only(tmp_path: Path) -> None:
    before = deploy(tmp_path / "before", WITH_GATEWAY)
    after = deploy(tmp_path / "after", edit(WITH_GATEWAY, "port: 8088", "port: 8089"))
    assert rolled(before, after) == {"gateway"}
    assert changed_objects(before, after) == {("Deployment", "fraud-detection-gateway"),
                                              ("Service", "fraud-detection-gateway"),
                                              ("NetworkPolicy", "fraud-detection-gateway")}


# -- workflow-wide settings ---------------------------------------------------------------------------------------


def test_scaling_bounds_roll_no_agent(tmp_path: Path, base: Deployed) -> None:
    # An agent's own Plan leaves out its replica bounds (the runtime does not read them): changing the workflow's
    # scaling bounds updates the autoscalers and restarts no pod.
    after = deploy(tmp_path / "after", edit(TEXT, "max_replicas: 4", "max_replicas: 6"))
    assert rolled(base, after) == set()
    assert {k for k in changed_objects(base, after) if k[0] != "Deployment"} == {
        ("HorizontalPodAutoscaler", f"fraud-detection-{a}") for a in AGENTS}


def test_keda_replaces_the_autoscalers_and_rolls_nothing(tmp_path: Path, base: Deployed) -> None:
    after = deploy(tmp_path / "after", settings=PlatformSettings(keda_enabled=True))
    assert rolled(base, after) == set()
    assert changed_objects(base, after) == {("HorizontalPodAutoscaler", f"fraud-detection-{a}") for a in AGENTS} | {
        ("ScaledObject", f"fraud-detection-{a}") for a in AGENTS}


def test_per_agent_nats_users_roll_every_agent(tmp_path: Path, base: Deployed) -> None:
    # each pod gains NATS_USER/NATS_PASSWORD/NATS_INBOX_PREFIX and its identity in its own Plan
    after = deploy(tmp_path / "after", settings=PlatformSettings(nats_auth=True))
    assert rolled(base, after) == AGENTS
