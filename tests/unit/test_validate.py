"""validate() on programs built with the Python DSL: every check, its message and where it points."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumeo_iac.errors import KumeoValidationError, Severity, SourceSpan
from kumeo_iac.spec import (
    LLM,
    NATS,
    BayesianNetworkAgent,
    BayesianNetworkContext,
    Custom,
    DataProcessor,
    DecisionMatrix,
    HumanReview,
    IntegrationSpec,
    KnowledgeBase,
    LocatedStr,
    MLModel,
    Program,
    Router,
    RuleEngine,
    SubworkflowSpec,
    WorkflowSpec,
)
from kumeo_iac.validate import check_program, validate

F = "wf.kumeo"


def at(line: int, col: int) -> SourceSpan:
    return SourceSpan(F, line, col)


def located(text: str, line: int, col: int) -> LocatedStr:
    """A string written at line:col (the opening quote); its content starts one column later."""
    return LocatedStr(text, at(line, col), at(line, col + 1))


def program(*agents, **blocks) -> Program:
    blocks.setdefault("source", NATS("in"))
    blocks.setdefault("target", [NATS("out")])
    return Program(workflows=[WorkflowSpec(name="W", agents=list(agents), **blocks)])


def messages(diags, severity=None) -> list[str]:
    return [d.message for d in diags if severity is None or d.severity is severity]


def only(diags, code: str):
    found = [d for d in diags if d.code == code]
    assert len(found) == 1, [d.format() for d in diags]
    return found[0]


def test_a_valid_program_has_no_diagnostics():
    a = DataProcessor(id="clean", input="source", output_channel="clean.tx")
    b = LLM("ollama/llama3", id="explain", input="clean.tx", prompt="why {{amount}}", when="amount > 10")
    assert validate(program(a, b)) == []


def test_diagnostics_are_sorted_by_position():
    a = LLM(id="a", prompt="x", span=at(9, 3))
    b = LLM(id="b", prompt="x", span=at(4, 3))
    diags = validate(program(a, b))
    assert [d.span.line for d in diags] == sorted(d.span.line for d in diags)


# -- arguments ----------------------------------------------------------------------------------------------------


def test_unknown_argument_at_its_span_with_did_you_mean():
    agent = LLM("ollama/llama3", id="x", prompt="p", span=at(3, 5),
                extra_args={"temprature": 0.2}, arg_spans={"extra:temprature": at(4, 7)})
    d = only(validate(program(agent)), "unknown-argument")
    assert d.span == at(4, 7)
    assert d.message == "LLM 'x' has no argument 'temprature'; did you mean 'temperature'?"


def test_unknown_argument_without_close_match_lists_the_arguments():
    agent = MLModel("m.onnx", id="m", extra_args={"zzz": 1})
    d = only(validate(program(agent)), "unknown-argument")
    assert "MLModel takes: id, input, output, model" in d.message


def test_missing_required_argument_at_the_call():
    agent = MLModel(id="scorer", span=at(7, 5))
    d = only(validate(program(agent)), "missing-argument")
    assert d.span == at(7, 5)
    assert d.message == "MLModel 'scorer' needs a model: add `model: …`"


def test_missing_one_of_group():
    d = only(validate(program(LLM(id="x", prompt="p"))), "missing-argument")
    assert d.message.startswith("LLM 'x' needs an engine or a provider")


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (Router(id="r"), "Router 'r' needs rules"),
        (DecisionMatrix(id="d"), "DecisionMatrix 'd' needs a matrix or rules"),
        (Custom(id="c"), "Custom 'c' needs an entrypoint or a wasm"),
    ],
)
def test_required_arguments_per_kind(agent, expected):
    assert any(m.startswith(expected) for m in messages(validate(program(agent))))


def test_sources_and_contexts_are_checked_too():
    p = program(source=NATS(extra_args={"strem": "S"}), context=[KnowledgeBase(id="kb")])
    msgs = messages(validate(p))
    assert "source NATS('') has no argument 'strem'; did you mean 'stream'?" in msgs
    assert any(m.startswith("source NATS('') needs a subject") for m in msgs)
    assert any(m.startswith("context KnowledgeBase 'kb' needs a path") for m in msgs)


# -- duplicates and blocks ----------------------------------------------------------------------------------------


def test_duplicate_agent_id_at_the_second_mentioning_the_first():
    a = DataProcessor(id="x", span=at(3, 5))
    b = DataProcessor(id="x", input="x.output", span=at(8, 5), arg_spans={"id": at(8, 23)})
    d = only(validate(program(a, b)), "duplicate-id")
    assert d.span == at(8, 23)
    assert "agent id 'x' is already used by the DataProcessor agent on line 3 of 'W'" in d.message


def test_duplicate_workflow_and_context_ids():
    wf1 = WorkflowSpec(name="W", span=at(1, 1))
    wf2 = WorkflowSpec(name="W", span=at(5, 1), context=[KnowledgeBase("a.json", id="kb", span=at(6, 12)),
                                                         KnowledgeBase("b.json", id="kb", span=at(7, 12))])
    diags = validate(Program(workflows=[wf1, wf2]))
    assert only(diags, "duplicate-workflow").span == at(5, 1)
    assert "on line 1" in only(diags, "duplicate-workflow").message
    assert only(diags, "duplicate-id").message.startswith("context id 'kb' is already used by the context on line 6")


def test_unknown_workflow_block_with_did_you_mean():
    wf = WorkflowSpec(name="W", extra_blocks={"modles": {}}, arg_spans={"extra:modles": at(2, 3)})
    d = only(validate(Program(workflows=[wf])), "unknown-block")
    assert d.span == at(2, 3)
    assert d.message == "workflow 'W' has no block 'modles'; did you mean 'models'?"


# -- references ---------------------------------------------------------------------------------------------------


def test_unresolved_input_with_did_you_mean():
    a = MLModel("m.onnx", id="fraud_detector", input="source", output_channel="anomaly.scores")
    b = MLModel("m.onnx", id="risk_assessor", input={"s": located("anomaly_scores.score", 12, 24)})
    d = only(validate(program(a, b)), "unresolved-reference")
    assert d.span == at(12, 24)
    assert d.message == ("input 'anomaly_scores.score' of agent 'risk_assessor' refers to nothing; "
                         "did you mean 'anomaly.scores'?")


def test_ambiguous_by_kind_reference():
    a = LLM("e/m", id="one", prompt="p")
    b = LLM("e/m", id="two", prompt="p", input="one.output")
    c = DataProcessor(id="c", input="LLM.output")
    d = only(validate(program(a, b, c)), "ambiguous-reference")
    assert d.message == ("input 'LLM.output' of agent 'c' is ambiguous: workflow 'W' has 2 LLM agents (one, two); "
                         "name one by id, e.g. 'one.output'")


def test_expression_input_names_the_missing_path():
    a = DataProcessor(id="a", output_channel="analysis.results")
    b = DataProcessor(id="b", input="reviewd.analysis ?? analysis.results")
    d = only(validate(program(a, b)), "unresolved-reference")
    assert "'reviewd.analysis' refers to nothing" in d.message


def test_unresolved_route_and_output():
    r = Router(id="r", rules={"x > 1": "target.alrts", "default": "target.out"})
    o = DataProcessor(id="o", output_channel="target.nowhere")
    msgs = messages(validate(program(r, o)))
    assert any(m.startswith("route 'target.alrts' of router 'r' leads nowhere") and "did you mean 'target.out'" in m
               for m in msgs)
    assert any(m.startswith("output 'target.nowhere' of agent 'o' names no target") for m in msgs)


def test_block_references():
    m = MLModel(located("models.fraud_detectr", 5, 13), id="m")
    s = DataProcessor(id="s", input="m.output", output_schema="schemas.out")
    diags = validate(program(m, s, models={"fraud_detector": {"file": "f.onnx"}}))
    err = only(diags, "unknown-entry")
    assert err.span == at(5, 13)
    assert err.message == ("model of MLModel 'm' refers to 'models.fraud_detectr', but the `models` block has no "
                           "entry 'fraud_detectr'; did you mean 'fraud_detector'?")
    warn = only(diags, "missing-block")
    assert warn.severity is Severity.WARNING
    assert "workflow 'W' has no `schemas` block" in warn.message
    strict = validate(program(m, s, models={"fraud_detector": {}}), strict_files=True)
    assert only(strict, "missing-block").severity is Severity.ERROR


def test_references_inside_config_and_base_images():
    from kumeo_iac.spec import Deployment, Resources

    a = DataProcessor(id="a", config={"schema": "schemas.transaction", "rules": "config.validation_rule"})
    dep = Deployment(base_images={"ml": "img"}, resources={"ml_models": Resources(image="base_images.mll")})
    msgs = messages(validate(program(a, config={"validation_rules": "v.json"}, deployment=dep)))
    assert any("'config.validation_rule'" in m and "did you mean 'validation_rules'" in m for m in msgs)
    assert any("image of resources 'ml_models'" in m and "did you mean 'ml'" in m for m in msgs)
    assert any("has no `schemas` block" in m for m in msgs)


def test_agent_context_names_a_context_or_data_entry():
    ok = LLM("e/m", id="ok", prompt="p", context=["guide", "data.medical", "SELECT * FROM t WHERE x > 1"])
    bad = LLM("e/m", id="bad", prompt="p", input="ok.output", context=located("guid", 9, 18))
    bad_data = LLM("e/m", id="bd", prompt="p", input="bad.output", context="data.medicl")
    diags = validate(program(ok, bad, bad_data, context=[KnowledgeBase("kb.json", id="guide")],
                             data={"medical": "m.json"}))
    errors = sorted((d for d in diags if d.is_error), key=lambda d: d.message)
    assert errors[0].span == at(9, 18)
    assert errors[0].message.startswith("context 'guid' of LLM 'bad' names no context; did you mean 'guide'?")
    assert "did you mean 'medical'?" in errors[1].message


# -- subworkflows and integrations --------------------------------------------------------------------------------


def _claims(**integration) -> Program:
    sub = SubworkflowSpec(name="Coverage", inputs=["claim", "policy"], outputs=["verdict"],
                          agents=[RuleEngine("r.json", id="cov", input={"c": "input.claim", "p": "input.policy"})])
    wf = WorkflowSpec(name="Claims", source=NATS("claims"), target=[NATS("claims.coverage")],
                      agents=[DataProcessor(id="defaults", input="source")])
    fields = {"workflow": "Claims", "use": "Coverage",
              "input_mapping": {"claim": "defaults.output", "policy": "defaults.output"},
              "output_mapping": {"verdict": "target.claims.coverage"}}
    fields.update(integration)
    return Program(workflows=[wf], subworkflows=[sub], integrations=[IntegrationSpec(**fields)])


def test_a_valid_integration():
    assert [d for d in validate(_claims()) if d.is_error] == []


def test_integration_names_unknown_workflow_and_subworkflow():
    msgs = messages(validate(_claims(workflow="Claim", use="Coverag")))
    assert "integration names workflow 'Claim', which this file does not declare; did you mean 'Claims'?" in msgs
    assert "integration uses subworkflow 'Coverag', which this file does not declare; did you mean 'Coverage'?" in msgs


def test_integration_mapping_keys_and_values():
    diags = validate(_claims(input_mapping={"claims": "defaults.output", "policy": "defalts.output"},
                             output_mapping={"verdikt": "target.claims.coverage"}))
    msgs = messages(diags)
    assert "subworkflow 'Coverage' declares no input 'claims'; did you mean 'claim'?" in msgs
    assert "subworkflow 'Coverage' declares no output 'verdikt'; did you mean 'verdict'?" in msgs
    assert any("refers to 'defalts.output'" in m and "did you mean 'defaults.output'" in m for m in msgs)
    assert any("input 'claim' of subworkflow 'Coverage' is not mapped" in m for m in messages(diags, Severity.WARNING))


def test_subworkflow_input_must_be_declared():
    sub = SubworkflowSpec(name="S", inputs=["claim"], agents=[DataProcessor(id="a", input="input.clam")])
    d = only(validate(Program(subworkflows=[sub])), "unresolved-reference")
    assert "did you mean 'input.claim'?" in d.message


# -- graph shape --------------------------------------------------------------------------------------------------


def test_cycle_reported_at_the_first_written_agent():
    a = DataProcessor(id="b_first", input="source", span=at(3, 5))
    b = DataProcessor(id="z", input="a.output", span=at(4, 5))
    c = DataProcessor(id="a", input="z.output", span=at(5, 5))
    d = only(validate(program(a, b, c)), "cycle")
    assert d.span == at(4, 5)
    assert d.message.startswith("agents form a cycle: z → a → z")


def test_unreachable_agent_is_a_warning_and_no_source_an_error():
    a = DataProcessor(id="a", input="source")
    orphan = DataProcessor(id="orphan", input={}, span=at(6, 5))
    diags = validate(program(a, orphan))
    d = only(diags, "unreachable")
    assert d.severity is Severity.WARNING and d.span == at(6, 5)
    wf = WorkflowSpec(name="W", agents=[DataProcessor(id="a")], span=at(1, 1))
    d = only(validate(Program(workflows=[wf])), "no-source")
    assert d.message.startswith("workflow 'W' has agents but no source") and d.span == at(1, 1)


def test_unreachable_is_not_repeated_below_an_error():
    a = DataProcessor(id="a", input="nothing")
    b = DataProcessor(id="b", input="a.output")
    diags = validate(program(a, b))
    assert [d.code for d in diags] == ["unresolved-reference"]


def test_long_chains_do_not_exhaust_the_stack():
    agents = [DataProcessor(id="a0", input="source")]
    agents += [DataProcessor(id=f"a{i}", input=f"a{i - 1}.output") for i in range(1, 1500)]
    agents[0] = DataProcessor(id="a0", input="a1499.output")
    diags = validate(program(*agents))
    assert [d.code for d in diags if d.is_error] == ["cycle"]


# -- expressions --------------------------------------------------------------------------------------------------


def test_expression_error_at_its_exact_column():
    # Typed fields such as `when` keep no LocatedStr (pydantic stores a str); the argument's span is the quote.
    agent = LLM("e/m", id="x", prompt="p", when="amount > ", arg_spans={"when": at(4, 13)})
    d = only(validate(program(agent)), "expression")
    assert d.message.startswith("`when` of LLM 'x' does not parse:")
    # The content starts at column 14; expr reports the error at column 9 of "amount > " → 14 + 8 = 22.
    assert (d.span.line, d.span.column) == (4, 22)


@pytest.mark.parametrize(
    "agent",
    [
        HumanReview(id="h", trigger="amount >>> 1"),
        Router(id="r", rules={"score >= (": "target.out", "default": "target.out"}),
        DecisionMatrix(id="d", rules=[{"name": "n", "condition": "a ==", "error": "e"}]),
        RuleEngine(id="re", rules=[{"when": "&&", "set": {"a": 1}}]),
        DataProcessor(id="dp", config={"features": ["amount", "big: amount >"]}),
        DataProcessor(id="dp2", input="source ?? ("),
    ],
)
def test_every_expression_site_is_parsed(agent):
    d = only(validate(program(agent)), "expression")
    assert "does not parse" in d.message


def test_computed_field_position_is_after_the_colon():
    item = LocatedStr("is_high: amount >", at(6, 9), at(6, 10))
    d = only(validate(program(DataProcessor(id="dp", config={"features": [item]}))), "expression")
    # "is_high: " is 9 characters; "amount >" ends at content offset 17 → column 10 + 17 = 27.
    assert (d.span.line, d.span.column) == (6, 27)
    assert "computed field 'is_high' of DataProcessor 'dp'" in d.message


def test_default_router_rule_is_not_an_expression():
    r = Router(id="r", rules={"default": "target.out"})
    assert validate(program(r)) == []


def test_config_paths_in_expressions():
    rule = located("risk_score >= config.risk_thresholds.hgh", 20, 9)
    r = Router(id="r", rules={rule: "target.out", "default": "target.out"})
    diags = validate(program(r, config={"risk_thresholds": {"high": 0.8}}))
    d = only(diags, "unknown-entry")
    assert d.message.endswith("'config.risk_thresholds' has no entry 'hgh'; did you mean 'high'?")
    # "config" starts at offset 14 of the content, which starts at column 10.
    assert (d.span.line, d.span.column) == (20, 24)
    ok = Router(id="r", rules={"risk_score >= config.risk_thresholds.high": "target.out"})
    assert validate(program(ok, config={"risk_thresholds": {"high": 0.8}})) == []


def test_config_path_without_config_block_is_a_warning():
    agent = LLM("e/m", id="x", prompt="p", when="amount > config.limit")
    d = only(validate(program(agent)), "missing-block")
    assert d.severity is Severity.WARNING


# -- files --------------------------------------------------------------------------------------------------------


def test_missing_files_are_warnings_or_strict_errors(tmp_path: Path):
    (tmp_path / "present.onnx").write_bytes(b"")
    agents = [
        MLModel("present.onnx", id="ok"),
        MLModel(located("absent.onnx", 3, 13), id="m", input="ok.output"),
        MLModel("models.reg", id="reg", input="m.output"),
        BayesianNetworkAgent("risk.bn", id="bn", input="reg.output"),
        DecisionMatrix("policy.dmx", id="dm", input="bn.output"),
        RuleEngine("rules.json", id="re", input="dm.output"),
        Custom(wasm="mod.wasm", id="cu", input="re.output"),
    ]
    p = program(*agents, models={"reg": {"file": "registered.onnx"}},
                context=[BayesianNetworkContext("ctx.bn", id="ctx")])
    diags = validate(p, base_dir=tmp_path)
    missing = [d for d in diags if d.code == "missing-file"]
    assert all(d.severity is Severity.WARNING for d in missing)
    texts = " ".join(d.message for d in missing)
    for name in ("absent.onnx", "registered.onnx", "risk.bn", "policy.dmx", "rules.json", "mod.wasm", "ctx.bn"):
        assert f"'{name}'" in texts
    assert "present.onnx" not in texts
    assert next(d for d in missing if "absent.onnx" in d.message).span == at(3, 13)
    strict = validate(p, base_dir=tmp_path, strict_files=True)
    assert all(d.is_error for d in strict if d.code == "missing-file")
    with pytest.raises(KumeoValidationError):
        check_program(p, base_dir=tmp_path, strict_files=True)
    assert check_program(p, base_dir=tmp_path) is p


def test_no_base_dir_means_no_file_checks():
    assert validate(program(MLModel("absent.onnx", id="m"))) == []


# -- timeout and retry --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["30s", "2m", "1h", "500ms", "24h", "1.5s", 30, 0.5, "10"])
def test_valid_timeouts(timeout):
    assert validate(program(DataProcessor(id="a", timeout=timeout))) == []


@pytest.mark.parametrize("timeout", ["3 weeks", "fast", "-1s", -3, "1x"])
def test_invalid_timeouts(timeout):
    d = only(validate(program(DataProcessor(id="a", timeout=timeout))), "bad-duration")
    assert "is not a duration" in d.message


@pytest.mark.parametrize("retry", [0, 3, {"attempts": 3, "backoff": "1s"}, {"attempts": 0}])
def test_valid_retries(retry):
    assert validate(program(DataProcessor(id="a", retry=retry))) == []


@pytest.mark.parametrize(
    ("retry", "needle"),
    [(-1, "whole number"), (True, "whole number"), ("3", "whole number"), ({"attempt": 3}, "did you mean 'attempts'"),
     ({"attempts": -2}, "must be 0 or more, not -2"), ({"backoff": "soon"}, "not a duration")],
)
def test_invalid_retries(retry, needle):
    diags = validate(program(DataProcessor(id="a", retry=retry)))
    assert any(needle in m for m in messages(diags)), [d.format() for d in diags]
