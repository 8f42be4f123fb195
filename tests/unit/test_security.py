"""Per-agent NATS identities, derived credentials, the generated nats-server config, and how pods get them.

The real server enforcing these permissions is exercised in tests/integration/test_nats_permissions.py; the
Workflow component runs under Pulumi mocks (``kumeo_iac.testing``) with no engine.
"""

from __future__ import annotations

import json
import re

import pulumi
import pytest

from kumeo_iac.compile import (
    Plan,
    PlatformSettings,
    compile_program,
    derive_password,
    derive_passwords,
    render_nats_config,
)
from kumeo_iac.compile._security import (
    DEPLOYER_USER,
    agent_buckets,
    deployer_permissions,
    identities,
    inbox_prefix,
)
from kumeo_iac.errors import KumeoCompileError, KumeoError
from kumeo_iac.jetstream import connect_options_from_env
from kumeo_iac.spec import (
    NATS,
    DataProcessor,
    FileTarget,
    HttpSource,
    HumanReview,
    Program,
    Ref,
    Router,
    WorkflowSpec,
)
from kumeo_iac.testing import (
    is_secret,
    resources_of_type,
    unwrap_secret,
)

SEED = "unit-test-seed-0123456789"


def spec() -> WorkflowSpec:
    clean = DataProcessor(id="clean", input=Ref(path=("source",)))
    route = Router(id="route", input=clean.output, rules={"amount > 10": "review", "default": "target.pay.done"})
    review = HumanReview(id="review", input=Ref(path=("clean", "output")))
    return WorkflowSpec(name="Pay", source=NATS("pay.in"), target=NATS("pay.done"), agents=[clean, route, review])


def plan(**settings) -> Plan:
    return compile_program(Program(workflows=[spec()]), settings=PlatformSettings(**settings))


# -- identities ----------------------------------------------------------------------------------------------------


def test_each_agent_has_its_own_user_named_slug_agent():
    wf = plan().workflows[0]
    assert [a.identity.user for a in wf.agents] == [f"pay-{a.id}" for a in wf.agents]
    assert len({a.identity.inbox_prefix for a in wf.agents}) == len(wf.agents)


def test_an_agent_publishes_only_its_own_subjects_and_its_consumers_api_calls():
    wf = plan().workflows[0]
    clean = wf.agent("clean")
    (consumer,) = clean.consumers
    s, d = consumer.stream, consumer.durable
    assert clean.identity.publish == sorted({
        clean.output_subject, clean.dead_letter_subject,
        "$JS.API.INFO", f"$JS.API.STREAM.INFO.{s}", f"$JS.API.CONSUMER.INFO.{s}.{d}",
        f"$JS.API.CONSUMER.MSG.NEXT.{s}.{d}", f"$JS.ACK.{s}.{d}.>",
    })
    assert clean.identity.subscribe == ["_INBOX_pay-clean.>"]
    others = [a for a in wf.agents if a.id != "clean"]
    for other in others:
        assert other.output_subject not in clean.identity.publish
        assert not any(p.endswith(f".{other.consumers[0].durable}") for p in clean.identity.publish)


def test_routes_targets_and_buckets_are_granted_only_to_the_agent_that_uses_them():
    wf = plan().workflows[0]
    route, review, clean = wf.agent("route"), wf.agent("review"), wf.agent("clean")
    assert {r.subject for r in route.routes} <= set(route.identity.publish)
    assert "pay.done" in route.identity.publish and "pay.done" not in clean.identity.publish
    (bucket,) = agent_buckets(review, wf.key_values)
    assert f"$KV.{bucket}.>" in review.identity.publish
    assert f"$JS.API.DIRECT.GET.KV_{bucket}.>" in review.identity.publish
    assert not any(bucket in p for p in clean.identity.publish + route.identity.publish)


