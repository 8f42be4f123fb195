"""The `.kumeo` importer: every construct of the language, the Spec it builds, and the spans it records."""

from __future__ import annotations

from lang_helpers import SEED_TEXT, seed_program_in_python

from kumeo_iac.errors import SourceSpan
from kumeo_iac.lang import Comment, ParseResult, parse
from kumeo_iac.spec import (
    LLM,
    BayesianNetworkAgent,
    BayesianNetworkContext,
    Call,
    Database,
    DataProcessor,
    HttpSource,
    HttpTarget,
    HumanReview,
    KnowledgeBase,
    LocatedStr,
    MLModel,
    NatsSource,
    NatsTarget,
    Ref,
    Resources,
    Router,
    Scaling,
)


def ok(text: str, path: str = "t.kumeo") -> ParseResult:
    """Parse text that must import without a single diagnostic."""
    result = parse(text, path)
    assert result.diagnostics == [], [d.format() for d in result.diagnostics]
    return result


def at(text: str, span: SourceSpan | None) -> str:
    """The source text from a span's start to the end of that line (to assert where a span points)."""
    assert span is not None
    return text.splitlines()[span.line - 1][span.column - 1 :]


def pos(span: SourceSpan | None) -> tuple[int, int]:
    assert span is not None
    return (span.line, span.column)


# -- the seed form -------------------------------------------------------------------------------------------------


def test_seed_imports_equal_to_the_python_dsl() -> None:
    result = ok(SEED_TEXT, "seed.kumeo")
    assert result.program == seed_program_in_python()
    assert result.program.path == "seed.kumeo"


def test_seed_positional_arguments_and_by_kind_refs() -> None:
    wf = ok(SEED_TEXT).program.workflows[0]
    llm, model, matrix = wf.agents
    assert isinstance(llm, LLM) and llm.engine == "ollama/llama3" and llm.id == "llm"
    assert llm.prompt == "Classify {{data}} as fraud? Context: {{context}}"
    assert isinstance(model, MLModel) and model.model == "isolation_forest.pkl"
    assert model.input == Ref(path=("llm", "output"))  # LLM.output → llm.output (the kind is unique)
    assert matrix.matrix == "policy.dmx" and matrix.input == Ref(path=("ml_model", "output"))
    assert isinstance(wf.sources[0], NatsSource) and wf.sources[0].subject == "transactions"
    assert isinstance(wf.targets[0], NatsTarget) and wf.targets[0].subject == "alerts"
    assert isinstance(wf.contexts[0], BayesianNetworkContext) and wf.contexts[0].path == "risk.bn"


def test_seed_spans() -> None:
    wf = ok(SEED_TEXT, "seed.kumeo").program.workflows[0]
    assert wf.span == SourceSpan("seed.kumeo", 1, 1, 10, 1)
    assert pos(wf.arg_spans["name"]) == (1, 10)
    assert pos(wf.arg_spans["sources"]) == (2, 11)
    assert pos(wf.arg_spans["targets"]) == (3, 11)
    assert pos(wf.arg_spans["contexts"]) == (4, 12)
    assert pos(wf.arg_spans["agents"]) == (5, 11)
    llm, model, matrix = wf.agents
    assert llm.span == SourceSpan("seed.kumeo", 6, 5, 6, 83)
    assert pos(llm.arg_spans["engine"]) == (6, 9)
    assert pos(llm.arg_spans["prompt"]) == (6, 33)
    assert pos(model.span) == (7, 5)
    assert pos(model.arg_spans["input"]) == (7, 43)
    assert model.input.span is not None and pos(model.input.span) == (7, 43)
    assert pos(matrix.arg_spans["matrix"]) == (8, 20)
    assert pos(wf.sources[0].arg_spans["subject"]) == (2, 16)
    assert pos(wf.contexts[0].arg_spans["path"]) == (4, 28)


# -- values --------------------------------------------------------------------------------------------------------

VALUES = r'''workflow V {
  config: {
    plain: "a \"quoted\" \\ word\n\r\t\u00e9\ud83d\ude00",
    triple: """line one
  "line" two""",
    int: 42, neg: -7, float: 2.5, exp: 1e3, negexp: -2.5E-2,
    yes: true, no: false, nothing: null,
    "quoted key": 1,
    path: risk.output.score,
    single: source,
    list: [1, "two", [3], {}, ],
    call: Database("customers", "SELECT 1", timeout: 5, retries = 2),
    empty_call: Now(),
  }
}
'''


