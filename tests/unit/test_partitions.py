"""Partitioned agents (issue 17, item 1): `partitions`/`partition_key` checked where written, and compiled to a
keyed hand-off, a partition stream with JetStream's `partition()` subject transform, one durable per lane and a
StatefulSet whose pod i consumes lane i."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kumeo_iac.compile import Plan, PlatformSettings, compile_program
from kumeo_iac.errors import KumeoCompileError, KumeoError
from kumeo_iac.lang import parse
from kumeo_iac.manifests import workflow_manifests
from kumeo_iac.spec import NATS, Custom, DataProcessor, Program, WorkflowSpec
from kumeo_iac.validate import validate

WORKFLOW = """\
workflow Totals {
  source: NATS("payments.in")
  target: NATS("payments.totals")
  agents: [
    DataProcessor(id: "validate", input: source),
    Custom(id: "total", entrypoint: "totals:add", input: validate.output, partitions: PARTS, partition_key: KEY)
  ]DEPLOY
}
"""


def kumeo(parts: str = "4", key: str = '"customer.id"', deploy: str = "") -> str:
    return WORKFLOW.replace("PARTS", parts).replace("KEY", key).replace("DEPLOY", deploy)


def diagnostics(text: str) -> list[Any]:
    result = parse(textwrap.dedent(text), "t.kumeo")
    assert [d for d in result.diagnostics if d.is_error] == [], result.diagnostics
    return [d for d in validate(result.program) if d.code == "bad-partitions"]


def plan_of(text: str, settings: PlatformSettings | None = None) -> Plan:
    result = parse(text, "t.kumeo")
    assert result.ok, result.diagnostics
    return compile_program(result.program, settings=settings)


# -- checks ----------------------------------------------------------------------------------------------------------


def test_a_well_formed_partitioned_agent_has_no_problems() -> None:
    assert diagnostics(kumeo()) == []


@pytest.mark.parametrize(("parts", "key", "expected"), [
    ("0", '"customer.id"', "partitions of Custom 'total' must be at least 1 (got 0)"),
    ("65", '"customer.id"', "partitions of Custom 'total' must be at most 64 (got 65)"),
    ("4", '"customer id"', "partition_key of Custom 'total' \"customer id\" is not a field path"),
    ("4", '"customer..id"', "partition_key of Custom 'total' \"customer..id\" is not a field path"),
])
def test_bad_values_are_reported_at_their_argument(parts: str, key: str, expected: str) -> None:
    text = kumeo(parts, key)
    [diag] = diagnostics(text)
    assert diag.message.startswith(expected)
    argument = "partitions" if "partitions of" in expected else "partition_key"
    line = next(i for i, t in enumerate(text.splitlines(), 1) if argument in t)
    assert diag.span.line == line
    assert diag.span.column == text.splitlines()[line - 1].index(f"{argument}: ") + len(argument) + 3


def test_a_key_without_partitions_and_partitions_without_a_key_are_refused() -> None:
    [without_parts] = diagnostics(kumeo().replace("partitions: 4, ", ""))
    assert "partition_key of Custom 'total' is set without `partitions`" in without_parts.message
    [without_key] = diagnostics(kumeo().replace(', partition_key: "customer.id"', ""))
    assert "partitions of Custom 'total' needs a `partition_key`" in without_key.message


@pytest.mark.parametrize("scaling", ["{ min_replicas: 2 }", "{ max_replicas: 5 }"])
def test_partitions_refuse_replica_scaling(scaling: str) -> None:
    text = kumeo(deploy=f"\n  deployment: {{ scaling: {scaling} }}")
    [diag] = diagnostics(text)
    assert "has 4 partitions, one pod each, but workflow 'Totals' scales its agents" in diag.message
    with pytest.raises(KumeoCompileError, match=r"deployment\.scaling"):
        plan_of(text)


def test_a_partitioned_agent_must_read_another_agents_output() -> None:
    text = kumeo().replace("input: validate.output", "input: source")
    [diag] = diagnostics(text)
    assert diag.message.startswith("partitioned agent 'total' must read exactly one other agent's output")
    line = text.splitlines()[diag.span.line - 1]
    assert line[diag.span.column - 1:].startswith("source")
    with pytest.raises(KumeoCompileError, match="must read exactly one other agent's output") as info:
        plan_of(text)
    assert "put a DataProcessor in front of it" in str(info.value)


def test_python_and_kumeo_declare_the_same_agent() -> None:
    program = Program(workflows=[WorkflowSpec(
        name="Totals", sources=[NATS("payments.in")], targets=[NATS("payments.totals")],
        agents=[DataProcessor(id="validate"),
                Custom(id="total", entrypoint="totals:add", input="validate.output", partitions=4,
                       partition_key="customer.id")])])
    from_python = compile_program(program).workflows[0].agent("total")
    from_text = plan_of(kumeo()).workflows[0].agent("total")
    assert dataclasses.replace(from_python, line=None) == dataclasses.replace(from_text, line=None)


# -- the Plan ----------------------------------------------------------------------------------------------------


def test_the_upstream_publishes_a_keyed_copy_and_may_publish_it() -> None:
    wf = plan_of(kumeo()).workflows[0]
    upstream = wf.agent("validate")
    assert upstream.output_subject == "kumeo.totals.validate.out"  # unchanged: others still read it
    assert upstream.settings["keyed_outputs"] == [
        {"agent": "total", "subject": "kumeo.totals.total.in", "key": ["customer", "id"]}]
    assert upstream.identity is not None and "kumeo.totals.total.in.*" in upstream.identity.publish


def test_the_partition_stream_sources_the_keyed_copies_through_a_partition_transform() -> None:
    wf = plan_of(kumeo()).workflows[0]
    [stream] = [s for s in wf.streams if s.role == "partitions"]
    assert stream.name == "KUMEO_TOTALS_TOTAL_PARTITIONS"
    assert "subjects" not in stream.config  # no subjects of its own: it overlaps nothing
    assert stream.config["sources"] == [{"name": "KUMEO_TOTALS", "subject_transforms": [
        {"src": "kumeo.totals.total.in.*", "dest": "kumeo.totals.total.p.{{partition(4,1)}}.{{wildcard(1)}}"}]}]


def test_one_durable_per_lane_and_the_agent_reads_the_lanes() -> None:
    agent = plan_of(kumeo()).workflows[0].agent("total")
    assert [(c.stream, c.durable, c.config["filter_subjects"]) for c in agent.consumers] == [
        ("KUMEO_TOTALS_TOTAL_PARTITIONS", f"total_p{i}", [f"kumeo.totals.total.p.{i}.*"]) for i in range(4)]
    assert all(c.config["durable_name"] == c.durable for c in agent.consumers)
    # one event in flight per lane, so a retried or redelivered event is handled before any later one of its key
    assert all(c.config["max_ack_pending"] == 1 for c in agent.consumers)
    assert agent.inputs == {"": "kumeo.totals.total.p.*.*"}
    assert agent.settings["partition"] == {"count": 4, "key": ["customer", "id"], "upstream": "validate",
                                           "keyed_subject": "kumeo.totals.total.in",
                                           "stream": "KUMEO_TOTALS_TOTAL_PARTITIONS"}
    assert (agent.replicas, agent.max_replicas) == (4, 4)


def test_a_field_selected_from_the_upstream_prefixes_the_key() -> None:
    wf = plan_of(kumeo().replace("input: validate.output", "input: validate.output.payment")).workflows[0]
    assert wf.agent("validate").settings["keyed_outputs"][0]["key"] == ["payment", "customer", "id"]
    assert wf.agent("total").input_fields == {"": ["payment"]}


def test_the_partitioned_agent_runs_as_a_statefulset_with_its_ordinal_as_lane() -> None:
    wf = plan_of(kumeo(), PlatformSettings(keda_enabled=True)).workflows[0]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in wf.kubernetes}
    assert ("StatefulSet", "totals-total") in kinds
    assert ("Deployment", "totals-total") not in kinds and ("Deployment", "totals-validate") in kinds
    assert not any(o["kind"] in ("ScaledObject", "HorizontalPodAutoscaler") for o in wf.kubernetes)
    [sts] = [o for o in wf.kubernetes if o["kind"] == "StatefulSet"]
    spec = sts["spec"]
    assert spec["replicas"] == 4 and spec["serviceName"] == "totals-metrics"
    assert spec["podManagementPolicy"] == "Parallel" and "strategy" not in spec
    [container] = spec["template"]["spec"]["containers"]
    assert {"name": "KUMEO_PARTITION",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}
            } in container["env"]
    # the lanes' pods fall under the workflow's disruption budget: one eviction at a time
    assert spec["template"]["metadata"]["labels"]["kumeo.dev/replicated"] == "true"
    [pdb] = [o for o in wf.kubernetes if o["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    kinds_in_order = [o["kind"] for o in wf.kubernetes]
    assert kinds_in_order.index("Service") < kinds_in_order.index("StatefulSet")


def test_the_statefulset_gets_the_files_checksum_so_a_changed_file_rolls_the_lanes(tmp_path: Path) -> None:
    (tmp_path / "totals.wasm").write_bytes(b"\0asm-one")
    text = kumeo().replace('entrypoint: "totals:add"', 'wasm: "totals.wasm"')
    plan = plan_of(text).workflows[0]

    def checksum() -> str:
        objects = workflow_manifests(plan, base_dir=tmp_path).objects
        [sts] = [o for o in objects if o["kind"] == "StatefulSet"]
        return str(sts["spec"]["template"]["metadata"]["annotations"]["kumeo.dev/files-checksum"])

    first = checksum()
    (tmp_path / "totals.wasm").write_bytes(b"\0asm-two")
    assert checksum() != first


def test_the_plan_round_trips_and_is_deterministic() -> None:
    plan = plan_of(kumeo())
    assert Plan.from_json(plan.to_json()) == plan
    assert plan_of(kumeo()).to_json() == plan.to_json()
    assert json.loads(plan.to_json())  # plain JSON: no enums left in the stream config


# -- the Workflow component (Pulumi's mocks) -----------------------------------------------------------------------


def test_the_component_registers_the_statefulset_the_partition_stream_and_every_lane(pulumi_mocks: Any) -> None:
    import pulumi

    from kumeo_iac.components import Workflow
    from kumeo_iac.testing import await_output, resources_of_type

    pulumi.runtime.set_all_config({})
    spec = parse(kumeo(), "t.kumeo").program.workflows[0]
    created: dict[str, Any] = {}
    resources = pulumi_mocks.run(lambda: created.setdefault(
        "wf", Workflow("totals", spec, jetstream_url="nats://127.0.0.1:4222")))
    wf = created["wf"]
    assert {"stream/KUMEO_TOTALS_TOTAL_PARTITIONS", *(f"consumer/KUMEO_TOTALS_TOTAL_PARTITIONS/total_p{i}"
                                                       for i in range(4))} <= set(wf.jetstream)
    [sts] = resources_of_type(resources, "kubernetes:apps/v1:StatefulSet")
    assert sts.get("spec.replicas") == 4
    assert [r.get("metadata.name") for r in resources_of_type(resources, "kubernetes:apps/v1:Deployment")] == [
        "totals-validate"]
    for i in range(4):  # each lane's pod may start only once its durable exists
        assert await_output(wf.jetstream[f"consumer/KUMEO_TOTALS_TOTAL_PARTITIONS/total_p{i}"].urn) in sts.dependencies


# -- the runtime's part: the key token and the lane of a process ---------------------------------------------------


def test_the_key_token_is_one_stable_subject_token_per_value() -> None:
    from kumeo_iac.jetstream import valid_subject
    from kumeo_iac.runtime._partitions import MISSING_KEY_TOKEN, key_token, keyed_subjects

    keyed = [{"agent": "total", "subject": "kumeo.t.total.in", "key": ["customer", "id"]}]

    def subject(event: Any) -> str:
        [s] = keyed_subjects(keyed, json.dumps(event).encode())
        return s

    a = subject({"customer": {"id": "a.b c>*"}, "n": 1})
    assert a == subject({"n": 2, "customer": {"id": "a.b c>*"}}) and valid_subject(a, wildcards=False)
    assert a != subject({"customer": {"id": "a.b c>"}})
    assert subject({"customer": {"id": 7}}) != subject({"customer": {"id": "7"}})  # JSON values, not their text
    for without in ({}, {"customer": None}, {"customer": {"id": None}}, {"customer": "flat"}):
        assert subject(without) == f"kumeo.t.total.in.{MISSING_KEY_TOKEN}"
    assert keyed_subjects(keyed, b"not json") == [f"kumeo.t.total.in.{MISSING_KEY_TOKEN}"]
    assert keyed_subjects(None, b"{}") == []
    assert key_token({"b": 1, "a": 2}) == key_token({"a": 2, "b": 1})


def test_the_lane_comes_from_the_argument_the_environment_or_in_a_pod_the_hostname(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from kumeo_iac.runtime._partitions import lane_of_process

    lanes = {"count": 4}
    monkeypatch.delenv("KUMEO_PARTITION", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(socket, "gethostname", lambda: "totals-total-3")
    assert lane_of_process(lanes, None, "total") is None  # outside Kubernetes a hostname means nothing
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert lane_of_process(lanes, None, "total") == 3
    monkeypatch.setenv("KUMEO_PARTITION", "1")
    assert lane_of_process(lanes, None, "total") == 1
    assert lane_of_process(lanes, 0, "total") == 0
    monkeypatch.setattr(socket, "gethostname", lambda: "totals-total-7")
    monkeypatch.delenv("KUMEO_PARTITION")
    with pytest.raises(KumeoError, match=r"agent 'total' has 4 partitions \(0 to 3\), but the pod's hostname says "
                                         r"lane 7; scale its StatefulSet to 4 replicas"):
        lane_of_process(lanes, None, "total")


def test_changing_n_changes_the_lanes_and_rolls_only_the_partitioned_agent() -> None:
    def objects(parts: str) -> tuple[Any, dict[tuple[str, str], Any]]:
        wf = plan_of(kumeo(parts)).workflows[0]
        return wf, {(o["kind"], o["metadata"]["name"]): o for o in wf.kubernetes}

    before, old = objects("4")
    after, new = objects("2")
    assert [c.durable for c in after.agent("total").consumers] == ["total_p0", "total_p1"]
    [stream] = [s for s in after.streams if s.role == "partitions"]
    assert "{{partition(2,1)}}" in stream.config["sources"][0]["subject_transforms"][0]["dest"]
    assert new[("StatefulSet", "totals-total")]["spec"]["replicas"] == 2
    # the input agent publishes the same keyed copies whatever N is: its pod does not roll
    assert new[("Deployment", "totals-validate")] == old[("Deployment", "totals-validate")]
    assert after.agent("validate") == before.agent("validate")
    # a new key does change what it publishes
    rekeyed = plan_of(kumeo(key='"account"')).workflows[0]
    assert rekeyed.agent("validate").settings["keyed_outputs"][0]["key"] == ["account"]