def test_only_a_human_review_may_write_its_decisions_to_the_audit_stream():
    wf = plan().workflows[0]
    review = wf.agent("review")
    assert {"kumeo.audit.review", "$JS.API.STREAM.INFO.KUMEO_AUDIT"} <= set(review.identity.publish)
    # it looks the stream up, never creates or widens it (the deployer creates it on kumeo.audit.>)
    assert not any(p.startswith(("$JS.API.STREAM.CREATE", "$JS.API.STREAM.UPDATE", "$JS.API.STREAM.DELETE"))
                   for p in review.identity.publish)
    for other in (wf.agent("clean"), wf.agent("route")):
        assert not any("audit" in p.lower() for p in other.identity.publish)


def test_the_deployer_creates_the_audit_stream_on_the_whole_audit_namespace():
    from kumeo_iac.dashboard._audit import UI_SUBJECT
    from kumeo_iac.runtime.review._audit import REVIEW_SUBJECT
    from kumeo_providers._audit import AUDIT_SUBJECT, audit_stream_config

    (subjects,) = [audit_stream_config().subjects]
    assert subjects == ["kumeo.audit.>"]
    for subject in (AUDIT_SUBJECT, UI_SUBJECT, REVIEW_SUBJECT):
        assert subject.startswith("kumeo.audit.") and subject.count(".") == 2, subject


def test_no_identity_has_wildcards_beyond_its_own_acks_inbox_and_buckets():
    for agent in plan().workflows[0].agents:
        for subject in agent.identity.publish:
            if ">" in subject or "*" in subject:
                assert re.match(r"(\$JS\.ACK\.[^.]+\.[^.]+\.>|\$KV\.[^.]+\.>|\$JS\.(API\.(DIRECT\.GET|"
                                r"CONSUMER\.(CREATE|DELETE))|FC)\.KV_[^.]+\.>)\Z", subject), subject
        assert agent.identity.subscribe == [f"{inbox_prefix(agent.identity.user)}.>"]
        assert "_INBOX.>" not in agent.identity.subscribe


def test_no_agent_or_gateway_may_create_or_update_a_consumer_outside_its_kv_buckets():
    """Consumers belong to the deployer: an identity allowed CONSUMER.CREATE on its durable could widen the filter.
    The ordered consumers behind KV keys()/watch() are the one exception, and only on KV_<bucket> streams."""
    program = Program(workflows=[WorkflowSpec(
        name="Gw", sources=[HttpSource("/in", id="web")], targets=[FileTarget("out.jsonl", id="sink")],
        agents=[DataProcessor(id="a", input="source.web", output="target.sink")])])
    gateway_plan = compile_program(program, settings=PlatformSettings(nats_auth=True))
    every = identities(plan()) + identities(gateway_plan)
    assert any(i.user == "gw-gateway" for i in every)
    for identity in every:
        for subject in identity.publish:
            if ".CONSUMER.CREATE." in subject or ".CONSUMER.DURABLE." in subject or subject.endswith(
                    ".CONSUMER.CREATE"):
                assert re.match(r"\$JS\.API\.CONSUMER\.CREATE\.KV_[^.]+(\.>)?\Z", subject), (identity.user, subject)


def test_the_plan_round_trips_with_identities():
    p = plan()
    assert Plan.from_json(p.to_json()) == p
    old = json.loads(p.to_json())
    for a in old["workflows"][0]["agents"]:
        del a["identity"]  # a Plan written before identities existed still loads
    assert Plan.from_dict(old).workflows[0].agents[0].identity is None


# -- credentials -------------------------------------------------------------------------------------------------


def test_passwords_are_deterministic_distinct_and_need_a_real_seed():
    assert derive_password(SEED, "pay-clean") == derive_password(SEED, "pay-clean")
    assert derive_password(SEED, "pay-clean") != derive_password(SEED, "pay-route")
    assert derive_password(SEED, "pay-clean") != derive_password(SEED + "x", "pay-clean")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", derive_password(SEED, "u"))
    with pytest.raises(ValueError, match="natsAuthSeed"):
        derive_password("short", "u")
    passwords = derive_passwords(plan(), SEED)
    assert set(passwords) == {"pay-clean", "pay-route", "pay-review", DEPLOYER_USER}