def test_scalar_and_composite_values() -> None:
    config = ok(VALUES).program.workflows[0].config
    assert config["plain"] == 'a "quoted" \\ word\n\r\té\U0001f600'
    assert config["triple"] == 'line one\n  "line" two'
    numbers = (config["int"], config["neg"], config["float"], config["exp"], config["negexp"])
    assert numbers == (42, -7, 2.5, 1e3, -0.025)
    assert isinstance(config["int"], int) and isinstance(config["exp"], float)
    assert (config["yes"], config["no"], config["nothing"]) == (True, False, None)
    assert config["quoted key"] == 1
    assert config["path"] == Ref(path=("risk", "output", "score"))
    assert config["single"] == Ref(path=("source",))
    assert config["list"] == [1, "two", [3], {}]
    call = config["call"]
    assert isinstance(call, Call)
    assert (call.name, call.args, call.kwargs) == ("Database", ["customers", "SELECT 1"], {"timeout": 5, "retries": 2})
    assert pos(call.span) == (12, 11)
    assert pos(call.arg_spans["0"]) == (12, 20) and pos(call.arg_spans["retries"]) == (12, 67)
    assert config["empty_call"] == Call(name="Now")


def test_strings_in_loose_values_are_located() -> None:
    config = ok(VALUES).program.workflows[0].config
    plain = config["plain"]
    assert isinstance(plain, LocatedStr)
    assert pos(plain.span) == (3, 12) and pos(plain.content_start) == (3, 13)
    triple = config["triple"]
    assert isinstance(triple, LocatedStr)
    assert pos(triple.span) == (4, 13) and pos(triple.content_start) == (4, 16)
    assert triple.span.end_line == 5
    nested = config["list"][1]
    assert isinstance(nested, LocatedStr) and pos(nested.span) == (11, 15)


def test_object_keys_are_located_strings() -> None:
    text = """workflow W {
  agents: [
    Router(rules: { "score > 0.5": "target.high", default: "target.low" })
  ]
}
"""
    router = ok(text).program.workflows[0].agents[0]
    assert isinstance(router, Router)
    keys = list(router.rules)
    assert keys == ["score > 0.5", "default"]
    assert all(isinstance(k, LocatedStr) for k in keys)
    assert pos(keys[0].span) == (3, 21) and pos(keys[0].content_start) == (3, 22)
    assert pos(keys[1].span) == (3, 51) and pos(keys[1].content_start) == (3, 51)  # bare key: no quote
    assert at(text, keys[0].content_start).startswith("score > 0.5")
    value = router.rules["default"]
    assert isinstance(value, LocatedStr) and at(text, value.span).startswith('"target.low"')


def test_comments_are_collected_and_ignored() -> None:
    text = """// top
workflow W { /* inline */ nats: "x" // tail
  /* two
     lines */
  config: { a: "// not a comment", b: "/* nor this */" }
}
"""
    result = ok(text)
    assert result.comments == [
        Comment("// top", 1, 1, 1, 6),
        Comment("/* inline */", 2, 14, 2, 25),
        Comment("// tail", 2, 37, 2, 43),
        Comment("/* two\n     lines */", 3, 3, 4, 13),
    ]
    config = result.program.workflows[0].config
    assert config == {"a": "// not a comment", "b": "/* nor this */"}


# -- workflow bodies -----------------------------------------------------------------------------------------------


def test_workflow_entries_in_any_order_with_optional_commas() -> None:
    a = ok('workflow W { agents: [DataProcessor()], source: NATS("in"), target: NATS("out") }').program
    b = ok('workflow W {\n target: NATS("out")\n source: NATS("in"),\n agents: [DataProcessor()]\n}').program
    assert a == b
    assert [s.subject for s in a.workflows[0].sources] == ["in"]


def test_both_named_argument_dialects_mix_in_one_file() -> None:
    text = 'workflow W { agents: [LLM(engine: "o/m", prompt = "p", temperature: 0.5, max_tokens = 9)] }'
    llm = ok(text).program.workflows[0].agents[0]
    assert (llm.engine, llm.prompt, llm.temperature, llm.max_tokens) == ("o/m", "p", 0.5, 9)


def test_sources_targets_and_contexts_single_or_list() -> None:
    text = """workflow W {
  source: [NATS("a", { durable: "d" }), HTTP("/ingest")]
  target: [NATS("x"), HTTP("http://h/post")]
  context: [KnowledgeBase("docs/faq.md"), BayesianNetwork("nets/risk.bn"), Database("db", "SELECT 1")]
  agents: [BayesianNetwork("nets/risk.bn", query: ["fraud"])]
}
"""
    wf = ok(text).program.workflows[0]
    assert [type(s) for s in wf.sources] == [NatsSource, HttpSource]
    assert wf.sources[0].options == {"durable": "d"}
    assert pos(wf.sources[0].arg_spans["options"]) == (2, 22)
    assert [type(t) for t in wf.targets] == [NatsTarget, HttpTarget]
    assert [type(c) for c in wf.contexts] == [KnowledgeBase, BayesianNetworkContext, Database]
    assert [c.id for c in wf.contexts] == ["faq", "risk", "db"]
    assert wf.contexts[2].query == "SELECT 1"
    agent = wf.agents[0]
    assert isinstance(agent, BayesianNetworkAgent) and agent.network == "nets/risk.bn" and agent.query == ["fraud"]


