"""MLModel and BayesianNetwork agents (and a BayesianNetwork context) in a real Worker on a real nats-server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from worker_support import (
    Harness,
    create_streams,
    publish_events,
    read_subject,
    source_subject,
    stream_names,
    wait_count,
)

from kumeo_iac.compile import compile_program
from kumeo_iac.lang import parse

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore::FutureWarning:pgmpy")]  # pgmpy's import-time deprecations

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud_detection"
FEATURES = ["amount", "hour", "merchant_category", "country_mismatch"]


async def run_kind(harness: Harness, kind: str, settings: dict[str, Any], events: list[Any], *,
                   expected_out: int, expected_dlq: int = 0, **worker_options: Any) -> tuple[list[Any], list[Any]]:
    """One agent of ``kind`` fed ``events`` from a source subject; its outputs and dead letters, decoded."""
    slug, plan = await harness.one_agent(settings=settings, kind=kind, timeout=10.0)
    await harness.run_worker(plan, "a", None, base_dir=EXAMPLE, **worker_options)
    await publish_events(harness.js, source_subject(slug), events)
    internal, _ = stream_names(slug)
    out, dlq = f"kumeo.{slug}.a.out", f"kumeo.{slug}.dlq.a"
    assert await wait_count(harness.js, internal, out, expected_out, timeout=30) == expected_out
    assert await wait_count(harness.js, internal, dlq, expected_dlq, timeout=10) == expected_dlq
    outputs = [json.loads(m.data) for m in await read_subject(harness.js, internal, out)]
    letters = [(json.loads(m.data), m.headers) for m in await read_subject(harness.js, internal, dlq)]
    return outputs, letters


def example_events() -> list[dict[str, Any]]:
    lines = (EXAMPLE / "events" / "transactions.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def onnx_reference(events: list[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """The example model run directly with onnxruntime: tx_id → (label, -(scores + offset))."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(EXAMPLE / "models" / "isolation_forest.onnx"))
    offset = float(session.get_modelmeta().custom_metadata_map["kumeo.score_offset"])
    x = np.array([[e[f] for f in FEATURES] for e in events], dtype=np.float32)
    labels, scores = session.run(["label", "scores"], {"X": x})
    return {e["tx_id"]: (int(label[0]), -(float(score[0]) + offset))
            for e, label, score in zip(events, labels, scores, strict=True)}


async def test_ml_model_worker_scores_the_example_transactions(harness):
    events = example_events()
    good = [e for e in events if all(f in e for f in FEATURES)]
    assert len(good) == len(events) - 1  # t-1009 has "amount_typo"
    outputs, letters = await run_kind(
        harness, "MLModel", {"model": {"file": "models/isolation_forest.onnx"}, "features": FEATURES}, events,
        expected_out=len(good), expected_dlq=1)
    expected = onnx_reference(good)
    assert {o["tx_id"] for o in outputs} == set(expected)
    for out in outputs:
        label, score = expected[out["tx_id"]]
        assert out["anomaly_label"] == label
        assert abs(out["anomaly_score"] - score) < 1e-6
    flagged = {o["tx_id"] for o in outputs if o["anomaly_label"] == -1}
    assert {"t-1003", "t-1005"} <= flagged
    body, headers = letters[0]
    assert body["input"]["tx_id"] == "t-1009" and body["attempt"] == 1  # rejected at once, never retried
    assert "feature 'amount' is missing" in body["error"] and "feature 'amount'" in headers["Kumeo-Error"]


async def test_micro_batched_worker_gives_the_same_numbers_as_unbatched(harness):
    rng = np.random.default_rng(17)
    events = [{"tx_id": f"t{i}", "amount": float(round(rng.lognormal(3.5, 1.4), 2)),
               "hour": int(rng.integers(0, 24)), "merchant_category": int(rng.integers(0, 9)),
               "country_mismatch": int(rng.random() < 0.1)} for i in range(600)]
    base = {"model": {"file": "models/isolation_forest.onnx"}, "features": FEATURES}
    batched, _ = await run_kind(harness, "MLModel", {**base, "config": {"batch_size": 256}}, events,
                                expected_out=len(events), batch_size=256)
    single, _ = await run_kind(harness, "MLModel", {**base, "config": {"batch_size": 1}}, events,
                               expected_out=len(events), batch_size=256)
    by_id = {o["tx_id"]: o for o in single}
    assert len(by_id) == len(events)
    expected = onnx_reference(events)
    for out in batched:
        other = by_id[out["tx_id"]]
        assert out["anomaly_label"] == other["anomaly_label"] == expected[out["tx_id"]][0]
        assert abs(out["anomaly_score"] - other["anomaly_score"]) <= 1e-6
        assert abs(out["anomaly_score"] - expected[out["tx_id"]][1]) <= 1e-6


