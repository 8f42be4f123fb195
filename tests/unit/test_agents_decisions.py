"""The deciding agent kinds as plain functions: Router, DecisionMatrix, RuleEngine; and the kind registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import make, one, started

from kumeo_iac.compile import RoutePlan, WorkflowPlan
from kumeo_iac.errors import KumeoRuntimeError, KumeoSyntaxError
from kumeo_iac.runtime._agent import Event, EventRejected, RuntimeAgent
from kumeo_iac.runtime.agents import _common, agent_class, create_agent

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# -- Router ----------------------------------------------------------------------------------------------------------

ROUTES = [
    RoutePlan("decision == 'block'", "payments.alerts.block", "target:payments.alerts.block"),
    RoutePlan("decision == 'review' || risk_score >= config.thresholds.review", "payments.alerts.review",
              "target:payments.alerts.review"),
    RoutePlan(None, "payments.cleared", "target:payments.cleared"),
]


async def route(agent: RuntimeAgent, data: Any) -> str | None:
    emits = await agent.process(Event(id="e1", data=data))
    assert len(emits) == 1 and emits[0].data is data  # unchanged, not even copied
    return emits[0].subject


async def test_router_first_match_default_and_config() -> None:
    agent = await started("Router", {"workflow_config": {"thresholds": {"review": 0.5}}}, routes=ROUTES)
    assert await route(agent, {"decision": "block", "risk_score": 0.9}) == "payments.alerts.block"
    assert await route(agent, {"decision": "review"}) == "payments.alerts.review"
    assert await route(agent, {"decision": "allow", "risk_score": 0.6}) == "payments.alerts.review"
    assert await route(agent, {"decision": "allow", "risk_score": 0.1}) == "payments.cleared"
    assert await route(agent, {}) == "payments.cleared"


async def test_router_default_written_first_is_still_last() -> None:
    routes = [RoutePlan(None, "d", "target:d"), RoutePlan("x > 1", "big", "target:big")]
    agent = await started("Router", {}, routes=routes)
    assert await route(agent, {"x": 2}) == "big"
    assert await route(agent, {"x": 0}) == "d"


async def test_router_no_match_no_default_rejects() -> None:
    agent = await started("Router", {}, routes=ROUTES[:1])
    with pytest.raises(EventRejected, match=r"^Router 'a': no route matched and no default$"):
        await route(agent, {"decision": "allow"})


async def test_router_optional_access_and_input_root() -> None:
    routes = [
        RoutePlan("review?.decision == 'rejected'", "claims.rejected", "target:claims.rejected"),
        RoutePlan("input.amount > 10000 && review?.decision != 'approved'", "claims.manual", "target:claims.manual"),
        RoutePlan(None, "claims.approved", "target:claims.approved"),
    ]
    agent = await started("Router", {}, routes=routes)
    assert await route(agent, {"amount": 50, "review": {"decision": "rejected"}}) == "claims.rejected"
    assert await route(agent, {"amount": 50000}) == "claims.manual"
    assert await route(agent, {"amount": 50000, "review": {"decision": "approved"}}) == "claims.approved"


async def test_router_routes_non_object_payloads_through_input() -> None:
    agent = await started("Router", {}, routes=[RoutePlan("len(input) > 1", "many", "x"), RoutePlan(None, "few", "y")])
    assert await route(agent, [1, 2]) == "many"
    assert await route(agent, [1]) == "few"


async def test_router_evaluation_error_rejects_naming_the_route() -> None:
    agent = await started("Router", {}, routes=[RoutePlan("amount > 10", "big", "x")])
    with pytest.raises(EventRejected, match=r"route `amount > 10`: cannot compare 'ten' > 10"):
        await route(agent, {"amount": "ten"})


async def test_router_bad_condition_fails_at_start() -> None:
    with pytest.raises(KumeoRuntimeError, match=r"Router 'a': route to target:x: invalid expression `amount = 1`"):
        await started("Router", {}, routes=[RoutePlan("amount = 1", "s", "target:x")])


async def test_router_prefers_workflow_config_key() -> None:
    routes = [RoutePlan("x > config.limit", "big", "t"), RoutePlan(None, "small", "t")]
    agent = await started("Router", {"config": {"limit": 100}, "workflow_config": {"limit": 1}}, routes=routes)
    assert await route(agent, {"x": 5}) == "big"


# -- DecisionMatrix: inline rules ------------------------------------------------------------------------------------

DECIDE_RULES = [
    {"name": "block", "condition": "score >= 0.8", "then": {"decision": "block", "risk": "high"}},
    {"name": "review", "condition": "score >= 0.5", "output": {"decision": "review"}},
    {"name": "big", "condition": "amount > config.high_value", "then": {"large": True}},
    {"name": "fallback", "then": {"decision": "allow"}},
]


async def test_matrix_inline_first() -> None:
    agent = await started("DecisionMatrix", {"rules": DECIDE_RULES, "workflow_config": {"high_value": 1000}})
    assert await one(agent, {"score": 0.9, "amount": 1}) == {
        "score": 0.9, "amount": 1, "decision": "block", "risk": "high",
    }
    assert await one(agent, {"score": 0.6}) == {"score": 0.6, "decision": "review"}
    assert await one(agent, {"score": 0.1, "amount": 5000}) == {"score": 0.1, "amount": 5000, "large": True}
    assert await one(agent, {"score": 0.1}) == {"score": 0.1, "decision": "allow"}


async def test_matrix_inline_first_without_match_passes_unchanged() -> None:
    agent = await started("DecisionMatrix", {"rules": DECIDE_RULES[:2]})
    assert await one(agent, {"score": 0.1}) == {"score": 0.1}


async def test_matrix_inline_collect() -> None:
    settings = {"rules": DECIDE_RULES, "hit_policy": "collect", "workflow_config": {"high_value": 10}}
    agent = await started("DecisionMatrix", settings)
    assert await one(agent, {"score": 0.9, "amount": 50}) == {
        "score": 0.9, "amount": 50,
        "decisions": [
            {"decision": "block", "risk": "high"}, {"decision": "review"}, {"large": True}, {"decision": "allow"},
        ],
    }
    agent = await started("DecisionMatrix", {"rules": DECIDE_RULES[:2], "hit_policy": "collect", "output_key": "hits"})
    assert await one(agent, {"score": 0}) == {"score": 0, "hits": []}


async def test_matrix_inline_unique() -> None:
    rules = [
        {"name": "low", "condition": "score < 0.5", "then": {"band": "low"}},
        {"name": "high", "condition": "score >= 0.5", "then": {"band": "high"}},
        {"name": "huge", "condition": "score > 0.9", "then": {"band": "huge"}},
    ]
    agent = await started("DecisionMatrix", {"rules": rules, "hit_policy": "unique"})
    assert await one(agent, {"score": 0.2}) == {"score": 0.2, "band": "low"}
    with pytest.raises(EventRejected, match=r"exactly one matching rule; rules rule 'high', rule 'huge' match"):
        await one(agent, {"score": 0.95})
    with pytest.raises(EventRejected, match="exactly one matching rule; no rule matches"):
        await one(agent, {})


async def test_matrix_evaluation_error_rejects_naming_the_rule() -> None:
    agent = await started("DecisionMatrix", {"rules": [{"name": "r", "condition": "score > 1", "then": {"a": 1}}]})
    with pytest.raises(EventRejected, match="rule 'r': cannot compare"):
        await one(agent, {"score": "high"})


VALIDATION_RULES = [
    {"name": "valid_urgency", "condition": "input.urgency in ['low', 'medium', 'high', 'critical']",
     "error": "Invalid urgency level"},
    {"name": "required_fields",
     "condition": "all(field in input for field in ['patient_id', 'findings'])", "error": "Missing required fields"},
]


async def test_matrix_validate_reject() -> None:
    agent = await started("DecisionMatrix", {"rules": VALIDATION_RULES, "on_failure": {"action": "reject"}})
    good = {"urgency": "low", "patient_id": 1, "findings": []}
    assert await one(agent, good) == good
    with pytest.raises(EventRejected, match=(
        r"^DecisionMatrix 'a': validation failed: valid_urgency: Invalid urgency level; "
        r"required_fields: Missing required fields$"
    )):
        await one(agent, {"urgency": "meh"})


@pytest.mark.parametrize("action", ["annotate", "quarantine"])
async def test_matrix_validate_annotate_and_quarantine(action: str) -> None:
    agent = await started("DecisionMatrix", {"rules": VALIDATION_RULES, "on_failure": {"action": action, "retry": 2}})
    assert await one(agent, {"urgency": "meh", "patient_id": 1, "findings": []}) == {
        "urgency": "meh", "patient_id": 1, "findings": [],
        "_violations": [{"rule": "valid_urgency", "error": "Invalid urgency level"}],
    }


async def test_matrix_validate_default_is_reject_and_explicit_mode() -> None:
    rules = [{"name": "positive", "condition": "amount > 0"}]
    agent = await started("DecisionMatrix", {"rules": rules, "mode": "validate"})
    with pytest.raises(EventRejected, match="positive: condition `amount > 0` is false"):
        await one(agent, {"amount": 0})
    agent = await started("DecisionMatrix", {"rules": rules, "mode": "validate", "on_failure": "annotate"})
    assert (await one(agent, {"amount": "x"}))["_violations"][0]["error"].startswith("cannot evaluate the condition (")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "needs a 'matrix' file or inline 'rules'"),
        ({"rules": DECIDE_RULES, "hit_policy": "any"}, "unknown hit_policy 'any'"),
        ({"rules": VALIDATION_RULES, "on_failure": {"action": "explode"}}, "unknown on_failure action 'explode'"),
        ({"rules": [{"name": "x", "condition": "a >"}]}, "rule 'x': invalid expression `a >`"),
        ({"rules": [], }, "'rules' must be a non-empty list"),
        ({"rules": DECIDE_RULES, "matrix": "p.dmx"}, "either 'matrix' or 'rules'"),
        ({"rules": DECIDE_RULES, "mode": "guess"}, "unknown mode 'guess'"),
    ],
)
async def test_matrix_bad_settings_fail_at_start(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(KumeoRuntimeError, match=message):
        await started("DecisionMatrix", settings)


# -- DecisionMatrix: the .dmx example --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "decision", "level"),
    [
        ({"anomaly_score": 0.85, "amount": 10, "risk": {"fraud": 0.005}}, "block", "high"),
        ({"anomaly_score": 0.65, "amount": 20, "risk": {"fraud": 0.12}}, "block", "high"),
        ({"anomaly_score": 0.65, "amount": 2000, "risk": {"fraud": 0.005}}, "block", "high"),
        ({"anomaly_score": 0.65, "amount": 20, "risk": {"fraud": 0.005}}, "review", "medium"),
        ({"anomaly_score": 0.1, "amount": 5000, "risk": {"fraud": 0.2}}, "review", "medium"),
        ({"anomaly_score": 0.1, "amount": 5000, "risk": {"fraud": 0.005}}, "allow", "low"),
    ],
)
async def test_matrix_fraud_policy_dmx(event: dict[str, Any], decision: str, level: str) -> None:
    base = EXAMPLES / "fraud_detection"
    for matrix in ("policy.dmx", {"file": "policy.dmx"}):
        agent = await started("DecisionMatrix", {"matrix": matrix, "context": {"id": "risk"}}, base_dir=base)
        assert await one(agent, event) == {**event, "decision": decision, "risk_level": level}


async def test_matrix_dmx_collect_and_unique_override(tmp_path: Path) -> None:
    (tmp_path / "bands.dmx").write_text(
        "hit_policy: unique\n"
        "| score      || band   |\n"
        "|------------||--------|\n"
        "| < 0.5      || \"low\"  |\n"
        "| [0.5..0.9] || \"mid\"  |\n"
        "| > 0.8      || \"high\" |\n"
    )
    agent = await started("DecisionMatrix", {"matrix": "bands.dmx"}, base_dir=tmp_path)
    assert await one(agent, {"score": 0.1}) == {"score": 0.1, "band": "low"}
    with pytest.raises(EventRejected, match=r"rules rule 2 \(line 5\), rule 3 \(line 6\) match"):
        await one(agent, {"score": 0.85})
    agent = await started("DecisionMatrix", {"matrix": "bands.dmx", "hit_policy": "collect"}, base_dir=tmp_path)
    assert await one(agent, {"score": 0.85}) == {"score": 0.85, "decisions": [{"band": "mid"}, {"band": "high"}]}


async def test_matrix_dmx_errors_surface_at_start(tmp_path: Path) -> None:
    (tmp_path / "bad.dmx").write_text("| a || b |\n|---||---|\n| >= || 1 |\n")
    with pytest.raises(KumeoSyntaxError) as info:
        await started("DecisionMatrix", {"matrix": "bad.dmx"}, base_dir=tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'bad.dmx'}:3:5: error: expected a value for '>='")
    with pytest.raises(KumeoSyntaxError, match="decision table file not found"):
        await started("DecisionMatrix", {"matrix": "missing.dmx"}, base_dir=tmp_path)


# -- RuleEngine ------------------------------------------------------------------------------------------------------

COVERAGE_RULES = [
    {"name": "lapsed", "when": "policy.status != 'active'", "set": {"verdict": "lapsed"}},
    {"name": "over_limit", "when": "claim.amount > policy.limit", "set": {"verdict": "exceeds_limit"}},
    {"name": "covered", "when": "true", "set": {"verdict": "covered"}},
]


async def test_rules_all_applies_every_match_in_order() -> None:
    agent = await started("RuleEngine", {"rules": COVERAGE_RULES})
    event = {"claim": {"amount": 10}, "policy": {"status": "lapsed", "limit": 5}}
    assert await one(agent, event) == {
        **event, "verdict": "covered", "_matched_rules": ["lapsed", "over_limit", "covered"],
    }


async def test_rules_first_hit_policy() -> None:
    agent = await started("RuleEngine", {"rules": COVERAGE_RULES, "hit_policy": "first"})
    event = {"claim": {"amount": 10}, "policy": {"status": "active", "limit": 5}}
    assert await one(agent, event) == {**event, "verdict": "exceeds_limit", "_matched_rules": ["over_limit"]}
    event = {"claim": {"amount": 1}, "policy": {"status": "active", "limit": 5}}
    assert await one(agent, event) == {**event, "verdict": "covered", "_matched_rules": ["covered"]}


async def test_rules_all_with_general_rules_first_as_documented() -> None:
    rules = [COVERAGE_RULES[2], COVERAGE_RULES[1], COVERAGE_RULES[0]]
    agent = await started("RuleEngine", {"rules": rules})
    lapsed = {"claim": {"amount": 10}, "policy": {"status": "lapsed", "limit": 5}}
    assert (await one(agent, lapsed))["verdict"] == "lapsed"
    over = {"claim": {"amount": 10}, "policy": {"status": "active", "limit": 5}}
    assert (await one(agent, over))["verdict"] == "exceeds_limit"
    fine = {"claim": {"amount": 1}, "policy": {"status": "active", "limit": 5}}
    assert (await one(agent, fine))["verdict"] == "covered"


def test_expression_scope_is_exported_for_the_worker() -> None:
    from kumeo_iac.runtime.agents import expression_scope

    assert expression_scope({"a": 1, "config": "shadowed"}, {"k": 2}) == {
        "a": 1, "config": {"k": 2}, "input": {"a": 1, "config": "shadowed"},
    }
    assert expression_scope([1], {}) == {"input": [1], "config": {}}


async def test_rules_expressions_in_set_and_chaining() -> None:
    rules = [
        {"when": "amount > 100", "set": {"fee": "=amount * 0.1", "note": "==literal", "tier": "gold"}},
        {"condition": "fee > 50", "set": {"review": True, "limit": "=config.limit"}},
        {"name": "never", "when": "false", "set": {"x": 1}},
    ]
    agent = await started("RuleEngine", {"rules": rules, "workflow_config": {"limit": 7}})
    assert await one(agent, {"amount": 1000}) == {
        "amount": 1000, "fee": 100.0, "note": "=literal", "tier": "gold", "review": True, "limit": 7,
        "_matched_rules": ["rule 1", "rule 2"],
    }
    assert await one(agent, {"amount": 1}) == {"amount": 1, "_matched_rules": []}


async def test_rules_json_file(tmp_path: Path) -> None:
    (tmp_path / "rules.json").write_text(json.dumps({"hit_policy": "first", "rules": COVERAGE_RULES}))
    (tmp_path / "list.json").write_text(json.dumps(COVERAGE_RULES))
    event = {"claim": {"amount": 10}, "policy": {"status": "lapsed", "limit": 50}}
    agent = await started("RuleEngine", {"rules": {"file": "rules.json"}}, base_dir=tmp_path)
    assert (await one(agent, event))["_matched_rules"] == ["lapsed"]
    agent = await started("RuleEngine", {"rules": "list.json"}, base_dir=tmp_path)
    assert (await one(agent, event))["_matched_rules"] == ["lapsed", "covered"]


async def test_rules_file_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"rules": [\n  {"when": "true" "set": {}}\n]}')
    with pytest.raises(KumeoSyntaxError) as info:
        await started("RuleEngine", {"rules": "bad.json"}, base_dir=tmp_path)
    assert info.value.span is not None and (info.value.span.line, info.value.span.column) == (2, 19)
    (tmp_path / "noset.json").write_text(json.dumps({"rules": [{"name": "x", "when": "true"}]}))
    with pytest.raises(KumeoRuntimeError, match=r"noset.json rule 1 \('x'\): needs 'set'"):
        await started("RuleEngine", {"rules": "noset.json"}, base_dir=tmp_path)
    with pytest.raises(KumeoRuntimeError, match=r"missing.json: file not found"):
        await started("RuleEngine", {"rules": "missing.json"}, base_dir=tmp_path)


async def test_rules_bad_settings() -> None:
    with pytest.raises(KumeoRuntimeError, match="unknown hit_policy 'some'"):
        await started("RuleEngine", {"rules": COVERAGE_RULES, "hit_policy": "some"})
    with pytest.raises(KumeoRuntimeError, match=r"set 'fee': invalid expression `amount \*`"):
        await started("RuleEngine", {"rules": [{"when": "true", "set": {"fee": "=amount *"}}]})


async def test_rules_evaluation_error_rejects() -> None:
    agent = await started("RuleEngine", {"rules": [{"name": "r", "when": "a / b > 1", "set": {"x": 1}}]})
    with pytest.raises(EventRejected, match="rule 'r': division by zero"):
        await one(agent, {"a": 1, "b": 0})


# -- expressions are compiled once, at start -------------------------------------------------------------------------


async def test_expressions_compiled_once_per_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = _common.compile_expression

    def counting(text: str) -> Any:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(_common, "compile_expression", counting)
    agents = [
        await started("Router", {}, routes=ROUTES),
        await started("DecisionMatrix", {"rules": DECIDE_RULES}),
        await started("RuleEngine", {"rules": COVERAGE_RULES}),
        await started("DataProcessor", {"config": {"features": ["x: amount > 1"]}}),
    ]
    compiled = len(calls)
    assert compiled == 2 + 3 + 3 + 1
    event = {"amount": 2, "decision": "x", "score": 0.1, "claim": {"amount": 1}, "policy": {"status": "active"}}
    for _ in range(5):
        for agent in agents:
            await agent.process(Event(id="e", data=event))
    assert len(calls) == compiled


async def test_dmx_cells_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from kumeo_iac.runtime import dmx

    agent = await started("DecisionMatrix", {"matrix": "policy.dmx"}, base_dir=EXAMPLES / "fraud_detection")
    calls: list[str] = []
    monkeypatch.setattr(dmx, "compile_expression", lambda text: calls.append(text))
    monkeypatch.setattr(_common, "compile_expression", lambda text: calls.append(text))
    for score in (0.1, 0.55, 0.9):
        await one(agent, {"anomaly_score": score, "amount": 1, "country_mismatch": False})
    assert calls == []


# -- registry --------------------------------------------------------------------------------------------------------


def test_every_spec_kind_declares_an_importable_runtime_handler() -> None:
    from kumeo_iac.spec import AGENT_KINDS

    for name, kind in AGENT_KINDS.items():
        if kind.runtime_extra is None:  # the extras' kinds are covered below when their packages are installed
            assert issubclass(agent_class(name), RuntimeAgent), name


@pytest.mark.parametrize("kind", ["DataProcessor", "DataNormalizer", "MissingValueHandler", "Router",
                                  "DecisionMatrix", "RuleEngine", "MLModel", "BayesianNetwork",
                                  "HumanReview", "HumanInLoop", "Custom", "LLM"])
def test_registry_resolves_implemented_kinds(kind: str) -> None:
    cls = agent_class(kind)
    assert issubclass(cls, RuntimeAgent) and cls.__module__.startswith("kumeo_iac.runtime.agents.")


async def test_unknown_kind_fails_at_start() -> None:
    agent = make("Telepathy", {})
    with pytest.raises(KumeoRuntimeError, match="unknown agent kind 'Telepathy'"):
        await agent.start()


def test_registry_is_lazy() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from kumeo_iac.runtime.agents import agent_class; agent_class('Router'); "
        "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('kumeo_iac.runtime.agents.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['_common', '_registry', 'router']"


# -- the examples, compiled: the settings layout compile produces is the one the agents read -------------------------


def _compiled(name: str) -> WorkflowPlan:
    from kumeo_iac.compile import compile_program
    from kumeo_iac.lang import parse_file

    path = EXAMPLES / name.split("/")[0] / f"{name.split('/')[1]}.kumeo"
    return compile_program(parse_file(path).program, base_dir=path.parent).workflows[0]


async def _run_plan_agent(workflow: WorkflowPlan, agent_id: str, data: Any, base_dir: Path) -> list[Any]:
    agent = create_agent(workflow.agent(agent_id), workflow, base_dir)
    await agent.start()
    return [(e.subject, e.data) for e in await agent.process(Event(id="e", data=data))]


async def test_fraud_example_policy_and_dispatch_from_the_plan() -> None:
    workflow = _compiled("fraud_detection/fraud_detection")
    base = EXAMPLES / "fraud_detection"
    event = {"tx_id": "t1", "amount": 20, "anomaly_score": 0.55, "country_mismatch": True}
    [(subject, decided)] = await _run_plan_agent(workflow, "policy", event, base)
    assert subject is None and decided == {**event, "decision": "review", "risk_level": "medium"}
    assert await _run_plan_agent(workflow, "dispatch", decided, base) == [("payments.alerts.review", decided)]
    cleared = {**event, "decision": "allow"}
    assert await _run_plan_agent(workflow, "dispatch", cleared, base) == [("payments.cleared", cleared)]


async def test_claims_example_agents_from_the_plan() -> None:
    workflow = _compiled("claims_triage/claims_triage")
    base = EXAMPLES / "claims_triage"
    [(_, filled)] = await _run_plan_agent(workflow, "defaults", {"claim_id": "c", "amount": 25000}, base)
    assert filled == {"claim_id": "c", "amount": 25000, "currency": "EUR"}
    [(_, scaled)] = await _run_plan_agent(workflow, "scale", filled, base)
    assert scaled == {**filled, "amount_normalized": 0.5}
    routed = await _run_plan_agent(workflow, "decide", {"amount": 25000, "review": {"decision": "approved"}}, base)
    assert routed[0][0] == "claims.approved"


async def test_fraud_example_normalize_sees_the_workflow_config() -> None:
    workflow = _compiled("fraud_detection/fraud_detection")
    event = {"tx_id": "t1", "amount": 1500, "merchant_category": 3, "hour": 2, "country_mismatch": False}
    [(_, out)] = await _run_plan_agent(workflow, "normalize", event, EXAMPLES / "fraud_detection")
    assert out == {**event, "is_high_value": True, "night": True}
