"""Check and compile agree (issue 15, item 4): over generated Specs, whenever `kumeo check` passes, compile
succeeds, and whenever compile fails, check has already said why.

"Check passes" means what `render`, `run` and `up` require: no error under ``strict_files=True`` (missing blocks
and files are errors there). Without ``strict_files`` check may only warn, so a compile failure must then be
preceded by at least a warning. The generated programs mix valid and invalid choices for what both stages read:
ids, inputs, references to workflow blocks, timeouts, retries, agent settings, subjects, names and deployment.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kumeo_iac.compile import compile_program
from kumeo_iac.errors import KumeoCompileError
from kumeo_iac.spec import (
    LLM,
    NATS,
    Custom,
    DataNormalizer,
    DataProcessor,
    DecisionMatrix,
    Deployment,
    HumanReview,
    IntegrationSpec,
    MissingValueHandler,
    MLModel,
    Program,
    Resources,
    Router,
    RuleEngine,
    Scaling,
    SubworkflowSpec,
    WorkflowSpec,
)
from kumeo_iac.validate import validate


def mostly(good: list[Any], bad: list[Any]) -> st.SearchStrategy[Any]:
    """A valid choice most of the time, so most programs have one problem or none and compile gets far."""
    return st.integers(0, 9).flatmap(lambda i: st.sampled_from(good if i < 9 or not bad else bad))


IDS = mostly(["a", "b", "score", "risk_2", "a_b", "x1"],
             ["a-b", "bad id", "x.y", "gateway", "", "risk_scoring_normalize"])
TIMEOUTS = mostly([None, "30s", "2m", 5, 1.5], [0, "0s", "-1s", "soon", True])
RETRIES = mostly(
    [None, 0, 2, {"attempts": 2, "backoff": "500ms"}, {"attempts": 3, "factor": 3},
     {"attempts": 2, "backoff": ["1s", "5s"]}, {"attempts": 2, "backoff": "exponential"},
     {"attempts": 2, "backoff": "fixed"}],
    [101, -1, 2.5, True, "3", {"attempts": 1, "bakoff": "1s"}, {"attempts": -1}, {"attempts": 200},
     {"backoff": "soon"}, {"factor": 0}, {"max_attempts": 3}])
MODEL_REFS = mostly(
    ["forest.onnx", "models.fraud", {"file": "inline.onnx"}, "models.onnx"],
    ["models.fraud-detector", "models.missing", "models.fraud.file", "models.fraud.nope", "/etc/passwd.onnx",
     "../outside.onnx"])
MODELS_BLOCKS = mostly([{"fraud": {"file": "forest.onnx", "type": "onnx"}},
                        {"fraud": {"file": "forest.onnx"}, "fraud-detector": "detector.onnx"}],
                       [{}, {"other": "x.onnx"}])
CONFIG_BLOCKS = mostly([{"norm": {"method": "z_score", "fields": {"amount": [0, 1]}}, "high_value": 1000}],
                       [{}, {"norm": {"method": 42, "fields": {}}}, {"high_value": 1000}])
PROCESSOR_CONFIGS = mostly(
    [None, {"required_fields": ["a"]}, {"features": ["amount", "big: amount > 1"]}, {"join_timeout": "1m"},
     {"password": "${env.PW}"}, "settings.json"],
    [{"required_feilds": ["a"]}, {"steps": ["trim", "shout"]}, {"join_timeout": "later"}, "config.norm",
     {"api_key": "sk-literal"}, 7, "config.nothing", {"schema": "schemas.nope"}])
NORMALIZER_CONFIGS = mostly(
    [{"method": "min_max", "fields": {"amount": [0, 100]}}, "config.norm"],
    [{"method": 42, "fields": {"amount": [0, 1]}}, {"fields": {"amount": [0, 1]}, "clip": "yes"}, "config.missing",
     {"method": "z_score"}, "config.norm.method"])
REVIEW_CONFIGS = mostly([None, {"timeout": "24h"}, {"ui": {"title": "t", "fields": ["amount"]}}],
                        [{"timeout": "someday"}, {"timeout": 0}, {"on_timeout": "later"}, {"ui": {"description": "x"}}])
SUBJECTS = mostly(["in", "payments.tx", "tx.*", "tx.>"], ["bad subject", "kumeo.w.x", "kumeo.>", ""])
TARGET_SUBJECTS = mostly(["out", "alerts"], ["alerts.*", "bad subject"])
NAMESPACES = mostly([None, "fraud"], ["Not_DNS", "a" * 70])
WORKFLOW_NAMES = st.sampled_from(["W", "Fraud Detection", "fraud-detection", "V2"])
INPUT_MISTAKES = ["nowhere.output", "config.high_value > 1", "a.outptu"]


@st.composite
def agents(draw: Any, previous: list[str]) -> Any:
    agent_id = draw(IDS)
    inputs = ["source", *(f"{p}.output" for p in previous)]
    common: dict[str, Any] = {"id": agent_id or None, "input": draw(mostly(inputs, INPUT_MISTAKES)),
                              "timeout": draw(TIMEOUTS), "retry": draw(RETRIES)}
    kind = draw(st.sampled_from(["processor", "normalizer", "ml", "llm", "review", "router", "rules", "matrix",
                                 "missing", "custom"]))
    if kind == "processor":
        return DataProcessor(config=draw(PROCESSOR_CONFIGS), **common)
    if kind == "normalizer":
        return DataNormalizer(draw(NORMALIZER_CONFIGS), **common)
    if kind == "ml":
        return MLModel(draw(MODEL_REFS), **common)
    if kind == "llm":
        return LLM("ollama/llama3", prompt="Is {{amount}} odd?", output_schema=draw(
            mostly([None, "schemas.verdict", {"type": "object"}], ["schemas.nope", "schemas"])), **common)
    if kind == "review":
        return HumanReview(config=draw(REVIEW_CONFIGS), **common)
    if kind == "router":
        route = draw(mostly(["target.out", *previous], ["target.nowhere", "x"]))
        return Router(rules={"amount > 10": route, "default": "target.out"}, **common)
    if kind == "rules":
        return RuleEngine(draw(mostly(["rules.json"], ["config.rules", "/abs/rules.json", "models.fraud"])),
                          **common)
    if kind == "matrix":
        return DecisionMatrix(rules=[{"condition": "amount > 1", "error": "big"}],
                              mode=draw(st.sampled_from([None, "validate"])),
                              config=draw(mostly([None, {"join_timeout": "2m"}], [{"x": 1}])), **common)
    if kind == "missing":
        return MissingValueHandler("constant", value=0, window=draw(st.sampled_from([None, 10])), **common)
    return Custom(draw(st.sampled_from(["pkg.mod:fn", None])), wasm=draw(st.sampled_from([None, "m.wasm"])),
                  config=draw(mostly([None, {"threads": 2, "mine": 1}], [{"threads": 0}])), **common)


@st.composite
def workflows(draw: Any) -> WorkflowSpec:
    built: list[Any] = []
    for _ in range(draw(st.integers(1, 4))):
        agent = draw(agents([a.id for a in built if a.id]))
        built.append(agent)
    deployment = draw(st.sampled_from([
        None,
        None,
        Deployment(namespace=draw(NAMESPACES)),
        Deployment(scaling=Scaling(min_replicas=draw(mostly([1, 2], [0, 4])), max_replicas=draw(
            mostly([3, None], [1])))),
        Deployment(resources={"default": Resources(cpu=draw(mostly(["500m", 2], ["lots"])),
                                                   memory=draw(mostly(["1Gi", None], ["much"])))}),
        Deployment(base_images={"ml": "reg/ml:1"},
                   resources={"ml_models": Resources(image=draw(mostly(["base_images.ml"], ["base_images.gpu"])))}),
    ]))
    return WorkflowSpec(
        name=draw(WORKFLOW_NAMES),
        source=NATS(draw(SUBJECTS)),
        target=[NATS(draw(TARGET_SUBJECTS))],
        agents=built,
        models=draw(MODELS_BLOCKS),
        config=draw(CONFIG_BLOCKS),
        schemas=draw(mostly([{"verdict": {"type": "object"}}], [{}])),
        deployment=deployment,
    )


@st.composite
def with_integration(draw: Any, wfs: list[WorkflowSpec]) -> Program:
    """The workflows, and sometimes a subworkflow inlined into the first one by an integration."""
    if draw(st.booleans()):
        return Program(workflows=wfs)
    first = draw(mostly(["normalize"], ["bad id", "x.y"]))
    sub_agents: list[Any] = [DataProcessor(id=first, input="input.events", output_channel="scored")]
    if draw(st.booleans()):
        sub_agents.append(MLModel("risk.onnx", id=draw(mostly(["score"], [first, "y z"])), input=f"{first}.output"))
    sub = SubworkflowSpec(name="RiskScoring", inputs=["events"], outputs=["scored"], agents=sub_agents)
    integrations = [IntegrationSpec(
        workflow=draw(mostly([wfs[0].name], ["Nowhere"])), use=draw(mostly(["RiskScoring"], ["Other"])),
        input_mapping=draw(mostly([{"events": "source"}], [{"evnts": "source"}, {"events": "nowhere.output"}])),
        output_mapping=draw(mostly([{"scored": "target.out"}], [{"nope": "target.out"}, {"scored": "target.x"}])),
    ) for _ in range(draw(st.integers(1, 2)))]
    return Program(workflows=wfs, subworkflows=[sub], integrations=integrations)


programs = st.one_of(
    st.lists(workflows(), min_size=1, max_size=2, unique_by=lambda wf: wf.name),
    st.lists(workflows(), min_size=2, max_size=2),  # same names, or names that give the same slug
).flatmap(with_integration)


def _compile_error(program: Program) -> KumeoCompileError | None:
    try:
        compile_program(program)
    except KumeoCompileError as exc:
        return exc
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_check_passes_then_compile_succeeds_and_compile_fails_only_where_check_said_why(program: Program) -> None:
    strict = [d for d in validate(program, strict_files=True) if d.is_error]
    loose = validate(program)
    failure = _compile_error(program)
    if failure is not None:
        assert strict, f"compile failed but check found no error: {failure}"
        assert loose, f"compile failed but `kumeo check` said nothing: {failure}"


# -- the disagreements issue 15 named, one by one ------------------------------------------------------------------


def _agree(program: Program) -> tuple[list[str], KumeoCompileError | None]:
    errors = [d.message for d in validate(program, strict_files=True) if d.is_error]
    return errors, _compile_error(program)


def test_a_models_entry_with_a_dash_resolves_in_check_and_in_compile() -> None:
    program = Program(workflows=[WorkflowSpec(
        name="W", source=NATS("in"), agents=[MLModel("models.fraud-detector", id="m", input="source")],
        models={"fraud-detector": {"file": "detector.onnx", "type": "onnx"}})])
    errors, failure = _agree(program)
    assert errors == [] and failure is None
    plan = compile_program(program)
    assert plan.workflows[0].agents[0].settings["model"] == {"file": "detector.onnx", "type": "onnx"}
    assert plan.workflows[0].agents[0].files == ["detector.onnx"]


def test_a_misspelt_models_entry_is_refused_by_both_with_the_same_words() -> None:
    program = Program(workflows=[WorkflowSpec(
        name="W", source=NATS("in"), agents=[MLModel("models.fraud-detecter", id="m", input="source")],
        models={"fraud-detector": "detector.onnx"})])
    errors, failure = _agree(program)
    assert errors == ["model of MLModel 'm' refers to 'models.fraud-detecter', but the `models` block has no entry "
                      "'fraud-detecter'; did you mean 'fraud-detector'?"]
    assert failure is not None and errors[0].split("refers to", 1)[1] in str(failure)


def test_retry_factor_is_accepted_by_both_and_shapes_the_backoff() -> None:
    program = Program(workflows=[WorkflowSpec(name="W", source=NATS("in"), agents=[
        DataProcessor(id="p", input="source", retry={"attempts": 3, "backoff": "1s", "factor": 3})])])
    errors, failure = _agree(program)
    assert errors == [] and failure is None
    agent = compile_program(program).workflows[0].agents[0]
    assert (agent.max_deliver, agent.backoff_seconds) == (4, [1.0, 3.0, 9.0])


def test_a_zero_timeout_is_refused_by_both() -> None:
    program = Program(workflows=[WorkflowSpec(name="W", source=NATS("in"), agents=[
        DataProcessor(id="p", input="source", timeout="0s")])])
    errors, failure = _agree(program)
    assert errors == ['timeout "0s" of DataProcessor \'p\' must be more than 0; write e.g. "30s", "2m", "1h", '
                      '"500ms" or a number of seconds']
    assert failure is not None


def _w_using_risk_scoring(host_agent_id: str, *, target: str = "out", sub_reads_normalize: bool = False) -> Program:
    """Workflow W (one agent reading its source, a target) with RiskScoring inlined: ``normalize`` (and, with
    ``sub_reads_normalize``, ``score`` reading it) sending its output to ``target.out``."""
    sub_agents: list[Any] = [DataProcessor(id="normalize", input="input.events", output_channel="scored")]
    if sub_reads_normalize:
        sub_agents.append(DataProcessor(id="score", input="normalize.output"))
    return Program(
        workflows=[WorkflowSpec(name="W", source=NATS("in"), target=NATS(target),
                                agents=[DataProcessor(id=host_agent_id, input="source")])],
        subworkflows=[SubworkflowSpec(name="RiskScoring", inputs=["events"], outputs=["scored"], agents=sub_agents)],
        integrations=[IntegrationSpec(workflow="W", use="RiskScoring", input_mapping={"events": "source"},
                                      output_mapping={"scored": "target.out"})])


def test_an_id_an_integration_inlines_is_checked_like_the_workflow_s_own() -> None:
    errors, failure = _agree(_w_using_risk_scoring("risk_scoring_normalize"))
    assert errors == ["the integration of 'RiskScoring' inlines agent 'normalize' as 'risk_scoring_normalize', an id "
                      "workflow 'W' already uses; rename one of them"]
    assert failure is not None and "risk_scoring_normalize" in str(failure)


def _risk_scoring(reader_input: str, mapped_to: str) -> Program:
    """Payments inlines RiskScoring, whose output is mapped to ``mapped_to``; the host's ``publish`` reads
    ``reader_input``."""
    sub = SubworkflowSpec(name="RiskScoring", inputs=["events"], outputs=["scores"],
                          agents=[DataProcessor(id="score", input="input.events")])
    return Program(
        workflows=[WorkflowSpec(name="Payments", source=NATS("payments.in"), target=NATS("payments.scored"),
                                agents=[DataProcessor(id="ingest", input="source"),
                                        DataProcessor(id="publish", input=reader_input,
                                                      output_channel="target.payments.scored")])],
        subworkflows=[sub],
        integrations=[IntegrationSpec(workflow="Payments", use="RiskScoring",
                                      input_mapping={"events": "ingest.output"},
                                      output_mapping={"scores": mapped_to})])


def test_a_host_agent_reads_the_name_an_integration_s_output_is_mapped_to_in_check_and_in_compile() -> None:
    program = _risk_scoring("risk.scores", "risk.scores")
    errors, failure = _agree(program)
    assert errors == [] and failure is None
    warnings = [d.message for d in validate(program) if not d.is_error]
    assert warnings == []  # publish is reached: through the inlined agent
    agents = {a.id: a for a in compile_program(program).workflows[0].agents}
    assert agents["publish"].inputs[""] == agents["risk_scoring_score"].output_subject


def test_an_output_mapped_to_a_name_no_host_agent_reads_is_refused() -> None:
    # Compile would publish it where nobody reads; check refuses it as the typo it most likely is.
    errors, _ = _agree(_risk_scoring("ingest.output", "risk.scores"))
    assert errors == ["output mapping 'scores' of the integration of 'RiskScoring' sends to 'risk.scores', which is no "
                      "target or agent of workflow 'Payments', nor a name one of its agents reads"]


def test_a_host_agent_reading_a_misspelt_mapped_name_refers_to_nothing() -> None:
    errors, _ = _agree(_risk_scoring("risk.scorse", "risk.scores"))
    assert any(e.startswith("input 'risk.scorse' of agent 'publish' refers to nothing") for e in errors), errors



def test_an_output_mapped_to_a_missing_target_is_refused_even_when_the_subworkflow_reads_that_agent() -> None:
    # Found by the property test above: the mapped agent is read inside the subworkflow, which is no host agent.
    errors, failure = _agree(_w_using_risk_scoring("a", target="alerts", sub_reads_normalize=True))
    assert any("sends to 'target.out', which is no target or agent of workflow 'W'" in e for e in errors), errors
    assert failure is not None