async def test_bayesian_network_worker_posteriors_equal_pgmpy(harness):
    from pgmpy.inference import VariableElimination
    from pgmpy.readwrite import BIFReader

    engine = VariableElimination(BIFReader(str(EXAMPLE / "models" / "risk.bn")).get_model())
    events = [
        {"tx_id": "a", "night": True, "foreign": 1, "high_value": "yes"},
        {"tx_id": "b", "night": False, "foreign": 0},
        {"tx_id": "c"},
        {"tx_id": "d", "night": "sometimes"},
    ]
    outputs, letters = await run_kind(harness, "BayesianNetwork",
                                      {"network": {"file": "models/risk.bn"}, "query": "fraud"}, events,
                                      expected_out=3, expected_dlq=1)
    evidence = {"a": {"night": "yes", "foreign": "yes", "high_value": "yes"},
                "b": {"night": "no", "foreign": "no"}, "c": {}}
    for out in outputs:
        factor = engine.query(["fraud"], evidence=evidence[out["tx_id"]], show_progress=False)
        expected = {str(s): float(p) for s, p in zip(factor.state_names["fraud"], factor.values, strict=True)}
        assert out["fraud"] == pytest.approx(expected, abs=1e-12)
    assert "value 'sometimes' for variable 'night'" in letters[0][0]["error"]


CONTEXT_WORKFLOW = """
workflow Ctx {
  source: NATS("tx.in")
  context: BayesianNetwork("models/risk.bn", id: "risk",
                           options: { evidence: { night: "hour < 6 || hour >= 23", foreign: "country_mismatch",
                                                  high_value: "amount > 1000" } })
  agents: [
    DecisionMatrix(id: "policy", input: source, context: "risk", when: "risk.fraud >= 0.01",
                   rules: [ { condition: "risk.fraud >= 0.3", then: { decision: "block" } },
                            { condition: "risk.fraud >= 0.1", then: { decision: "review" } },
                            { then: { decision: "allow" } } ])
  ]
}
"""


async def test_a_compiled_workflow_context_reaches_when_and_the_decision_table(harness):
    result = parse(CONTEXT_WORKFLOW, str(EXAMPLE / "ctx.kumeo"))
    assert result.ok, result.diagnostics
    plan = compile_program(result.program, base_dir=EXAMPLE).workflows[0]
    await create_streams(harness.js, plan)
    policy = plan.agent("policy")
    await harness.run_worker(plan, "policy", None, base_dir=EXAMPLE)
    await publish_events(harness.js, "tx.in", [
        {"tx_id": "block", "amount": 4999.0, "hour": 3, "country_mismatch": 1},    # P(fraud) = 0.40
        {"tx_id": "review", "amount": 80.0, "hour": 2, "country_mismatch": 1},     # 0.12
        {"tx_id": "allow", "amount": 1500.0, "hour": 14, "country_mismatch": 0},   # 0.03
        {"tx_id": "skipped", "amount": 20.0, "hour": 12, "country_mismatch": 0},   # 0.005: `when` is false
    ])
    internal = next(s.name for s in plan.streams if s.role == "internal")
    assert await wait_count(harness.js, internal, policy.output_subject, 4, timeout=30) == 4
    outputs = {o["tx_id"]: o for o in
               (json.loads(m.data) for m in await read_subject(harness.js, internal, policy.output_subject))}
    assert outputs["block"]["decision"] == "block" and outputs["block"]["risk"]["fraud"] == pytest.approx(0.4)
    assert outputs["review"]["decision"] == "review" and outputs["review"]["risk"]["fraud"] == pytest.approx(0.12)
    assert outputs["allow"]["decision"] == "allow" and outputs["allow"]["risk"]["fraud"] == pytest.approx(0.03)
    assert outputs["skipped"] == {"tx_id": "skipped", "amount": 20.0, "hour": 12, "country_mismatch": 0}
