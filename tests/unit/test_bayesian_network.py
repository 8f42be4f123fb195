"""The BayesianNetwork kind and context as plain functions, checked against pgmpy's own VariableElimination."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path
from typing import Any

import agent_helpers
import pytest
from agent_helpers import agent_plan, one

from kumeo_iac.compile import AgentPlan, compile_program
from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.lang import parse
from kumeo_iac.runtime._agent import EventRejected, RuntimeAgent
from kumeo_iac.runtime._models import (
    clear_network_cache,
    evidence_state,
    load_network,
    positive_state,
)
from kumeo_iac.runtime.agents import create_agent
from kumeo_iac.runtime.contexts import load_contexts

pytest.importorskip("pgmpy")  # the 'bayes' extra; installed in the project's venv
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:pgmpy")  # pgmpy's own import-time deprecations

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud_detection"
RISK = EXAMPLE / "models" / "risk.bn"
PARENTS = ["night", "foreign", "high_value"]


def plan(settings: dict[str, Any], kind: str = "BayesianNetwork") -> AgentPlan:
    return agent_plan(kind, settings, agent_id="risk", image_class="ml")


async def started(settings: dict[str, Any], base_dir: Path = EXAMPLE) -> RuntimeAgent:
    return await agent_helpers.started("BayesianNetwork", settings, base_dir=base_dir, agent_id="risk",
                                       image_class="ml")


@pytest.fixture(scope="module")
def engine() -> Any:
    """pgmpy used directly, the reference every number is checked against."""
    from pgmpy.inference import VariableElimination
    from pgmpy.readwrite import BIFReader

    return VariableElimination(BIFReader(str(RISK)).get_model())


def reference(engine: Any, evidence: dict[str, str]) -> dict[str, float]:
    factor = engine.query(["fraud"], evidence=evidence, show_progress=False)
    return {str(s): float(p) for s, p in zip(factor.state_names["fraud"], factor.values, strict=True)}


# -- the agent -------------------------------------------------------------------------------------------------------


async def test_posteriors_equal_pgmpy_for_every_evidence_combination(engine):
    agent = await started({"network": {"file": "models/risk.bn"}, "query": "fraud"})
    for values in itertools.product(["no", "yes", None], repeat=3):
        event = {name: value for name, value in zip(PARENTS, values, strict=True) if value is not None}
        out = await one(agent, {"tx_id": "t1", **event})
        expected = reference(engine, event)
        assert out["tx_id"] == "t1"
        assert out["fraud"].keys() == expected.keys()
        for state, probability in expected.items():
            assert abs(out["fraud"][state] - probability) < 1e-12, (event, state)


async def test_evidence_mapping_from_event_fields_and_expressions(engine):
    agent = await started({
        "network": {"file": "models/risk.bn"},
        "evidence": {"night": "hour < 6 || hour >= 23", "foreign": "country_mismatch",
                     "high_value": "amount > config.high_value"},
    })
    agent.settings["workflow_config"] = {"high_value": 1000}
    out = await one(agent, {"amount": 4999.0, "hour": 3, "country_mismatch": 1})
    assert out["fraud"] == pytest.approx(reference(engine, {"night": "yes", "foreign": "yes", "high_value": "yes"}))
    out = await one(agent, {"amount": 10.0, "hour": 12, "country_mismatch": 0})
    assert out["fraud"] == pytest.approx(reference(engine, {"night": "no", "foreign": "no", "high_value": "no"}))
    # A null value observes nothing: foreign stays uncertain.
    out = await one(agent, {"amount": 10.0, "hour": 12, "country_mismatch": None})
    assert out["fraud"] == pytest.approx(reference(engine, {"night": "no", "high_value": "no"}))


async def test_default_query_is_the_networks_leaves_and_evidence_matches_field_names(engine):
    agent = await started({"network": "models/risk.bn"})
    out = await one(agent, {"night": True, "foreign": 0, "high_value": "YES", "other": 5})
    assert set(out) == {"night", "foreign", "high_value", "other", "fraud"}
    assert out["fraud"] == pytest.approx(reference(engine, {"night": "yes", "foreign": "no", "high_value": "yes"}))


async def test_map_method_equals_pgmpy_map_query(engine):
    agent = await started({"network": "models/risk.bn", "method": "map", "query": ["fraud", "night"]})
    for evidence in ({}, {"foreign": "yes", "high_value": "yes"}, {"foreign": "yes", "high_value": "no"}):
        out = await one(agent, dict(evidence))
        expected = engine.map_query(["fraud", "night"], evidence=evidence, show_progress=False)
        assert {k: out[k] for k in ("fraud", "night")} == {str(k): str(v) for k, v in expected.items()}


async def test_an_observed_query_variable_is_certain_and_output_key_nests():
    agent = await started({"network": "models/risk.bn", "query": ["fraud", "night"], "output_key": "bn",
                           "evidence": {"night": "night"}})
    out = await one(agent, {"night": "yes", "id": 1})
    assert out["id"] == 1 and out["night"] == "yes"
    assert out["bn"]["night"] == {"no": 0.0, "yes": 1.0}
    assert set(out["bn"]["fraud"]) == {"no", "yes"}


async def test_values_that_name_no_state_reject_the_event():
    agent = await started({"network": "models/risk.bn", "evidence": {"night": "night"}})
    for value in ("maybe", 2, 0.5, [1]):
        with pytest.raises(EventRejected, match=r"variable 'night' matches none of its states \(no, yes\)"):
            await one(agent, {"night": value})
    with pytest.raises(EventRejected, match="expected a JSON object"):
        await one(agent, "text")


def test_evidence_state_rules():
    assert evidence_state("v", ["no", "yes"], True, "w") == "yes"
    assert evidence_state("v", ["No", "Yes"], False, "w") == "No"
    assert evidence_state("v", ["true", "false"], True, "w") == "true"
    assert evidence_state("v", ["no", "yes"], 1, "w") == "yes"
    assert evidence_state("v", ["0", "1", "2"], 2, "w") == "2"
    assert evidence_state("v", ["low", "mid", "high"], "MID", "w") == "mid"
    assert evidence_state("v", ["low", "high"], None, "w") is None
    assert positive_state(["no", "yes"]) == "yes" and positive_state(["low", "high"]) is None
    with pytest.raises(EventRejected):
        evidence_state("v", ["low", "high"], True, "w")


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"network": "models/risk.bn", "query": "fruad"}, "query variable 'fruad' is not a variable"),
        ({"network": "models/risk.bn", "evidence": {"nite": "hour < 6"}}, "evidence variable 'nite'"),
        ({"network": "models/risk.bn", "method": "mpe"}, "unknown method 'mpe'"),
        ({"network": "models/risk.bn", "evidence": {"night": "hour <"}}, "evidence 'night': invalid expression"),
        ({"network": "models/absent.bn"}, "not found"),
        ({"network": "policy.dmx"}, "unknown network format"),
        ({}, "needs a network file"),
    ],
)
async def test_bad_settings_fail_at_start(settings, needle):
    with pytest.raises(KumeoRuntimeError) as info:
        await started(settings)
    assert needle in str(info.value) and "BayesianNetwork 'risk'" in str(info.value)


async def test_xmlbif_files_give_the_same_posteriors(tmp_path, engine):
    from pgmpy.readwrite import XMLBIFWriter

    XMLBIFWriter(engine.model).write(str(tmp_path / "risk.xml"))
    agent = await started({"network": "risk.xml"}, tmp_path)
    out = await one(agent, {"night": "yes", "foreign": "yes"})
    assert out["fraud"] == pytest.approx(reference(engine, {"night": "yes", "foreign": "yes"}), abs=1e-12)


def test_a_network_is_parsed_once_per_file_version(tmp_path):
    path = tmp_path / "risk.bn"
    shutil.copy(RISK, path)
    clear_network_cache()
    first = load_network(path, "test")
    assert load_network(tmp_path / "." / "risk.bn", "test") is first
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_network(path, "test") is not first


# -- the context -----------------------------------------------------------------------------------------------------

CONTEXT_WORKFLOW = """
workflow Ctx {
  source: NATS("tx.in")
  context: BayesianNetwork("models/risk.bn", id: "risk",
                           options: { evidence: { night: "night", foreign: "country_mismatch",
                                                  high_value: "is_high_value" } })
  agents: [
    DecisionMatrix(id: "policy", input: source, context: "risk",
                   rules: [ { condition: "risk.fraud >= 0.1", then: { decision: "review" } },
                            { then: { decision: "allow" } } ])
  ]
}
"""


def compiled_policy(text: str = CONTEXT_WORKFLOW) -> tuple[Any, Any]:
    result = parse(text, str(EXAMPLE / "ctx.kumeo"))
    assert result.ok, result.diagnostics
    workflow = compile_program(result.program, base_dir=EXAMPLE).workflows[0]
    return workflow, workflow.agent("policy")


async def test_a_context_adds_p_yes_of_its_query_variables_under_its_id(engine):
    workflow, policy = compiled_policy()
    contexts = await load_contexts(policy, EXAMPLE)
    event = {"tx_id": "t1", "night": True, "country_mismatch": 1, "is_high_value": False}
    enriched = contexts.enrich(event)
    expected = reference(engine, {"night": "yes", "foreign": "yes", "high_value": "no"})["yes"]
    assert enriched == {**event, "risk": {"fraud": pytest.approx(expected, abs=1e-12)}}
    assert "risk" not in event  # the worker's event is a new object

    agent = create_agent(policy, workflow, EXAMPLE)
    await agent.start()
    assert (await one(agent, enriched))["decision"] == "review"  # P(fraud) = 0.12
    calm = contexts.enrich({"tx_id": "t2", "night": False, "country_mismatch": 0, "is_high_value": False})
    assert (await one(agent, calm))["decision"] == "allow"


async def test_a_context_with_a_many_state_query_gives_the_distribution(tmp_path):
    (tmp_path / "weather.bn").write_text("""
network w { }
variable sky { type discrete [ 3 ] { clear, cloudy, storm }; }
variable late { type discrete [ 2 ] { no, yes }; }
probability ( sky ) { table 0.6, 0.3, 0.1; }
probability ( late | sky ) { (clear) 0.9, 0.1; (cloudy) 0.7, 0.3; (storm) 0.2, 0.8; }
""")
    settings = {"context": [{"kind": "BayesianNetwork", "id": "weather", "path": "weather.bn",
                             "options": {"query": "sky"}},
                            {"kind": "KnowledgeBase", "id": "kb", "path": "docs"}]}
    contexts = await load_contexts(plan(settings, kind="Router"), tmp_path)
    out = contexts.enrich({"late": "yes"})["weather"]
    assert set(out) == {"sky"} and set(out["sky"]) == {"clear", "cloudy", "storm"}
    assert out["sky"]["storm"] == pytest.approx(0.08 / (0.06 + 0.09 + 0.08))
    with pytest.raises(EventRejected, match="variable 'late'"):
        contexts.enrich({"late": "perhaps"})
    assert contexts.enrich("plain text") == "plain text"
