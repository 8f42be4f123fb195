"""The typed Spec and its Python DSL: positional arguments, ids, references, equality, errors."""

from __future__ import annotations

import pytest

from kumeo_iac.errors import KumeoError, KumeoSpecError, SourceSpan
from kumeo_iac.spec import (
    AGENT_KIND_NAMES,
    HTTP,
    LLM,
    NATS,
    BayesianNetwork,
    BayesianNetworkContext,
    DecisionMatrix,
    HumanInLoop,
    HumanReview,
    LocatedStr,
    MLModel,
    NatsTarget,
    Program,
    Ref,
    Router,
    WorkflowSpec,
)


def seed_workflow() -> WorkflowSpec:
    llm = LLM("ollama/llama3", prompt="Classify {{data}}")
    model = MLModel("isolation_forest.onnx", input=llm.output)
    policy = DecisionMatrix("policy.dmx", input=model.output)
    return WorkflowSpec(
        name="FraudDetection",
        source=NATS("transactions"),
        target=NATS("alerts"),
        context=BayesianNetwork("risk.bn"),
        agents=[llm, model, policy],
    )


def test_positional_arguments_fill_the_kinds_positional_fields() -> None:
    llm = LLM("ollama/llama3", prompt="p")
    assert llm.engine == "ollama/llama3"
    assert MLModel("m.onnx").model == "m.onnx"
    assert DecisionMatrix("p.dmx").matrix == "p.dmx"


def test_too_many_positional_arguments_is_a_kumeo_error() -> None:
    with pytest.raises(KumeoSpecError, match=r"MLModel\(\) takes at most 1 positional argument"):
        MLModel("a.onnx", "b.onnx")


def test_argument_given_twice_is_refused() -> None:
    with pytest.raises(KumeoSpecError, match="both by position and by name"):
        LLM("ollama/llama3", engine="openai/gpt-4o")


def test_wrong_type_is_a_kumeo_error_not_a_pydantic_one() -> None:
    with pytest.raises(KumeoSpecError, match="temperature"):
        LLM("ollama/llama3", temperature="hot")
    assert issubclass(KumeoSpecError, KumeoError)


def test_workflow_assigns_ids_from_kinds_and_binds_python_references() -> None:
    wf = seed_workflow()
    assert [a.id for a in wf.agents] == ["llm", "ml_model", "decision_matrix"]
    assert wf.agents[1].input == Ref(path=("llm", "output"))
    assert str(wf.agents[2].input) == "ml_model.output"


def test_second_agent_of_a_kind_gets_a_numbered_id_and_explicit_ids_win() -> None:
    wf = WorkflowSpec(
        name="W",
        agents=[LLM("a/b", prompt="x"), LLM("a/b", prompt="y", id="llm_2"), LLM("a/b", prompt="z")],
    )
    assert [a.id for a in wf.agents] == ["llm", "llm_2", "llm_3"]


def test_reference_by_kind_is_rewritten_to_the_unique_agent_of_that_kind() -> None:
    wf = WorkflowSpec(
        name="W",
        agents=[LLM("a/b", prompt="x", id="classify"), MLModel("m.onnx", input=Ref(path=("LLM", "output")))],
    )
    assert wf.agents[1].input.path == ("classify", "output")


def test_reference_by_ambiguous_kind_is_left_for_validation_to_report() -> None:
    wf = WorkflowSpec(
        name="W",
        agents=[LLM("a/b", prompt="x"), LLM("a/b", prompt="y"), MLModel("m.onnx", input=Ref(path=("LLM", "output")))],
    )
    assert wf.agents[2].input.path == ("LLM", "output")


def test_python_and_spelled_out_references_compare_equal() -> None:
    spelled = WorkflowSpec(
        name="FraudDetection",
        source=NATS("transactions"),
        target=NATS("alerts"),
        context=BayesianNetwork("risk.bn"),
        agents=[
            LLM("ollama/llama3", prompt="Classify {{data}}"),
            MLModel("isolation_forest.onnx", input=Ref(path=("LLM", "output"))),
            DecisionMatrix("policy.dmx", input="ml_model.output"),
        ],
    )
    assert spelled == seed_workflow()
    assert Program(workflows=[spelled]) == Program(workflows=[seed_workflow()])


def test_equality_ignores_spans_but_not_values() -> None:
    a = LLM("x/y", prompt="p", span=SourceSpan("a.kumeo", 1, 1))
    b = LLM("x/y", prompt="p", span=SourceSpan("b.kumeo", 9, 9))
    assert a == b
    assert a != LLM("x/y", prompt="q")


def test_a_source_call_in_a_target_slot_becomes_a_target() -> None:
    wf = WorkflowSpec(name="W", source=HTTP("/ingest"), target=[NATS("out")])
    assert isinstance(wf.targets[0], NatsTarget)
    assert wf.targets[0].subject == "out"


def test_bayesian_network_in_a_context_slot_is_the_context_with_an_id_from_its_file() -> None:
    wf = seed_workflow()
    ctx = wf.contexts[0]
    assert isinstance(ctx, BayesianNetworkContext)
    assert (ctx.id, ctx.path) == ("risk", "risk.bn")


def test_human_in_loop_is_an_alias_of_human_review() -> None:
    assert HumanInLoop is HumanReview
    assert AGENT_KIND_NAMES["HumanInLoop"] is HumanReview


def test_argument_metadata_feeds_validation() -> None:
    assert MLModel.required_arguments() == ("model",)
    assert "prompt" in LLM.required_arguments()
    assert LLM.required_one_of == (("engine", "provider"),)
    assert "output" in LLM.argument_names() and "output_channel" not in LLM.argument_names()
    assert LLM.field_for_argument("output") == "output_channel"
    assert Router.field_for_argument("nonsense") is None


def test_agent_output_reference_selects_fields() -> None:
    model = MLModel("m.onnx", id="scorer")
    assert model.output.score.path == ("scorer", "output", "score")


def test_located_strings_compare_like_plain_strings() -> None:
    s = LocatedStr("amount > 3", SourceSpan("f.kumeo", 3, 7))
    assert s == "amount > 3" and hash(s) == hash("amount > 3")
    assert s.span == SourceSpan("f.kumeo", 3, 7)


def test_json_round_trip_of_agents_keeps_their_kind() -> None:
    wf = seed_workflow()
    data = wf.model_dump(mode="json")
    assert [a["kind"] for a in data["agents"]] == ["LLM", "MLModel", "DecisionMatrix"]
