"""The MLModel kind as a plain function: ONNX Runtime scores, field mapping, micro-batching, errors."""

from __future__ import annotations

import asyncio
import logging
import math
import pickle
from pathlib import Path
from typing import Any

import agent_helpers
import numpy as np
import pytest

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime._agent import Event, EventRejected, RuntimeAgent

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud_detection"
FEATURES = ["amount", "hour", "merchant_category", "country_mismatch"]


def make(settings: dict[str, Any], base_dir: Path = EXAMPLE) -> RuntimeAgent:
    return agent_helpers.make("MLModel", settings, base_dir=base_dir, agent_id="anomaly", image_class="ml")


async def started(settings: dict[str, Any], base_dir: Path = EXAMPLE) -> Any:
    return await agent_helpers.started("MLModel", settings, base_dir=base_dir, agent_id="anomaly", image_class="ml")


def example_settings(**extra: Any) -> dict[str, Any]:
    return {"model": {"file": "models/isolation_forest.onnx"}, "features": FEATURES, **extra}


def transactions(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {"tx_id": f"t{i}", "amount": float(round(rng.lognormal(3.5, 1.5), 2)), "hour": int(rng.integers(0, 24)),
         "merchant_category": int(rng.integers(0, 9)), "country_mismatch": int(rng.random() < 0.1)}
        for i in range(n)
    ]


def rows(events: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[e[f] for f in FEATURES] for e in events], dtype=np.float32)