# -- the server config -----------------------------------------------------------------------------------------


def test_render_nats_config_has_users_encryption_and_no_plaintext_key():
    p = plan()
    text = render_nats_config(p, derive_passwords(p, SEED))
    assert "cipher: chachapoly" in text and "key: $JETSTREAM_KEY" in text
    assert 'store_dir: "/data/jetstream"' in text
    assert "tls {" not in text
    for agent in p.workflows[0].agents:
        assert f'user: "{agent.identity.user}"' in text
        assert f'"_INBOX_{agent.identity.user}.>"' in text
    assert f'user: "{DEPLOYER_USER}"' in text
    assert '"$JS.API.CONSUMER.MSG.NEXT.>"' in text  # denied to the deployer
    assert text == render_nats_config(p, derive_passwords(p, SEED))  # deterministic


def test_render_nats_config_tls_nkeys_and_options():
    p = plan()
    nkeys = dict.fromkeys(derive_passwords(p, SEED), "U" + "A" * 55)
    text = render_nats_config(p, nkeys=nkeys, tls={"cert": "/tls/server.crt", "key": "/tls/server.key",
                                                   "ca": "/tls/ca.crt", "verify": True}, encrypt=False,
                              store_dir=None, monitoring_port=8222)
    assert 'cert_file: "/tls/server.crt"' in text and "verify: true" in text and 'ca_file: "/tls/ca.crt"' in text
    assert "cipher" not in text and "store_dir" not in text and "http_port: 8222" in text
    assert "password" not in text and text.count("nkey:") == len(nkeys)
    with pytest.raises(KumeoCompileError, match="no password or nkey"):
        render_nats_config(p, {})
    with pytest.raises(KumeoCompileError, match="CA"):
        render_nats_config(p, derive_passwords(p, SEED), tls={"cert": "c", "key": "k", "verify": True})


def test_deployer_cannot_read_messages_or_weaken_the_audit_stream():
    deny = deployer_permissions()["publish"]["deny"]
    assert "$JS.API.CONSUMER.MSG.NEXT.>" in deny and "$JS.API.DIRECT.GET.>" in deny
    assert "$JS.API.STREAM.DELETE.KUMEO_AUDIT" in deny and "$JS.API.STREAM.UPDATE.KUMEO_AUDIT" in deny
    assert "kumeo.audit.deploy" in deployer_permissions()["publish"]["allow"]


# -- Kubernetes -------------------------------------------------------------------------------------------------


def _env(wf, agent_id):
    for d in wf.kubernetes:
        if d["kind"] == "Deployment":
            container = d["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e for e in container["env"]}
            if container["args"][container["args"].index("--agent") + 1] == agent_id:
                return env, d
    raise KeyError(agent_id)


def test_without_nats_auth_deployments_carry_no_credentials():
    env, _ = _env(plan().workflows[0], "clean")
    assert not {"NATS_USER", "NATS_PASSWORD", "NATS_TLS_CA"} & set(env)


def test_with_nats_auth_each_deployment_reads_its_own_key_of_the_workflows_secret():
    from kumeo_iac.compile._kubernetes import PLAN_ENV
    from kumeo_iac.manifests import RequiredSecret, required_secrets

    wf = plan(nats_auth=True).workflows[0]
    for agent in wf.agents:
        env, _ = _env(wf, agent.id)
        user = f"pay-{agent.id}"
        assert env["NATS_USER"] == {"name": "NATS_USER", "value": user}
        assert env["NATS_PASSWORD"] == {"name": "NATS_PASSWORD",
                                        "valueFrom": {"secretKeyRef": {"name": "pay-nats", "key": user}}}
        assert env["NATS_INBOX_PREFIX"]["value"] == f"_INBOX_{user}"
        # the pod's own Plan carries its identity (user, permissions), never a password
        own = json.loads(env[PLAN_ENV]["value"])
        assert own["workflows"][0]["agents"][0]["identity"]["user"] == user
        assert "password" not in env[PLAN_ENV]["value"].lower()
    assert required_secrets(wf.kubernetes) == [RequiredSecret("pay-nats", ("pay-clean", "pay-review", "pay-route"))]


def test_tls_mounts_the_secret_read_only_and_sets_the_paths():
    wf = plan(nats_tls={"secret": "nats-tls", "cert": "", "key": ""}).workflows[0]
    env, deployment = _env(wf, "clean")
    assert env["NATS_TLS_CA"]["value"] == "/etc/kumeo/nats-tls/ca.crt" and "NATS_TLS_CERT" not in env
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "nats-tls", "mountPath": "/etc/kumeo/nats-tls", "readOnly": True} in container["volumeMounts"]
    with pytest.raises(KumeoCompileError, match="secret"):
        plan(nats_tls={"ca": "x"})
    with pytest.raises(KumeoCompileError, match="both"):
        plan(nats_tls={"secret": "s", "cert": "tls.crt", "key": ""})


