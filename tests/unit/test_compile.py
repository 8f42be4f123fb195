"""Unit tests of compile's rules: names, subjects, streams, consumers, KV buckets, resources, Kubernetes objects."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from kumeo_iac.compile import Plan, PlatformSettings, compile_program, dns_name, slugify
from kumeo_iac.compile._kubernetes import (
    EGRESS_LABEL,
    PLAN_ENV,
    PLAN_ENV_LIMIT,
    agents_selector,
)
from kumeo_iac.compile._names import covers, minimal_subjects, overlap
from kumeo_iac.compile._nats import consumer_timing
from kumeo_iac.errors import KumeoCompileError, SourceSpan
from kumeo_iac.spec import (
    LLM,
    NATS,
    DataProcessor,
    Deployment,
    HttpTarget,
    HumanReview,
    IntegrationSpec,
    MLModel,
    Program,
    Resources,
    Router,
    Scaling,
    SubworkflowSpec,
    Timer,
    WorkflowSpec,
)

DNS = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


def program(**kw) -> Program:
    kw.setdefault("name", "FraudDetection")
    kw.setdefault("sources", [NATS("transactions.raw")])
    kw.setdefault("targets", [NATS("alerts")])
    return Program(workflows=[WorkflowSpec(**kw)])


def pipeline(**kw) -> Program:
    kw.setdefault("agents", [
        DataProcessor(id="clean", output="tx.clean"),
        MLModel("forest.onnx", id="score", input="tx.clean", timeout="20s"),
    ])
    return program(**kw)


def wf_of(prog: Program, **settings):
    return compile_program(prog, settings=PlatformSettings(**settings) if settings else None).workflows[0]


# -- names --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, slug", [("FraudDetection", "fraud-detection"), ("HTTPIngest", "http-ingest"),
                                        ("claims_triage", "claims-triage"), ("A", "a"), ("X2Y", "x2-y")])
def test_slug_is_dns_1123(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_long_names_are_shortened_stably() -> None:
    long = dns_name("w" * 40, "agent_" + "x" * 40)
    assert len(long) <= 63 and DNS.match(long) and long == dns_name("w" * 40, "agent_" + "x" * 40)


def test_every_kubernetes_name_and_label_is_valid() -> None:
    wf = wf_of(pipeline(name="VeryLongWorkflowNameForTestingPurposes", agents=[
        DataProcessor(id="an_agent_with_a_really_long_identifier_that_goes_on_and_on")]))
    for obj in wf.kubernetes:
        assert DNS.match(obj["metadata"]["name"]) and len(obj["metadata"]["name"]) <= 63
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63 and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", value)


# -- subjects -----------------------------------------------------------------------------------------------------


def test_subjects_follow_the_contract() -> None:
    wf = wf_of(program(
        sources=[NATS("orders.new"), Timer("30s", id="tick")],
        targets=[NATS("orders.ok"), HttpTarget("https://example.com/hook", id="hook")],
        agents=[
            DataProcessor(id="clean", input="source.orders.new"),
            Router(id="route", input="clean.output", rules={"a > 1": "target.hook", "b": "special",
                                                              "default": "target.orders.ok"}),
            DataProcessor(id="special"),
            DataProcessor(id="ticker", input="source.tick", output="target.orders.ok"),
        ]))
    assert wf.slug == "fraud-detection"
    clean = wf.agent("clean")
    assert clean.output_subject == "kumeo.fraud-detection.clean.out"
    assert clean.dead_letter_subject == "kumeo.fraud-detection.dlq.clean"
    assert clean.inputs == {"": "orders.new"}
    route = wf.agent("route")
    assert [(r.condition, r.subject, r.destination) for r in route.routes] == [
        ("a > 1", "kumeo.fraud-detection.target.hook", "target:https://example.com/hook"),
        ("b", "kumeo.fraud-detection.route.route.special", "special"),
        (None, "orders.ok", "target:orders.ok"),
    ]
    # a route destination without an input of its own reads only its routes, not the sources
    assert wf.agent("special").inputs == {"": "kumeo.fraud-detection.route.route.special"}
    assert wf.agent("ticker").inputs == {"": "kumeo.fraud-detection.source.tick"}
    assert [s.subject for s in wf.sources] == ["orders.new", "kumeo.fraud-detection.source.tick"]
    assert [t.subject for t in wf.targets] == ["orders.ok", "kumeo.fraud-detection.target.hook"]


def test_fallback_agent_reads_the_fallback_subject() -> None:
    wf = wf_of(program(agents=[DataProcessor(id="main", fallback="backup"), DataProcessor(id="backup")]))
    assert wf.agent("main").fallback == {"agent": "backup", "subject": "kumeo.fraud-detection.main.fallback"}
    assert wf.agent("backup").inputs == {"": "kumeo.fraud-detection.main.fallback"}


# -- streams ------------------------------------------------------------------------------------------------------


def _all_stream_subjects(plan) -> list[tuple[str, str]]:
    return [(s.name, subj) for wf in plan.workflows for s in wf.streams for subj in s.config["subjects"]]


def test_streams_never_overlap_and_capture_every_published_subject() -> None:
    prog = Program(workflows=[
        WorkflowSpec(name="A", sources=[NATS("orders.>")], targets=[NATS("alerts.high"), NATS("orders.done")],
                     agents=[DataProcessor(id="x")]),
        WorkflowSpec(name="B", sources=[NATS("alerts.high"), NATS("orders.eu")], targets=[NATS("out.b")],
                     agents=[DataProcessor(id="y")]),
    ])
    plan = compile_program(prog)
    subjects = _all_stream_subjects(plan)
    for i, (na, a) in enumerate(subjects):
        for nb, b in subjects[i + 1:]:
            assert not overlap(a, b), (na, a, nb, b)
    for wf in plan.workflows:
        for agent in wf.agents:
            for subject in [agent.output_subject, agent.dead_letter_subject, *agent.target_subjects,
                            *(r.subject for r in agent.routes)]:
                assert any(covers(s, subject) for _, s in subjects), subject
    a, b = plan.workflows
    # A's targets are all captured by source streams (orders.> of A, alerts.high of B): no A targets stream
    assert [s.name for s in a.streams] == ["KUMEO_A", "KUMEO_A_SOURCES"]
    assert a.targets[0].stream == "KUMEO_B_SOURCES" and a.targets[1].stream == "KUMEO_A_SOURCES"
    # B's orders.eu is inside A's orders.>: B's consumer binds A's stream under a workflow-qualified durable
    assert [s.name for s in b.streams] == ["KUMEO_B", "KUMEO_B_SOURCES", "KUMEO_B_TARGETS"]
    assert {(c.stream, c.durable) for c in b.agent("y").consumers} == {("KUMEO_A_SOURCES", "b_y"),
                                                                        ("KUMEO_B_SOURCES", "y")}


def test_internal_stream_config() -> None:
    wf = wf_of(pipeline(), max_age_seconds=3600)
    internal = next(s for s in wf.streams if s.role == "internal")
    assert internal.name == "KUMEO_FRAUD_DETECTION"
    assert internal.config["subjects"] == ["kumeo.fraud-detection.>"]
    assert internal.config["storage"] == "file" and internal.config["retention"] == "limits"
    assert internal.config["duplicate_window"] >= 120 * 10**9
    assert internal.config["max_age"] == 3600 * 10**9


def test_existing_source_stream_is_bound_not_created() -> None:
    wf = wf_of(pipeline(sources=[NATS("tx.raw", stream="PAYMENTS")]))
    assert "KUMEO_FRAUD_DETECTION_SOURCES" not in [s.name for s in wf.streams]
    assert [c.stream for c in wf.agent("clean").consumers] == ["PAYMENTS"]
    assert wf.sources[0].stream == "PAYMENTS"


def test_source_overlapping_internal_subjects_is_refused() -> None:
    with pytest.raises(KumeoCompileError, match="overlaps the workflow's internal subjects"):
        wf_of(pipeline(sources=[NATS("kumeo.>")]))


# -- consumers ----------------------------------------------------------------------------------------------------


def test_consumer_defaults() -> None:
    wf = wf_of(pipeline())
    (consumer,) = wf.agent("score").consumers
    cfg = consumer.config
    assert consumer.durable == cfg["durable_name"] == "score"
    assert cfg["ack_policy"] == "explicit" and cfg["deliver_policy"] == "all"
    assert cfg["filter_subjects"] == ["kumeo.fraud-detection.clean.out"]
    assert cfg["max_deliver"] == 4 and wf.agent("score").max_deliver == 4
    assert wf.agent("score").backoff_seconds == [1.0, 2.0, 4.0]
    assert cfg["max_ack_pending"] == 1000
    assert "deliver_subject" not in cfg  # pull


@pytest.mark.parametrize("timeout, retry", [("20s", None), ("2m", 5), ("1s", {"attempts": 2, "backoff": "3s"}),
                                            (30, 0), ("45s", {"attempts": 3, "backoff": ["1s", "10s"]})])
def test_ack_wait_above_timeout_and_backoff_valid_for_nats_server(timeout, retry) -> None:
    wf = wf_of(program(agents=[DataProcessor(id="a", timeout=timeout, retry=retry)]))
    agent = wf.agent("a")
    cfg = agent.consumers[0].config
    assert cfg["ack_wait"] > agent.timeout_seconds * 10**9
    backoff = cfg.get("backoff", [])
    assert len(backoff) == agent.max_deliver - 1 == len(agent.backoff_seconds)
    assert cfg["max_deliver"] > len(backoff)  # nats-server: max_deliver must exceed len(backoff)
    if backoff:
        assert backoff[0] == cfg["ack_wait"]  # the server sets ack_wait = backoff[0]; pedantic mode demands it
        assert all(b > agent.timeout_seconds * 10**9 for b in backoff)
        assert backoff == sorted(backoff)


def test_consumer_timing_formula() -> None:
    assert consumer_timing(30, [1, 2, 4]) == (40, [40, 41, 43])
    assert consumer_timing(30, []) == (40, [])


def test_join_agent_has_one_consumer_per_stream_with_sorted_filters() -> None:
    wf = wf_of(program(agents=[
        DataProcessor(id="b"),
        DataProcessor(id="a"),
        DataProcessor(id="j", input={"x": "source", "z": "b.output", "y": "a.output"}),
    ]))
    consumers = {c.stream: c.config["filter_subjects"] for c in wf.agent("j").consumers}
    assert consumers == {
        "KUMEO_FRAUD_DETECTION": ["kumeo.fraud-detection.a.out", "kumeo.fraud-detection.b.out"],
        "KUMEO_FRAUD_DETECTION_SOURCES": ["transactions.raw"],
    }
    assert wf.agent("j").settings["join"]["parts"] == ["x", "y", "z"]


# -- KV buckets ---------------------------------------------------------------------------------------------------


def test_key_value_buckets_only_when_needed() -> None:
    assert wf_of(pipeline()).key_values == []
    wf = wf_of(program(agents=[
        DataProcessor(id="a"), DataProcessor(id="b"),
        DataProcessor(id="j", input={"x": "a.output", "y": "b.output"}, config={"join_timeout": "2m"}),
        HumanReview(id="r", input="j.output"),
        LLM("ollama/llama3", id="l", prompt="hi", input="r.output"),
    ]))
    buckets = {k.purpose: k for k in wf.key_values}
    assert set(buckets) == {"joins", "reviews", "llm-cache"}
    assert buckets["joins"].bucket == "kumeo_fraud_detection_joins"
    assert buckets["joins"].config["ttl"] == 2 * 120 * 10**9  # twice the join timeout
    assert buckets["reviews"].bucket == "kumeo_fraud_detection_reviews"
    assert buckets["llm-cache"].bucket == "kumeo_fraud_detection_llm_cache"
    default_join = wf_of(program(agents=[DataProcessor(id="a"), DataProcessor(id="b"),
                                         DataProcessor(id="j", input={"x": "a.output", "y": "b.output"})]))
    assert default_join.key_values[0].config["ttl"] == 2 * 300 * 10**9


# -- settings -----------------------------------------------------------------------------------------------------


def test_settings_resolve_workflow_blocks() -> None:
    wf = wf_of(program(
        models={"fd": {"file": "models/forest.onnx", "type": "onnx"}},
        schemas={"scores": "schemas/scores.json"},
        config={"thresholds": {"high": 0.8}},
        agents=[
            MLModel(id="m", model="models.fd", output_schema="schemas.scores"),
            Router(id="r", input="m.output", rules={"score > config.thresholds.high": "target.alerts"}),
        ]))
    m = wf.agent("m")
    assert m.settings["model"] == {"file": "models/forest.onnx", "type": "onnx"}
    assert m.settings["output_schema"] == {"file": "schemas/scores.json"}
    assert m.files == ["models/forest.onnx", "schemas/scores.json"]
    r = wf.agent("r")
    assert r.settings["workflow_config"] == {"thresholds": {"high": 0.8}}
    assert r.settings["rules"] == {"score > config.thresholds.high": "target.alerts"}


def test_unresolved_block_reference_is_a_compile_error_with_span() -> None:
    span = SourceSpan("w.kumeo", 7, 3)
    agent = MLModel(id="m", model="models.missing", arg_spans={"model": span})
    with pytest.raises(KumeoCompileError) as info:
        wf_of(program(agents=[agent]))
    assert info.value.span == span
    assert "w.kumeo:7:3: error: workflow 'FraudDetection', agent 'm'" in str(info.value)


def test_unresolved_input_is_a_compile_error_not_a_traceback() -> None:
    with pytest.raises(KumeoCompileError, match="refers to nothing"):
        wf_of(program(agents=[DataProcessor(id="a", input="nowhere.output")]))


def test_literal_api_key_is_refused() -> None:
    with pytest.raises(KumeoCompileError, match="literal secret"):
        wf_of(program(agents=[LLM(id="l", provider={"openai": {"api_key": "sk-123"}}, prompt="x")]))


# -- resources, images, scaling -----------------------------------------------------------------------------------


def test_resources_precedence_agent_then_class_then_default() -> None:
    wf = wf_of(program(
        agents=[DataProcessor(id="p"), MLModel("m.onnx", id="m"), MLModel("n.onnx", id="n"),
                LLM("ollama/llama3", id="l", prompt="x")],
        deployment=Deployment(resources={
            "default": Resources(cpu="250m", memory="256Mi"),
            "ml_models": Resources(cpu="1", memory="2Gi", gpu=True),
            "n": Resources(memory="8Gi"),
        })))
    assert wf.agent("p").resources["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert wf.agent("m").resources["limits"] == {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": 1}
    assert wf.agent("n").resources["limits"] == {"cpu": "1", "memory": "8Gi", "nvidia.com/gpu": 1}
    assert wf.agent("l").resources["requests"] == {"cpu": "250m", "memory": "256Mi"}


def test_default_resources() -> None:
    wf = wf_of(pipeline())
    assert wf.agent("clean").resources == {"requests": {"cpu": "100m", "memory": "128Mi"},
                                           "limits": {"cpu": "500m", "memory": "512Mi"}}


def test_images_precedence() -> None:
    prog = program(
        agents=[DataProcessor(id="p"), MLModel("m.onnx", id="m"), LLM("ollama/llama3", id="l", prompt="x")],
        deployment=Deployment(base_images={"default": "me/base:1", "ml": "me/ml:1"},
                              resources={"llm": Resources(image="base_images.ml")}))
    wf = wf_of(prog)
    assert (wf.agent("p").image, wf.agent("m").image, wf.agent("l").image) == ("me/base:1", "me/ml:1", "me/ml:1")
    assert wf.agent("l").image_class == "llm"
    wf = wf_of(prog, runtime_images={"m": "override/m:2"})
    assert wf.agent("m").image == "override/m:2"
    assert wf_of(pipeline(), image_tag="9").agent("clean").image == "ghcr.io/kumeo/agent-base:9"


def test_replicas_and_hpa_by_default() -> None:
    wf = wf_of(pipeline(deployment=Deployment(scaling=Scaling(min_replicas=2, max_replicas=6, target_cpu=55))))
    hpas = [o for o in wf.kubernetes if o["kind"] == "HorizontalPodAutoscaler"]
    assert len(hpas) == 2 and not [o for o in wf.kubernetes if o["kind"] == "ScaledObject"]
    assert hpas[0]["apiVersion"] == "autoscaling/v2"
    assert (hpas[0]["spec"]["minReplicas"], hpas[0]["spec"]["maxReplicas"]) == (2, 6)
    assert hpas[0]["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 55
    # One budget for every agent running several replicas: one eviction at a time among them.
    (pdb,) = [o for o in wf.kubernetes if o["kind"] == "PodDisruptionBudget"]
    assert pdb["metadata"]["name"] == "fraud-detection-agents"
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {
        "kumeo.dev/workflow": "fraud-detection", "app.kubernetes.io/component": "agent",
        "kumeo.dev/replicated": "true"}}}
    templates = [o["spec"]["template"]["metadata"]["labels"] for o in wf.kubernetes if o["kind"] == "Deployment"]
    assert templates and all(t["kumeo.dev/replicated"] == "true" for t in templates)
    # One replica that cannot scale: a budget would only block node drains, an autoscaler pinned at 1 does nothing.
    single = wf_of(pipeline())
    assert not [o for o in single.kubernetes if o["kind"] in ("PodDisruptionBudget", "HorizontalPodAutoscaler",
                                                              "ScaledObject")]
    # Scaling from one replica: an autoscaler but no budget.
    scaling = wf_of(pipeline(deployment=Deployment(scaling=Scaling(min_replicas=1, max_replicas=3))))
    assert sorted(o["kind"] for o in scaling.kubernetes if o["kind"] in ("PodDisruptionBudget",
                                                                          "HorizontalPodAutoscaler")) == [
        "HorizontalPodAutoscaler", "HorizontalPodAutoscaler"]


def test_keda_scaled_object_replaces_hpa() -> None:
    wf = wf_of(pipeline(deployment=Deployment(scaling=Scaling(max_replicas=3, target_lag=20))), keda_enabled=True,
               nats_url="nats://nats.infra:4222")
    assert not [o for o in wf.kubernetes if o["kind"] == "HorizontalPodAutoscaler"]
    scaled = [o for o in wf.kubernetes if o["kind"] == "ScaledObject"]
    assert len(scaled) == 2
    so = next(o for o in scaled if o["metadata"]["name"] == "fraud-detection-score")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["metadata"]["annotations"]["kumeo.dev/depends-on"] == "consumer/KUMEO_FRAUD_DETECTION/score"
    trigger = so["spec"]["triggers"][0]
    assert trigger["type"] == "nats-jetstream"
    assert trigger["metadata"] == {"natsServerMonitoringEndpoint": "nats.infra:8222", "account": "$G",
                                   "stream": "KUMEO_FRAUD_DETECTION", "consumer": "score", "lagThreshold": "20"}
    kinds = [o["kind"] for o in wf.kubernetes]
    assert kinds.index("ScaledObject") > kinds.index("Deployment")


# -- Kubernetes objects -------------------------------------------------------------------------------------------


def test_objects_per_agent_and_labels() -> None:
    wf = wf_of(pipeline())
    assert [(o["kind"], o["metadata"]["name"]) for o in wf.kubernetes] == [
        ("ConfigMap", "fraud-detection-grafana-dashboard"),  # no Plan ConfigMap: each pod carries its own part
        ("ServiceAccount", "fraud-detection-agents"),
        ("Service", "fraud-detection-metrics"),
        ("Deployment", "fraud-detection-clean"),
        ("Deployment", "fraud-detection-score"),
        ("NetworkPolicy", "fraud-detection-agents"),
    ]
    for obj in wf.kubernetes:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "kumeo"
        assert labels["kumeo.dev/workflow"] == "fraud-detection"
        assert labels["app.kubernetes.io/name"] == obj["metadata"]["name"]
        assert obj["metadata"]["namespace"] == "fraud-detection"
        if obj["kind"] == "Deployment":
            agent = obj["metadata"]["name"].removeprefix("fraud-detection-")
            assert labels["kumeo.dev/agent"] == agent and labels["app.kubernetes.io/component"] == "agent"
            assert obj["spec"]["selector"]["matchLabels"] == {"kumeo.dev/workflow": "fraud-detection",
                                                              "kumeo.dev/agent": agent}
            assert obj["spec"]["template"]["metadata"]["labels"] == labels  # no egress label: NATS only
        else:  # shared by the workflow's agents, owned by none
            assert "kumeo.dev/agent" not in labels


def test_restricted_security_on_every_container() -> None:
    wf = wf_of(pipeline(agents=[LLM("openai/gpt-4o", id="l", prompt="x"), MLModel("m.onnx", id="m")]),
               secrets={"OPENAI_API_KEY": "llm-keys"})
    for obj in wf.kubernetes:
        if obj["kind"] == "ServiceAccount":
            assert obj["automountServiceAccountToken"] is False
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
            assert {"name": "http", "containerPort": 8080} in c["ports"]  # TCP, Kubernetes' default
            agent = obj["metadata"]["labels"]["kumeo.dev/agent"]
            # no Plan volume: /tmp always, the files volume only for the agent reading one
            assert [m["mountPath"] for m in c["volumeMounts"]] == (
                ["/tmp", "/var/lib/kumeo/files"] if agent == "m" else ["/tmp"])
            assert c["command"] + c["args"] == ["python", "-m", "kumeo_iac.runtime", "--agent", agent]
            env = {e["name"]: e for e in c["env"]}
            assert {"NATS_URL", PLAN_ENV} <= set(env)  # the agent is in the args, its workflow in its Plan
            if c["args"][-1] == "l":
                assert env["OPENAI_API_KEY"]["valueFrom"] == {
                    "secretKeyRef": {"name": "llm-keys", "key": "OPENAI_API_KEY"}}
            else:
                assert "OPENAI_API_KEY" not in env


def _own_plan(wf, agent_id: str | None) -> str:
    """The ``KUMEO_PLAN_JSON`` of an agent's Deployment (``None``: the gateway's)."""
    name = "gateway" if agent_id is None else agent_id
    (dep,) = [o for o in wf.kubernetes if o["kind"] == "Deployment"
              and o["metadata"]["name"] == dns_name(wf.slug, name)]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    (value,) = [e["value"] for e in c["env"] if e["name"] == PLAN_ENV]
    return value


def test_secrets_never_reach_the_pods_plan() -> None:
    wf = wf_of(pipeline(agents=[LLM("openai/gpt-4o", id="l", prompt="x",
                                    provider={"openai": {"api_key": "${env.OPENAI_API_KEY}"}})]),
               secrets={"OPENAI_API_KEY": "llm-keys/openai"})
    assert not [o for o in wf.kubernetes if o["metadata"]["name"].endswith("-plan")]
    text = _own_plan(wf, "l")
    assert "llm-keys" not in text and "secretKeyRef" not in text and "sk-" not in text
    plan = json.loads(text)
    assert plan["workflows"][0]["kubernetes"] == []  # the pod's Plan holds its agent, not the objects
    assert [a["id"] for a in plan["workflows"][0]["agents"]] == ["l"]
    env = {e["name"]: e for e in next(o for o in wf.kubernetes if o["kind"] == "Deployment")
           ["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OPENAI_API_KEY"] == {"name": "OPENAI_API_KEY",
                                     "valueFrom": {"secretKeyRef": {"name": "llm-keys", "key": "openai"}}}


def test_each_pod_carries_only_its_own_part_of_the_plan() -> None:
    from kumeo_iac.compile._slices import agent_plan, gateway_plan
    from kumeo_iac.spec import HttpSource as HttpSourceSpec

    wf = wf_of(program(
        sources=[NATS("transactions.raw"), HttpSourceSpec("/in", id="web")],
        targets=[NATS("alerts"), HttpTarget("https://hooks.example.com/x", id="hook")],
        agents=[DataProcessor(id="a"), DataProcessor(id="b"),
                DataProcessor(id="j", input={"x": "a.output", "y": "b.output"}, output="target.hook"),
                HumanReview(id="r", input="j.output"),
                LLM("ollama/llama3", id="l", prompt="hi", input="r.output", output="target.alerts")]))
    assert {k.purpose for k in wf.key_values} == {"joins", "reviews", "llm-cache"}
    for agent in wf.agents:
        own = Plan.from_json(_own_plan(wf, agent.id))
        (part,) = own.workflows
        assert own == Plan([agent_plan(wf, agent)])
        assert (part.name, part.slug, part.namespace, part.nats_url) == (wf.name, wf.slug, wf.namespace,
                                                                         wf.nats_url)
        # Neither the source line nor the replica bounds (the runtime reads neither) roll a pod when they change.
        assert part.agents == [dataclasses.replace(agent, line=None, replicas=1, max_replicas=1)]
        assert part.sources == part.targets == part.streams == part.kubernetes == []
        assert part.gateway_identity is None
        assert [k.purpose for k in part.key_values] == {"j": ["joins"], "r": ["reviews"],
                                                         "l": ["llm-cache"]}.get(agent.id, [])
    gateway = Plan.from_json(_own_plan(wf, None))
    assert gateway == Plan([gateway_plan(wf)])
    (part,) = gateway.workflows
    # Only the endpoints the gateway runs: a change to a NATS endpoint does not restart it.
    assert part.sources == [dataclasses.replace(ep, line=None) for ep in wf.sources if ep.kind != "NATS"]
    assert part.targets == [dataclasses.replace(ep, line=None) for ep in wf.targets if ep.kind in ("HTTP", "File")]
    assert part.sources and any(ep.kind == "NATS" for ep in wf.sources)
    assert part.agents == part.streams == part.key_values == part.kubernetes == []


def test_own_plans_are_compact_and_each_far_smaller_than_the_whole() -> None:
    wf = wf_of(pipeline())
    text = _own_plan(wf, "clean")
    assert "\n" not in text and text == text.strip()
    whole = len(Plan([wf]).to_json(indent=None))
    assert len(text) < whole / 2


def test_an_agent_whose_own_plan_passes_the_env_limit_is_refused_at_its_line(tmp_path) -> None:
    from kumeo_iac.lang import parse_file

    big = "x" * (130 * 1000)
    source = tmp_path / "big.kumeo"
    source.write_text(
        'workflow Big {\n  source: NATS("in")\n  target: NATS("out")\n  agents: [\n'
        '    DataProcessor(id: "clean"),\n'
        f'    LLM("ollama/llama3", id: "explain", input: clean.output, prompt: "{big}")\n'
        "  ]\n}\n")
    result = parse_file(source)
    assert result.ok, [d.format() for d in result.diagnostics]
    with pytest.raises(KumeoCompileError) as info:
        compile_program(result.program, base_dir=tmp_path)
    err = info.value
    assert err.span is not None and (err.span.path, err.span.line) == (str(source), 6)
    message = str(err)
    assert f"{source}:6:" in message and "workflow 'Big', agent 'explain'" in message
    assert f"more than the {PLAN_ENV_LIMIT // 1024} KiB a pod's environment can carry" in message
    assert "files" in message  # the hint: move it into a file the agent reads


def test_the_env_limit_counts_the_agents_whole_own_plan() -> None:
    # A DataProcessor with a large config from the Python DSL: refused, naming the workflow and the agent.
    table = {f"k{i:05d}": "v" * 20 for i in range(5000)}  # ~140 KB of JSON
    with pytest.raises(KumeoCompileError, match=r"workflow 'FraudDetection', agent 'big'.*KiB"):
        wf_of(program(agents=[DataProcessor(id="small"), DataProcessor(id="big", config={"table": table})]))
    # Just under the limit compiles, and the pod's Plan is what the agent carries.
    fits = {f"k{i:05d}": "v" * 20 for i in range(3500)}  # ~100 KB
    wf = wf_of(program(agents=[DataProcessor(id="ok", config={"table": fits})]))
    assert 90 * 1024 < len(_own_plan(wf, "ok").encode()) <= PLAN_ENV_LIMIT


def _policies(wf) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in wf.kubernetes if o["kind"] == "NetworkPolicy"
            and "kumeo.dev/component" not in o["metadata"]["labels"]}


def _pod_labels(wf, agent_id: str) -> dict[str, str]:
    (dep,) = [o for o in wf.kubernetes if o["kind"] == "Deployment"
              and o["metadata"]["name"] == dns_name(wf.slug, agent_id)]
    return dep["spec"]["template"]["metadata"]["labels"]


def test_network_policy_egress_allows_dns_nats_and_http_targets() -> None:
    wf = wf_of(program(targets=[HttpTarget("https://hooks.example.com:8443/x", id="hook"),
                                HttpTarget("http://plain.example.com/y", id="plain"), NATS("alerts")],
                       agents=[DataProcessor(id="a", output="target.hook"),
                               Router(id="r", input="a.output", rules={"x > 1": "target.plain",
                                                                       "default": "target.alerts"}),
                               DataProcessor(id="quiet", input="a.output", output="target.alerts")]),
               nats_url="nats://nats:4333")
    policies = _policies(wf)
    assert sorted(policies) == ["fraud-detection-agents", "fraud-detection-agents-egress"]
    shared = policies["fraud-detection-agents"]["spec"]
    assert shared["podSelector"] == {"matchLabels": agents_selector("fraud-detection")}
    assert shared["policyTypes"] == ["Ingress", "Egress"]
    # DNS and NATS by destination: the cluster DNS pods, the NATS pods (the URL's host `nats` is a Service of the
    # workflow's own namespace)
    assert shared["egress"] == [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "fraud-detection"}},
                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "nats"}}}],
         "ports": [{"protocol": "TCP", "port": 4333}]},
    ]
    # port 8080 (metrics, health, the review API): the dashboard's pods and the monitoring namespace only
    assert shared["ingress"] == [{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "fraud-detection"}},
         "podSelector": {"matchLabels": {"kumeo.dev/component": "dashboard"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    ], "ports": [{"protocol": "TCP", "port": 8080}]}]
    external = policies["fraud-detection-agents-egress"]["spec"]
    public = {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16",
                                                         "172.16.0.0/12", "192.168.0.0/16"]}}
    assert external == {
        "podSelector": {"matchLabels": {**agents_selector("fraud-detection"), EGRESS_LABEL: "external"}},
        "policyTypes": ["Egress"],
        "egress": [{"to": [public], "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 8443}]}],
    }
    # only the agents delivering over HTTP carry the label the egress policy selects
    assert _pod_labels(wf, "a")[EGRESS_LABEL] == "external"
    assert _pod_labels(wf, "r")[EGRESS_LABEL] == "external"  # a route to an HTTP target counts
    assert EGRESS_LABEL not in _pod_labels(wf, "quiet")
    # the Deployment's own labels and selector do not carry it (the selector must never change)
    for agent in ("a", "r"):
        dep = next(o for o in wf.kubernetes if o["metadata"]["name"] == dns_name(wf.slug, agent)
                   and o["kind"] == "Deployment")
        assert EGRESS_LABEL not in dep["metadata"]["labels"] and EGRESS_LABEL not in json.dumps(dep["spec"]["selector"])


def test_no_egress_policy_without_http_deliveries() -> None:
    wf = wf_of(pipeline())
    assert sorted(_policies(wf)) == ["fraud-detection-agents"]
    assert not any(EGRESS_LABEL in json.dumps(o) for o in wf.kubernetes)
    # an HTTP target no agent delivers to opens nothing for the agents (the last agent delivers to every target
    # unless it names one, so this one names the NATS target)
    wf = wf_of(pipeline(targets=[NATS("alerts"), HttpTarget("https://hooks.example.com/x", id="hook")],
                        agents=[DataProcessor(id="clean", output="tx.clean"),
                                MLModel("forest.onnx", id="score", input="tx.clean", output="target.alerts")]))
    assert wf.agent("score").target_subjects == ["alerts"]
    assert sorted(_policies(wf)) == ["fraud-detection-agents"]
    assert not any(EGRESS_LABEL in json.dumps(_pod_labels(wf, a.id)) for a in wf.agents)


def test_network_policy_destinations_follow_the_settings() -> None:
    wf = wf_of(program(targets=[HttpTarget("http://receiver.apps.svc.cluster.local:9000/x", id="svc"),
                                HttpTarget("https://hooks.example.com/x", id="hook")],
                       agents=[DataProcessor(id="a", output="target.svc"),
                               DataProcessor(id="b", input="a.output", output="target.hook")]),
               nats_url="nats://nats.messaging.svc:4222", dns_namespace="dns", dns_pod_labels={"app": "coredns"},
               nats_pod_labels={"app": "jetstream"}, egress_cidrs=["0.0.0.0/0", "10.20.0.0/16"],
               egress_except_cidrs=["10.0.0.0/8", "192.168.0.0/16"], dashboard_namespace="ops",
               dashboard_pod_labels={"app": "kumeo-ui"}, monitoring_namespace="prom")
    policies = _policies(wf)
    shared = policies["fraud-detection-agents"]["spec"]
    assert [rule["to"] for rule in shared["egress"]] == [
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dns"}},
          "podSelector": {"matchLabels": {"app": "coredns"}}}],
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "messaging"}},  # from the URL
          "podSelector": {"matchLabels": {"app": "jetstream"}}}],
    ]
    assert shared["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}},
         "podSelector": {"matchLabels": {"app": "kumeo-ui"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prom"}}},
    ]
    # outside: the CIDRs, each without the exceptions strictly inside it; an in-cluster Service: its namespace
    assert policies["fraud-detection-agents-egress"]["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "192.168.0.0/16"]}},
                {"ipBlock": {"cidr": "10.20.0.0/16"}}],
         "ports": [{"protocol": "TCP", "port": 443}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}}],
         "ports": [{"protocol": "TCP", "port": 9000}]},
    ]
    # an explicit NATS namespace wins over the URL's
    wf = wf_of(pipeline(), nats_url="nats://10.1.2.3:4222", nats_namespace="jetstream")
    nats_rule = _policies(wf)["fraud-detection-agents"]["spec"]["egress"][1]
    assert nats_rule["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "jetstream"
    # a NATS host the cluster does not name: the documented default namespace
    wf = wf_of(pipeline(), nats_url="nats://10.1.2.3:4222")
    nats_rule = _policies(wf)["fraud-detection-agents"]["spec"]["egress"][1]
    assert nats_rule["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "nats"
    # no CIDRs: nothing outside the cluster, so an agent calling out only there carries no egress label
    wf = wf_of(program(targets=[HttpTarget("https://hooks.example.com/x", id="hook")],
                       agents=[DataProcessor(id="a", output="target.hook")]), egress_cidrs=[])
    assert sorted(_policies(wf)) == ["fraud-detection-agents"] and EGRESS_LABEL not in _pod_labels(wf, "a")
    with pytest.raises(KumeoCompileError, match=r"egress_cidrs: '0.0.0.0/33' is not a CIDR"):
        wf_of(program(targets=[HttpTarget("https://hooks.example.com/x", id="hook")],
                      agents=[DataProcessor(id="a", output="target.hook")]), egress_cidrs=["0.0.0.0/33"])


@pytest.mark.parametrize("url, destination", [
    ("https://api.openai.com/v1", (None, 443)),
    ("http://example.com", (None, 80)),  # two labels: outside (a URL's `svc.ns` would be ambiguous)
    ("http://receiver:9000/x", ("wf", 9000)),  # one label: a Service of the workflow's namespace
    ("http://receiver.apps.svc:9000/x", ("apps", 9000)),
    ("https://receiver.apps.svc.cluster.local/x", ("apps", 443)),
    ("http://203.0.113.7:8080/", (None, 8080)),
    ("${env.HOOK}", (None, 443)),
    ("http://127.0.0.1:11434", None), ("http://localhost:8000", None), ("http://[::1]:8000", None),
])
def test_url_destinations(url, destination) -> None:
    from kumeo_iac.compile._kubernetes import nats_namespace, url_destination

    assert url_destination(url, "wf") == destination
    settings = PlatformSettings()
    assert nats_namespace(settings, "nats://nats.messaging:4222", "wf") == "messaging"
    assert nats_namespace(settings, "nats://nats.messaging.svc.cluster.local:4222", "wf") == "messaging"
    assert nats_namespace(settings, "nats://nats:4222", "wf") == "wf"
    assert nats_namespace(settings, "tls://10.0.0.5:4222", "wf") == "nats"


@pytest.mark.parametrize("agent, port", [
    (LLM(id="llm", engine="openai/gpt-4o-mini", prompt="{{ input }}"), 443),  # OpenAI's default base URL
    (LLM(id="llm", engine="openai/m", prompt="p", config={"base_url": "http://vllm.example.com:8000/v1"}), 8000),
    # known at run time only
    (LLM(id="llm", engine="openai/m", prompt="p", config={"base_url": "${env.LLM_URL}"}), 443),
    (LLM(id="llm", engine="ollama/llama3", prompt="p", config={"base_url": "https://ollama.example.com"}), 443),
])
def test_llm_agents_may_reach_their_endpoint_and_nothing_else_outside(agent, port) -> None:
    wf = wf_of(program(agents=[DataProcessor(id="a"), agent.model_copy(update={"input": "a.output"})]))
    assert _pod_labels(wf, "llm")[EGRESS_LABEL] == "external"
    assert EGRESS_LABEL not in _pod_labels(wf, "a")
    (rule,) = _policies(wf)["fraud-detection-agents-egress"]["spec"]["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": port}] and "ipBlock" in rule["to"][0]


def test_llm_on_loopback_and_in_cluster_llm_endpoints() -> None:
    # ollama's default (127.0.0.1:11434) is the pod itself: no egress to open
    wf = wf_of(program(agents=[LLM(id="llm", engine="ollama/llama3", prompt="p")]))
    assert sorted(_policies(wf)) == ["fraud-detection-agents"] and EGRESS_LABEL not in _pod_labels(wf, "llm")
    # a Service of the cluster: its namespace, on its port
    wf = wf_of(program(agents=[LLM(id="llm", engine="ollama/llama3", prompt="p",
                                   config={"base_url": "http://ollama.llm.svc:11434"})]))
    assert _policies(wf)["fraud-detection-agents-egress"]["spec"]["egress"] == [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "llm"}}}],
         "ports": [{"protocol": "TCP", "port": 11434}]}]


def test_review_webhooks_open_egress_for_the_review_agent() -> None:
    review = HumanReview(id="review", config={"notifications": {"webhook": "https://hooks.example.com:8443/r"},
                                              "escalation_path": ["https://esc.example.com/e", "boss@example.com"]})
    wf = wf_of(program(agents=[DataProcessor(id="a"), review.model_copy(update={"input": "a.output"})]))
    assert _pod_labels(wf, "review")[EGRESS_LABEL] == "external"
    (rule,) = _policies(wf)["fraud-detection-agents-egress"]["spec"]["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 8443}]


def test_kafka_and_mqtt_are_refused_for_a_cluster_with_their_line_but_not_for_local_use() -> None:
    from kumeo_iac.lang import parse

    text = ('workflow Fraud {\n  source: [NATS("a.in"),\n    Kafka("payments")]\n  target: MQTT("alerts/x")\n'
            '  agents: [ DataProcessor(id: "p", input: source) ]\n}\n')
    prog = parse(text, path="fraud.kumeo").program
    with pytest.raises(KumeoCompileError) as caught:
        compile_program(prog, settings=PlatformSettings(for_cluster=True))
    message = str(caught.value)
    assert message.startswith("fraud.kumeo:3:") and "Kafka sources cannot be deployed" in message
    assert "bridge the topic to a NATS subject" in message
    # for local use (`kumeo run`, the dashboard) the Plan compiles: the local runtime refuses them itself
    plan = compile_program(prog)
    assert [s.kind for s in plan.workflows[0].sources] == ["NATS", "Kafka"]
    assert compile_program(prog, settings=PlatformSettings()) == plan  # the same default either way


def test_gateway_data_claim_replaces_the_empty_dir() -> None:
    from kumeo_iac.spec import FileTarget as FileTargetSpec

    wf = wf_of(pipeline(targets=[FileTargetSpec("out/results.jsonl", id="f")]), gateway_data_claim="kumeo-io")
    dep = _gateway_objects(wf)["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "kumeo-io"}} in pod["volumes"]
    assert {"name": "data", "mountPath": "/var/lib/kumeo/io"} in pod["containers"][0]["volumeMounts"]
    assert not any(v["name"] == "data" and "emptyDir" in v for v in pod["volumes"])


def test_service_exposes_metrics() -> None:
    wf = wf_of(pipeline())
    (svc,) = [o for o in wf.kubernetes if o["kind"] == "Service"]
    assert svc["metadata"]["name"] == "fraud-detection-metrics"
    assert svc["spec"] == {"clusterIP": "None", "selector": {"kumeo.dev/workflow": "fraud-detection",
                                                              "app.kubernetes.io/component": "agent"},
                           "ports": [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]}
    assert svc["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                                              "prometheus.io/path": "/metrics"}
    # the selector picks every agent pod and no gateway pod
    for dep in (o for o in wf.kubernetes if o["kind"] == "Deployment"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items()


def test_namespace_and_nats_url_defaults_and_overrides() -> None:
    wf = wf_of(pipeline(nats="nats://n:4222"))
    assert (wf.namespace, wf.nats_url) == ("fraud-detection", "nats://n:4222")
    wf = wf_of(pipeline(deployment=Deployment(namespace="prod")))
    assert (wf.namespace, wf.nats_url) == ("prod", "nats://nats:4222")
    assert wf_of(pipeline(), namespace="x").namespace == "x"


# -- integrations -------------------------------------------------------------------------------------------------


def test_integration_inlines_prefixed_agents() -> None:
    prog = Program(
        workflows=[WorkflowSpec(name="W", sources=[NATS("in")], targets=[NATS("out")],
                                agents=[DataProcessor(id="first", output="clean")])],
        subworkflows=[SubworkflowSpec(name="Scoring", inputs=["events"], outputs=["result"], agents=[
            DataProcessor(id="prep", input="input.events"),
            MLModel("s.onnx", id="model", input="prep.output"),
        ])],
        integrations=[IntegrationSpec(workflow="W", use="Scoring", input_mapping={"events": "clean"},
                                      output_mapping={"result": "target.out"})],
    )
    wf = compile_program(prog).workflows[0]
    assert [a.id for a in wf.agents] == ["first", "scoring_prep", "scoring_model"]
    assert wf.agent("scoring_prep").inputs == {"": "kumeo.w.first.out"}
    assert wf.agent("scoring_model").inputs == {"": "kumeo.w.scoring_prep.out"}
    assert wf.agent("scoring_model").target_subjects == ["out"]
    assert wf.agent("scoring_model").output_subject == "kumeo.w.scoring_model.out"


def test_integration_of_unknown_subworkflow_is_a_compile_error() -> None:
    prog = Program(workflows=[WorkflowSpec(name="W", agents=[DataProcessor(id="a")])],
                   integrations=[IntegrationSpec(workflow="W", use="Nope")])
    with pytest.raises(KumeoCompileError, match="subworkflow 'Nope'"):
        compile_program(prog)


# -- determinism --------------------------------------------------------------------------------------------------


def test_compile_is_deterministic() -> None:
    def build() -> Program:
        return pipeline(agents=[
            DataProcessor(id="a"), DataProcessor(id="b"),
            DataProcessor(id="j", input={"y": "b.output", "x": "a.output"}),
            LLM("ollama/llama3", id="l", prompt="x", input="j.output"),
        ], deployment=Deployment(scaling=Scaling(max_replicas=3)))  # autoscalers, so KEDA changes them

    first = compile_program(build()).to_json()
    assert compile_program(build()).to_json() == first
    assert compile_program(build(), settings=PlatformSettings(keda_enabled=True)).to_json() != first


def test_minimal_subjects() -> None:
    assert minimal_subjects(["a.b", "a.*", "c", "a.*", "a.>"]) == ["a.>", "c"]
    assert overlap("a.*", "a.b") and overlap("a.>", "a.b.c") and not overlap("a.b", "a.c")
    assert not overlap("a.*", "a.b.c") and covers("a.>", "a.*") and not covers("a.*", "a.>")


# -- the gateway (HTTP/Timer/File sources, HTTP/File targets) -------------------------------------------------------


def _gateway_objects(wf) -> dict[str, dict]:
    return {o["kind"]: o for o in wf.kubernetes
            if o["metadata"]["labels"].get("kumeo.dev/component") == "gateway"}


def test_no_gateway_for_nats_only_workflows() -> None:
    wf = wf_of(pipeline())
    assert _gateway_objects(wf) == {}
    assert not any(o["metadata"]["name"].endswith("-gateway") for o in wf.kubernetes)


def test_gateway_objects_for_http_source_and_http_target() -> None:
    from kumeo_iac.spec import HttpSource as HttpSourceSpec

    wf = wf_of(pipeline(sources=[HttpSourceSpec("/ingest", id="web", options={"port": 9000}), Timer("1m", id="t")],
                        targets=[HttpTarget("https://hooks.example.com:8443/x", id="hook")]),
               nats_url="nats://nats:4333", runtime_images={"base": "reg.example.com/base:1"})
    objs = _gateway_objects(wf)
    assert sorted(objs) == ["Deployment", "NetworkPolicy", "Service", "ServiceAccount"]  # one replica: no PDB
    assert {o["metadata"]["name"] for o in objs.values()} == {"fraud-detection-gateway"}
    assert objs["ServiceAccount"]["automountServiceAccountToken"] is False

    dep = objs["Deployment"]
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["selector"]["matchLabels"] == {"kumeo.dev/workflow": "fraud-detection",
                                                      "kumeo.dev/component": "gateway"}
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "reg.example.com/base:1"
    assert c["command"] == ["python", "-m", "kumeo_iac.runtime.io"]
    assert c["args"] == ["--workflow", "FraudDetection", "--health-port", "8081"]
    assert {"name": "NATS_URL", "value": "nats://nats:4333"} in c["env"]
    assert [e["name"] for e in c["env"]] == ["NATS_URL", "KUMEO_WORKFLOW", PLAN_ENV]
    own = Plan.from_json(_own_plan(wf, None)).workflows[0]
    unlined = ([dataclasses.replace(ep, line=None) for ep in wf.sources],
               [dataclasses.replace(ep, line=None) for ep in wf.targets])
    assert (own.sources, own.targets) == unlined and own.agents == []  # lines locate errors only: no roll
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8081, "in-9000": 9000}
    assert c["args"][c["args"].index("--health-port") + 1] == "8081"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]  # no Plan volume
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]

    svc = objs["Service"]
    assert {(p["name"], p["port"]) for p in svc["spec"]["ports"]} == {("http", 8081), ("in-9000", 9000)}

    np = objs["NetworkPolicy"]["spec"]
    assert {p["port"] for r in np["ingress"] for p in r["ports"]} == {8081, 9000}
    (public,) = [r for r in np["ingress"] if r["ports"] == [{"protocol": "TCP", "port": 9000}]]
    assert public["from"] == [{"namespaceSelector": {}}]
    egress = {(p["port"], p["protocol"]) for r in np["egress"] for p in r["ports"]}
    assert egress == {(53, "UDP"), (53, "TCP"), (4333, "TCP"), (8443, "TCP")}
    assert all(r.get("to") for r in np["egress"])  # every port to a destination
    assert [r["to"][0].get("ipBlock", {}).get("cidr") for r in np["egress"]] == [None, None, "0.0.0.0/0"]
    assert wf.kubernetes == wf_of(pipeline(sources=[HttpSourceSpec("/ingest", id="web", options={"port": 9000}),
                                                    Timer("1m", id="t")],
                                           targets=[HttpTarget("https://hooks.example.com:8443/x", id="hook")]),
                                  nats_url="nats://nats:4333",
                                  runtime_images={"base": "reg.example.com/base:1"}).kubernetes  # deterministic


def test_gateway_default_port_moves_health_port_and_file_target_gets_a_data_volume() -> None:
    from kumeo_iac.spec import FileTarget as FileTargetSpec
    from kumeo_iac.spec import HttpSource as HttpSourceSpec

    wf = wf_of(pipeline(sources=[HttpSourceSpec("/in", id="a"), HttpSourceSpec("http://x:8081/b", id="b")],
                        targets=[FileTargetSpec("out/results.jsonl", id="f")]))
    dep = _gateway_objects(wf)["Deployment"]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8082, "in-8080": 8080, "in-8081": 8081}
    assert c["args"][c["args"].index("--base-dir") + 1] == "/var/lib/kumeo/io"
    assert any(v["name"] == "data" and "emptyDir" in v for v in dep["spec"]["template"]["spec"]["volumes"])


def test_http_source_port_matches_the_runtime_adapter() -> None:
    from kumeo_iac.compile._kubernetes import http_source_port
    from kumeo_iac.compile._plan import EndpointPlan
    from kumeo_iac.runtime.io import HttpSource

    wf = wf_of(pipeline())
    for address, options in (("/in", {}), ("/in", {"port": 9100}), ("http://h:9200/in", {}),
                             ("http://h:9200/in", {"port": 9300}), ("http://h/in", {})):
        ep = EndpointPlan(kind="HTTP", address=address, subject="kumeo.x.source.a", options=options, line=None,
                          name="a", stream="S")
        assert http_source_port(ep) == HttpSource(wf, ep).port, (address, options)


def test_agent_named_gateway_is_refused_when_the_workflow_needs_a_gateway() -> None:
    wf_of(pipeline(agents=[DataProcessor(id="gateway")]))  # no gateway needed: fine
    with pytest.raises(KumeoCompileError, match="gateway"):
        wf_of(pipeline(sources=[Timer("1m", id="t")], agents=[DataProcessor(id="gateway", input="source.t")]))


# -- lean objects: nothing grows with the number of agents, and an agent has at most three resources ---------------


def generated(n: int, *, min_replicas: int = 1, max_replicas: int = 4) -> Program:
    """A chain of ``n`` agents of every common kind (a join every 10th, a model every 7th, an LLM every 50th) ending
    in a Router that delivers to an HTTP target (so the gateway and the egress policy exist too)."""
    agents = []
    for i in range(n - 1):
        previous = f"a{i - 1}.output" if i else "source"
        if i % 10 == 9:
            agents.append(DataProcessor(id=f"a{i}", input={"left": previous, "right": f"a{i - 2}.output"}))
        elif i % 7 == 3:
            agents.append(MLModel("models/m.onnx", id=f"a{i}", input=previous))
        elif i % 50 == 25:
            agents.append(LLM("ollama/llama3", id=f"a{i}", input=previous, prompt="Summarise {{text}}"))
        else:
            agents.append(DataProcessor(id=f"a{i}", input=previous))
    agents.append(Router(id="route", input=f"a{n - 2}.output",
                         rules={"score > 0.5": "target.hook", "default": "target.low"}))
    return Program(workflows=[WorkflowSpec(
        name="Bench", sources=[NATS("bench.in")],
        targets=[HttpTarget("https://hooks.example.com/h", id="hook"), NATS("low")], agents=agents,
        deployment=Deployment(scaling=Scaling(min_replicas=min_replicas, max_replicas=max_replicas)))])


def _by_agent(wf) -> tuple[dict[str, list[dict]], list[dict]]:
    """(agent id → the objects of that agent alone, the objects shared by the workflow)."""
    ids = {}
    for o in wf.kubernetes:
        if o["kind"] == "Deployment" and "kumeo.dev/agent" in o["metadata"]["labels"]:
            args = o["spec"]["template"]["spec"]["containers"][0]["args"]
            ids[o["metadata"]["labels"]["kumeo.dev/agent"]] = args[args.index("--agent") + 1]
    per_agent: dict[str, list[dict]] = {agent_id: [] for agent_id in ids.values()}
    shared = []
    for o in wf.kubernetes:
        dns = o["metadata"]["labels"].get("kumeo.dev/agent")
        if dns is None:
            shared.append(o)
        else:
            per_agent[ids[dns]].append(o)
    return per_agent, shared


@pytest.mark.parametrize("min_replicas, max_replicas, kinds", [
    (1, 1, ["Deployment"]),
    (1, 4, ["Deployment", "HorizontalPodAutoscaler"]),
    (2, 2, ["Deployment"]),
    (2, 6, ["Deployment", "HorizontalPodAutoscaler"]),
])
def test_an_agents_own_objects_are_its_deployment_and_only_the_scaling_objects_it_uses(
        min_replicas: int, max_replicas: int, kinds: list[str]) -> None:
    for keda in (False, True):
        wf = wf_of(generated(30, min_replicas=min_replicas, max_replicas=max_replicas), keda_enabled=keda)
        per_agent, _ = _by_agent(wf)
        assert set(per_agent) == {a.id for a in wf.agents}
        expected = [k.replace("HorizontalPodAutoscaler", "ScaledObject") if keda else k for k in kinds]
        for agent in wf.agents:
            assert [o["kind"] for o in per_agent[agent.id]] == expected, agent.id
            # resources per agent: its Kubernetes objects (two at most, the disruption budget being shared) plus
            # its JetStream consumer(s) (a join has one per stream it reads)
            consumers = len(agent.consumers)
            assert 1 <= consumers <= 2
            assert len(per_agent[agent.id]) <= 2


def test_shared_objects_do_not_grow_with_the_number_of_agents() -> None:
    small, large = wf_of(generated(10)), wf_of(generated(200))
    _, shared_small = _by_agent(small)
    _, shared_large = _by_agent(large)
    assert [(o["kind"], o["metadata"]["name"]) for o in shared_small] == [
        (o["kind"], o["metadata"]["name"]) for o in shared_large] == [
        ("ConfigMap", "bench-grafana-dashboard"),
        ("ServiceAccount", "bench-agents"),
        ("ServiceAccount", "bench-gateway"),
        ("Service", "bench-metrics"),
        ("Service", "bench-gateway"),
        ("Deployment", "bench-gateway"),
        ("NetworkPolicy", "bench-agents"),
        ("NetworkPolicy", "bench-agents-egress"),
        ("NetworkPolicy", "bench-gateway"),
    ]
    # and they stay the same objects, byte for byte (nothing lists the agents)
    assert [json.dumps(o, sort_keys=True) for o in shared_small] == [json.dumps(o, sort_keys=True)
                                                                      for o in shared_large]
    per_agent, _ = _by_agent(large)
    assert len(large.kubernetes) == len(shared_large) + sum(len(v) for v in per_agent.values()) == 9 + 2 * 200


def test_two_thousand_agents_compile_to_objects_under_a_mebibyte_each(tmp_path) -> None:
    from kumeo_iac.manifests import workflow_manifests

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.onnx").write_bytes(b"onnx" * 100)
    wf = wf_of(generated(2000))
    manifests = workflow_manifests(wf, tmp_path)
    assert sum(o["kind"] == "Deployment" for o in manifests.objects) == 2001  # 2000 agents and the gateway
    sizes = {(o["kind"], o["metadata"]["name"]): len(json.dumps(o)) for o in manifests.objects}
    assert len(sizes) == len(manifests.objects)
    too_big = {k: v for k, v in sizes.items() if v >= 1024 * 1024}
    assert not too_big
    # the Grafana dashboard does not list the agents: the same size as for ten agents
    dashboard = sizes[("ConfigMap", "bench-grafana-dashboard")]
    small = wf_of(generated(10))
    (small_dashboard,) = [o for o in small.kubernetes if o["metadata"]["name"] == "bench-grafana-dashboard"]
    assert dashboard == len(json.dumps(small_dashboard))
    # the largest objects are the Deployments, each a few KiB, and every pod's Plan fits its environment
    assert max(sizes.values()) < 64 * 1024
    for o in manifests.objects:
        if o["kind"] == "Deployment":
            (plan_json,) = [e["value"] for e in o["spec"]["template"]["spec"]["containers"][0]["env"]
                            if e["name"] == PLAN_ENV]
            assert len(plan_json.encode()) <= PLAN_ENV_LIMIT