@pytest.fixture(scope="module")
def fresh_forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    """A new IsolationForest, exported with skl2onnx twice: with the score offset in the metadata, and without."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import IsolationForest

    x = rows(transactions(1500, seed=11))
    model = IsolationForest(n_estimators=25, max_samples=128, contamination=0.05, random_state=1).fit(x)
    onx = to_onnx(model, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    folder = tmp_path_factory.mktemp("forest")
    bare = folder / "bare.onnx"
    bare.write_bytes(onx.SerializeToString())
    entry = onx.metadata_props.add()
    entry.key, entry.value = "kumeo.score_offset", repr(float(model.offset_))
    tagged = folder / "tagged.onnx"
    tagged.write_bytes(onx.SerializeToString())
    return model, tagged, bare


# -- numbers ---------------------------------------------------------------------------------------------------------


async def test_onnx_scores_equal_sklearn_decision_function(fresh_forest):
    model, tagged, _ = fresh_forest
    agent = await started({"model": str(tagged), "features": FEATURES,
                           "outputs": {"scores": "decision", "label": "label", "anomaly_score": "anomaly_score"}},
                          tagged.parent)
    events = transactions(400, seed=5)
    results = await agent.process_batch([Event(str(i), e) for i, e in enumerate(events)])
    out = [r[0].data for r in results]
    x = rows(events)
    assert np.allclose([o["decision"] for o in out], model.decision_function(x), atol=1e-5, rtol=0)
    assert np.allclose([o["anomaly_score"] for o in out], -model.score_samples(x), atol=1e-5, rtol=0)
    assert [o["label"] for o in out] == model.predict(x).tolist()
    assert all(o["tx_id"] == e["tx_id"] and o["amount"] == e["amount"] for o, e in zip(out, events, strict=True))


async def test_default_outputs_are_anomaly_label_and_a_0_to_1_score(fresh_forest):
    model, tagged, _ = fresh_forest
    agent = await started({"model": {"file": str(tagged), "type": "onnx"}, "features": FEATURES}, tagged.parent)
    event = transactions(1, seed=8)[0]
    out = (await agent.process(Event("e", event)))[0].data
    assert set(out) == set(event) | {"anomaly_label", "anomaly_score"}
    assert out["anomaly_label"] in (1, -1)
    assert 0 < out["anomaly_score"] <= 1
    assert math.isclose(out["anomaly_score"], -model.score_samples(rows([event]))[0], abs_tol=1e-5)


async def test_without_metadata_the_offset_is_sklearns_auto_or_the_setting(fresh_forest):
    model, _, bare = fresh_forest
    event = transactions(1, seed=9)[0]
    decision = float(model.decision_function(rows([event]))[0])
    auto = await started({"model": str(bare), "features": FEATURES}, bare.parent)
    assert math.isclose((await auto.process(Event("e", event)))[0].data["anomaly_score"], 0.5 - decision,
                        abs_tol=1e-5)
    given = await started({"model": str(bare), "features": FEATURES, "config": {"score_offset": model.offset_}},
                          bare.parent)
    assert math.isclose((await given.process(Event("e", event)))[0].data["anomaly_score"],
                        -model.score_samples(rows([event]))[0], abs_tol=1e-5)


async def test_example_model_flags_the_suspicious_transactions():
    agent = await started(example_settings())
    normal = {"amount": 42.5, "hour": 13, "merchant_category": 3, "country_mismatch": 0}
    odd = {"amount": 4999.0, "hour": 3, "merchant_category": 7, "country_mismatch": 1}
    a, b = await agent.process_batch([Event("1", normal), Event("2", odd)])
    assert a[0].data["anomaly_label"] == 1 and a[0].data["anomaly_score"] < 0.5
    assert b[0].data["anomaly_label"] == -1 and b[0].data["anomaly_score"] > 0.7


# -- micro-batching --------------------------------------------------------------------------------------------------


async def test_micro_batching_gives_the_same_numbers_as_one_event_at_a_time():
    events = [Event(str(i), e) for i, e in enumerate(transactions(300, seed=21))]
    batched = await started(example_settings(config={"batch_size": 128}))
    single = await started(example_settings(config={"batch_size": 1}))
    b = [r[0].data for r in await batched.process_batch(events)]
    s = [r[0].data for r in await single.process_batch(events)]
    one_by_one = [(await single.process(e))[0].data for e in events[:20]]
    assert batched._batcher.calls == 3  # ceil(300 / 128)
    assert single._batcher.calls == 300 + 20
    for x, y in zip(b, s, strict=True):
        assert x["anomaly_label"] == y["anomaly_label"]
        assert abs(x["anomaly_score"] - y["anomaly_score"]) <= 1e-6
    assert one_by_one == s[:20]


async def test_max_wait_coalesces_concurrent_callers_into_one_call():
    agent = await started(example_settings(config={"batch_size": 64, "max_wait_ms": 20}))
    events = [Event(str(i), e) for i, e in enumerate(transactions(10))]
    results = await asyncio.gather(*(agent.process(e) for e in events))
    assert agent._batcher.calls == 1
    assert [r[0].data["tx_id"] for r in results] == [e.data["tx_id"] for e in events]


async def test_a_full_batch_runs_without_waiting():
    agent = await started(example_settings(config={"batch_size": 4, "max_wait_ms": 5000}))
    events = [Event(str(i), e) for i, e in enumerate(transactions(8))]
    results = await asyncio.wait_for(agent.process_batch(events), 1.0)
    assert len(results) == 8 and agent._batcher.calls == 2


# -- input mapping and per-event errors ------------------------------------------------------------------------------


async def test_bad_events_are_rejected_naming_the_field_and_spare_their_neighbours():
    agent = await started(example_settings())
    good = transactions(1)[0]
    batch = [
        {**good, "amount": None},
        {k: v for k, v in good.items() if k != "hour"},
        {**good, "merchant_category": "grocery"},
        {**good, "amount": float("nan")},
        ["not", "an", "object"],
        good,
    ]
    results = await agent.process_batch([Event(str(i), d) for i, d in enumerate(batch)])
    messages = [str(r) for r in results[:5]]
    assert all(isinstance(r, EventRejected) for r in results[:5])
    assert "feature 'amount' is missing" in messages[0]
    assert "feature 'hour' is missing" in messages[1]
    assert "feature 'merchant_category' must be a number" in messages[2] and "'grocery'" in messages[2]
    assert "feature 'amount' must be finite" in messages[3]
    assert "expected a JSON object" in messages[4]
    assert results[5][0].data["tx_id"] == good["tx_id"]


async def test_booleans_are_zero_and_one_and_dotted_paths_reach_nested_fields():
    agent = await started({**example_settings(), "features": ["tx.amount", "tx.hour", "mcc", "foreign"]})
    flat = await started(example_settings())
    nested = {"tx": {"amount": 900.0, "hour": 2}, "mcc": 4, "foreign": True}
    plain = {"amount": 900.0, "hour": 2, "merchant_category": 4, "country_mismatch": 1}
    a = (await agent.process(Event("1", nested)))[0].data
    b = (await flat.process(Event("2", plain)))[0].data
    assert a["anomaly_score"] == b["anomaly_score"]


def two_input_model(path: Path) -> Path:
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 2])
    total = helper.make_tensor_value_info("total", TensorProto.FLOAT, [None, 2])
    product = helper.make_tensor_value_info("product", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["total"]),
                               helper.make_node("Mul", ["a", "b"], ["product"])], "two", [a, b], [total, product])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


async def test_several_inputs_and_an_explicit_output_mapping(tmp_path):
    model = two_input_model(tmp_path / "two.onnx")
    agent = await started({"model": str(model), "inputs": {"a": ["x", "y"], "b": ["p", "q"]},
                           "outputs": {"total": "sums"}}, tmp_path)
    out = (await agent.process(Event("1", {"x": 1, "y": 2.5, "p": 10, "q": True})))[0].data
    assert out == {"x": 1, "y": 2.5, "p": 10, "q": True, "sums": [11.0, 3.5]}
    every = await started({"model": str(model), "inputs": {"a": ["x", "y"], "b": ["p", "q"]}}, tmp_path)
    out = (await every.process(Event("1", {"x": 2, "y": 3, "p": 4, "q": 5})))[0].data
    assert out["total"] == [6.0, 8.0] and out["product"] == [8.0, 15.0]


# -- settings errors at start ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"model": "models/net.pt", "features": ["a"]}, "model type 'pytorch' is not supported"),
        ({"model": {"file": "models/isolation_forest.onnx", "type": "TensorFlow"}, "features": FEATURES},
         "model type 'tensorflow' is not supported"),
        ({"model": "models/forest.pkl", "features": ["a"]}, "allow_pickle: true"),
        ({"model": "models/missing.onnx", "features": FEATURES}, "not found"),
        ({"model": "models/isolation_forest.onnx", "features": ["amount", "hour"]},
         "takes 4 values per row but 2 field(s) are given"),
        ({"model": "models/isolation_forest.onnx"}, "needs 'features"),
        ({"model": "models/isolation_forest.onnx", "features": FEATURES, "inputs": {"X": FEATURES}},
         "either 'features' or 'inputs'"),
        ({"model": "models/isolation_forest.onnx", "inputs": {"Y": FEATURES}}, "no input 'Y' (inputs: X)"),
        ({**example_settings(), "outputs": {"probability": "p"}}, "no output 'probability'"),
        ({**example_settings(), "config": {"batch_size": 0}}, "batch_size must be a whole number >= 1"),
        ({**example_settings(), "config": {"max_wait_ms": -1}}, "max_wait_ms must be a number >= 0"),
        ({"model": 42, "features": FEATURES}, "'model' must be a file path"),
    ],
)
async def test_bad_settings_fail_at_start(tmp_path, settings, needle):
    for name in ("net.pt", "forest.pkl"):
        (tmp_path / "models").mkdir(exist_ok=True)
        (tmp_path / "models" / name).write_bytes(b"\x80\x04N.")
    (tmp_path / "models" / "isolation_forest.onnx").write_bytes(
        (EXAMPLE / "models" / "isolation_forest.onnx").read_bytes())
    with pytest.raises(KumeoRuntimeError) as info:
        await make(settings, tmp_path).start()
    assert needle in str(info.value)
    assert "MLModel 'anomaly'" in str(info.value)


async def test_a_pickled_sklearn_model_loads_only_when_opted_in_and_warns(tmp_path, caplog, fresh_forest):
    model, _, _ = fresh_forest
    (tmp_path / "forest.pkl").write_bytes(pickle.dumps(model))
    with pytest.raises(KumeoRuntimeError, match="executes code"):
        await make({"model": "forest.pkl", "features": FEATURES}, tmp_path).start()
    with caplog.at_level(logging.WARNING, logger="kumeo.runtime.ml_model"):
        agent = await started({"model": "forest.pkl", "features": FEATURES, "config": {"allow_pickle": True}},
                              tmp_path)
    assert any("unpickling executes code" in r.getMessage() for r in caplog.records)
    event = transactions(1, seed=4)[0]
    out = (await agent.process(Event("1", event)))[0].data
    assert math.isclose(out["anomaly_score"], -model.score_samples(rows([event]))[0], abs_tol=1e-9)
    assert out["anomaly_label"] == model.predict(rows([event]))[0]


async def test_thread_pools_come_from_the_settings():
    default = await started(example_settings())
    assert default.runner.session.get_session_options().intra_op_num_threads == 1
    two = await started(example_settings(config={"intra_op_num_threads": 2}))
    assert two.runner.session.get_session_options().intra_op_num_threads == 2


async def test_process_before_start_is_an_error():
    with pytest.raises(KumeoRuntimeError, match="before start"):
        await make(example_settings()).process(Event("1", {}))