# -- the worker reads its identity ------------------------------------------------------------------------------


def test_worker_connect_options_from_the_pod_environment(tmp_path):
    assert connect_options_from_env({}) == {}
    options = connect_options_from_env({"NATS_USER": "pay-clean", "NATS_PASSWORD": "pw",
                                        "NATS_INBOX_PREFIX": "_INBOX_x", "NATS_TOKEN": ""})
    assert options == {"user": "pay-clean", "password": "pw", "inbox_prefix": "_INBOX_x"}
    with pytest.raises(KumeoError, match="NATS TLS"):
        connect_options_from_env({"NATS_TLS_CA": str(tmp_path / "missing.crt")})
    with pytest.raises(KumeoError, match="NATS_TLS_KEY"):
        connect_options_from_env({"NATS_TLS_CERT": "c.crt"})


# -- the Workflow component -------------------------------------------------------------------------------------


def test_component_creates_the_workflows_password_secret_from_the_seed(pulumi_mocks):
    """Mocks stand in for the engine: with kumeo:natsAuthSeed set, the workflow gets one Secret holding each agent's
    password under its NATS user, the key its Deployment reads."""
    from kumeo_iac.components import Workflow

    pulumi.runtime.set_all_config({"kumeo:natsAuthSeed": SEED}, secret_keys=["kumeo:natsAuthSeed"])
    resources = pulumi_mocks.run(lambda: Workflow("pay", spec()))
    secrets = {s.get("metadata.name"): s for s in resources_of_type(resources, "kubernetes:core/v1:Secret")}
    assert set(secrets) == {"pay-nats"}
    stored = secrets["pay-nats"].inputs["stringData"]
    users = ("pay-clean", "pay-route", "pay-review")
    assert is_secret(stored) or all(is_secret(stored[u]) for u in users)
    values = unwrap_secret(stored)
    assert set(values) == set(users)
    for user in users:
        assert unwrap_secret(values[user]) == derive_password(SEED, user)
    # the JetStream resources (dynamic providers, whichever type token they carry) connect as the deployer
    dynamic = [r for r in resources if r.type.startswith("pulumi-python:dynamic")]
    assert dynamic and all(r.inputs.get("user") is not None for r in dynamic)
    everything_else = json.dumps([r.inputs for r in resources if r.type != "kubernetes:core/v1:Secret"], default=str)
    assert derive_password(SEED, "pay-clean") not in everything_else


def test_a_plan_needing_credentials_without_a_seed_is_refused(pulumi_mocks):
    from kumeo_iac.components import Workflow

    compiled = plan(nats_auth=True)
    with pytest.raises(Exception, match="natsAuthSeed"):
        pulumi_mocks.run(lambda: Workflow("pay", plan=compiled, manage_jetstream=False))