def test_kind_aliases_and_every_common_argument() -> None:
    text = """workflow W {
  agents: [
    HumanInLoop(
      id: "review",
      input: source,
      output: "reviewed",
      when: "risk > 0.8",
      timeout: "24h",
      retry: { attempts: 3 },
      fallback: "reject",
      context: ["data.guidelines"],
      output_schema: "schemas.review",
      config: { ui: { title: "Review" } }
    )
  ]
}
"""
    agent = ok(text).program.workflows[0].agents[0]
    assert isinstance(agent, HumanReview)
    assert agent.id == "review" and agent.output_channel == "reviewed" and agent.input == Ref(path=("source",))
    assert (agent.when, agent.timeout, agent.fallback) == ("risk > 0.8", "24h", "reject")
    assert agent.retry == {"attempts": 3} and agent.context == ["data.guidelines"]
    assert agent.config == {"ui": {"title": "Review"}}
    assert pos(agent.arg_spans["output_channel"]) == (6, 15)  # keyed by field name, not by `output`
    assert pos(agent.arg_spans["config"]) == (13, 15)


def test_undeclared_arguments_are_kept_for_validation() -> None:
    text = 'workflow W {\n  agents: [LLM("o/m", prompt: "p", temprature: 0.2, colour = "blue")]\n}'
    llm = ok(text).program.workflows[0].agents[0]
    assert llm.extra_args == {"temprature": 0.2, "colour": "blue"}
    assert pos(llm.arg_spans["extra:temprature"]) == (2, 48)
    assert pos(llm.arg_spans["extra:colour"]) == (2, 62)
    assert llm.temperature is None


def test_unknown_workflow_blocks_are_kept_for_validation() -> None:
    text = 'workflow W {\n  agnets: [DataProcessor()]\n  "odd key": 1\n}'
    wf = ok(text).program.workflows[0]
    assert list(wf.extra_blocks) == ["agnets", "odd key"]
    assert wf.extra_blocks["agnets"] == [Call(name="DataProcessor")]
    assert pos(wf.arg_spans["extra:agnets"]) == (2, 11)
    assert pos(wf.arg_spans["extra:odd key"]) == (3, 14)
    assert wf.agents == []


def test_upstream_blocks_and_preprocessors() -> None:
    text = """workflow W {
  nats: "nats://nats:4222"
  models: { detector: { file: "d.onnx", type: "onnx" } }
  data: { guidelines: "g.json" }
  schemas: { alert: "alert.json" }
  config: { risk: { high: 0.8 } }
  preprocessors: [MissingValueHandler("mean", fields: ["amount"])]
  agents: [MLModel(model: "models.detector", input: missing_value_handler.output)]
}
"""
    wf = ok(text).program.workflows[0]
    assert wf.nats == "nats://nats:4222"
    assert wf.models == {"detector": {"file": "d.onnx", "type": "onnx"}}
    assert wf.data == {"guidelines": "g.json"} and wf.schemas == {"alert": "alert.json"}
    assert wf.config == {"risk": {"high": 0.8}}
    assert wf.preprocessors[0].strategy == "mean" and wf.preprocessors[0].fields == ["amount"]
    assert wf.agents[0].input == Ref(path=("missing_value_handler", "output"))
    assert pos(wf.arg_spans["models"]) == (3, 11)


def test_monitor_and_deployment() -> None:
    text = """workflow W {
  monitor: { metrics: ["latency"], dashboard: "dash/w", alerts: "pager" }
  deployment: {
    namespace: "fraud",
    base_images: { default: "kumeo/agent-base:1.0" },
    resources: {
      default: { cpu: "500m", memory: "1Gi" },
      llm: { image: "base_images.llm", cpu: 4, gpu: true, node_pool: "gpu" }
    },
    storage: { models: "/app/models" },
    scaling: { min_replicas: 2, max_replicas: 5, target_lag: 100, target_cpu: 70, cooldown: "1m" },
    registry: { user: { url: "ghcr.io/me" } },
    tolerations: []
  }
}
"""
    wf = ok(text).program.workflows[0]
    monitor = wf.monitor
    assert monitor is not None and monitor.metrics == ["latency"] and monitor.dashboard == "dash/w"
    assert monitor.extra == {"alerts": "pager"}
    assert pos(monitor.span) == (2, 12) and pos(monitor.arg_spans["extra:alerts"]) == (2, 65)
    deployment = wf.deployment
    assert deployment is not None and deployment.namespace == "fraud"
    assert deployment.base_images == {"default": "kumeo/agent-base:1.0"}
    assert deployment.resources == {
        "default": Resources(cpu="500m", memory="1Gi"),
        "llm": Resources(image="base_images.llm", cpu=4, gpu=True, extra={"node_pool": "gpu"}),
    }
    assert pos(deployment.resources["llm"].span) == (8, 12)
    assert pos(deployment.resources["llm"].arg_spans["gpu"]) == (8, 53)
    assert deployment.storage == {"models": "/app/models"}
    assert deployment.scaling == Scaling(
        min_replicas=2, max_replicas=5, target_lag=100, target_cpu=70, extra={"cooldown": "1m"}
    )
    assert deployment.registry == {"user": {"url": "ghcr.io/me"}}
    assert deployment.extra == {"tolerations": []}
    assert pos(deployment.arg_spans["scaling"]) == (11, 14)


# -- subworkflows, integrations, several declarations ----------------------------------------------------------------

INTEGRATED = """subworkflow CustomerEnrichment {
  input: ["transaction_data", "customer_data"]
  output: ["enriched_data"]
  context: KnowledgeBase("customers.json")
  agents: [DataProcessor(input: input.transaction_data)]
}

workflow FraudDetection {
  source: NATS("transactions")
}

integration {
  workflow: FraudDetection,
  use: CustomerEnrichment,
  mapping: {
    input: {
      "transaction_data": source.transactions,
      "customer_data": Database("customers", "SELECT * FROM customers WHERE id = {{transaction.customer_id}}")
    },
    output: { "enriched_data": agents.fraud_detector.input }
  }
}
"""


def test_subworkflow() -> None:
    program = ok(INTEGRATED).program
    sub = program.subworkflows[0]
    assert sub.name == "CustomerEnrichment"
    assert sub.inputs == ["transaction_data", "customer_data"] and sub.outputs == ["enriched_data"]
    assert isinstance(sub.contexts[0], KnowledgeBase) and sub.contexts[0].id == "customers"
    assert isinstance(sub.agents[0], DataProcessor) and sub.agents[0].id == "data_processor"
    assert pos(sub.span) == (1, 1) and pos(sub.arg_spans["inputs"]) == (2, 10)


def test_integration() -> None:
    program = ok(INTEGRATED).program
    assert [w.name for w in program.workflows] == ["FraudDetection"]
    integration = program.integrations[0]
    assert (integration.workflow, integration.use) == ("FraudDetection", "CustomerEnrichment")
    assert integration.input_mapping["transaction_data"] == Ref(path=("source", "transactions"))
    customer = integration.input_mapping["customer_data"]
    assert isinstance(customer, Call) and customer.name == "Database"
    assert customer.args[1] == "SELECT * FROM customers WHERE id = {{transaction.customer_id}}"
    assert integration.output_mapping == {"enriched_data": Ref(path=("agents", "fraud_detector", "input"))}
    assert pos(integration.span) == (12, 1)
    assert pos(integration.arg_spans["workflow"]) == (13, 13)
    assert pos(integration.arg_spans["input_mapping"]) == (16, 12)
    assert pos(integration.arg_spans["output_mapping"]) == (20, 13)


def test_integration_may_be_named_and_use_strings() -> None:
    text = 'integration Enrich { workflow: "W", use: "S" }'
    integration = ok(text).program.integrations[0]
    assert (integration.workflow, integration.use) == ("W", "S")
    assert integration.input_mapping == {} and integration.output_mapping == {}


def test_empty_text_is_an_empty_program() -> None:
    program = ok("// nothing here\n").program
    assert program.workflows == [] and program.subworkflows == [] and program.integrations == []


def test_crlf_and_bom_do_not_move_positions() -> None:
    text = '\ufeffworkflow W {\r\n  source: NATS("a")\r\n  config: { t: """x\r\ny""" }\r\n}\r\n'
    wf = ok(text).program.workflows[0]
    assert pos(wf.span) == (1, 1) and pos(wf.arg_spans["sources"]) == (2, 11)
    assert wf.config["t"] == "x\ny"


def test_an_integration_keeps_its_name_through_parse_and_fmt() -> None:
    from kumeo_iac.lang import format_text, parse

    text = (
        'subworkflow S { input: ["a"] agents: [DataProcessor(id: "x", input: input.a)] }\n'
        'workflow W { source: NATS("in") agents: [DataProcessor(id: "d")] }\n'
        'integration Link { workflow: W, use: S, mapping: { input: { "a": d.output } } }\n'
    )
    program = parse(text).program
    assert program.integrations[0].name == "Link"
    formatted = format_text(text)
    assert "integration Link {" in formatted
    assert parse(formatted).program == program
