"""validate() on real `.kumeo` text: each diagnostic points at the exact line and column where the problem is."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kumeo_iac.errors import KumeoValidationError, Severity
from kumeo_iac.lang import parse
from kumeo_iac.validate import check_file, load, validate

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = Path("/work/shared/corpus/upstream")


def pos(text: str, needle: str, nth: int = 1, shift: int = 0) -> tuple[int, int]:
    """1-based line and column of the nth occurrence of ``needle`` in ``text`` (plus ``shift`` columns)."""
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column + shift


def check(text: str, **kwargs):
    text = textwrap.dedent(text)
    result = parse(text, "t.kumeo")
    assert [d for d in result.diagnostics if d.is_error] == [], result.diagnostics
    return text, validate(result.program, **kwargs)


def one(diags, code: str):
    found = [d for d in diags if d.code == code]
    assert len(found) == 1, "\n".join(d.format() for d in diags)
    return found[0]


def where(d) -> tuple[int, int]:
    assert d.span is not None and d.span.path == "t.kumeo"
    return d.span.line, d.span.column


HEAD = """\
workflow W {
  source: NATS("in")
  target: [NATS("out"), NATS("alerts")]
"""


def test_upstream_fraud_example_reports_the_dangling_input():
    diags = check_file(UPSTREAM / "example_workflow.kumeo")
    errors = [d for d in diags if d.is_error]
    assert [d.format().split(": ", 1)[1] for d in errors] == [
        "error: input 'anomaly_scores.score' of agent 'risk_assessor' refers to nothing; "
        "did you mean 'anomaly.scores'?"
    ]
    assert (errors[0].span.line, errors[0].span.column) == (82, 24)
    assert all(d.severity is Severity.WARNING for d in diags if not d.is_error)


def test_simple_upstream_example_has_only_warnings():
    assert [d.format() for d in check_file(UPSTREAM / "simple_workflow.kumeo") if d.is_error] == []


def test_upstream_health_example_reports_the_settings_no_runtime_reads():
    """The upstream file writes config keys that no agent reads (they would silently do nothing): each is an error
    at its key, with what the kind does take."""
    errors = [d for d in check_file(UPSTREAM / "health_monitoring_system.kumeo") if d.is_error]
    assert {d.code for d in errors} == {"bad-config"}
    assert [(d.span.line, d.span.column) for d in errors] == [(75, 9), (87, 9), (187, 9), (188, 9), (209, 11),
                                                             (219, 15), (226, 11)]
    assert errors[0].message.startswith("config of DataProcessor 'data_validator' has no setting 'rules'; the "
                                        "settings are: defaults, required_fields, schema")
    assert errors[5].message.startswith("config 'ui.fields[3]' of HumanReview 'critical_case_review' has no "
                                        "setting 'required'; the settings are: field, label, type")
    assert errors[6].message.startswith("config 'notifications.email' of HumanReview 'critical_case_review' must "
                                        "be a list")


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*/*.kumeo")), ids=lambda p: p.name)
def test_our_examples_are_valid(path):
    assert [d.format() for d in check_file(path) if d.is_error] == []


def test_unknown_argument():
    text, diags = check(HEAD + '  agents: [LLM("e/m", id: "a", prompt: "p", temprature: 0.2)]\n}\n')
    d = one(diags, "unknown-argument")
    assert where(d) == pos(text, "0.2")
    assert d.message == "LLM 'a' has no argument 'temprature'; did you mean 'temperature'?"


def test_missing_arguments_at_the_call():
    text, diags = check(HEAD + '  agents: [\n    MLModel(id: "m"),\n'
                        '    LLM(id: "l", input: m.output, prompt: "p")\n  ]\n}\n')
    missing = [d for d in diags if d.code == "missing-argument"]
    assert [(where(d), d.message.split(":")[0]) for d in missing] == [
        (pos(text, "MLModel"), "MLModel 'm' needs a model"),
        (pos(text, "LLM("), "LLM 'l' needs an engine or a provider"),
    ]


def test_router_without_rules():
    _, diags = check(HEAD + '  agents: [Router(id: "r")]\n}\n')
    assert one(diags, "missing-argument").message.startswith("Router 'r' needs rules")


def test_duplicate_agent_ids():
    text, diags = check(HEAD + '  agents: [\n    DataProcessor(id: "a"),\n'
                        '    DataProcessor(id: "a", input: "a.output")\n  ]\n}\n')
    d = one(diags, "duplicate-id")
    assert where(d) == pos(text, '"a"', 2)
    assert "already used by the DataProcessor agent on line 5" in d.message


def test_duplicate_workflows_and_contexts():
    text, diags = check("""\
        workflow W {
          context: [KnowledgeBase("a.json", id: "kb"), KnowledgeBase("b.json", id: "kb")]
        }
        workflow W { }
    """)
    assert where(one(diags, "duplicate-workflow")) == pos(text, "W", 2)
    d = one(diags, "duplicate-id")
    assert where(d) == pos(text, '"kb"', 2)
    assert d.message.startswith("context id 'kb' is already used by the context on line 2")


def test_unknown_block():
    text, diags = check(HEAD + "  modles: { x: 1 }\n}\n")
    d = one(diags, "unknown-block")
    assert where(d) == pos(text, "{ x")
    assert d.message == "workflow 'W' has no block 'modles'; did you mean 'models'?"


def test_unresolved_and_ambiguous_inputs():
    text, diags = check(HEAD + """\
      agents: [
        LLM("e/m", id: "one", prompt: "p", output: "anomaly.scores"),
        LLM("e/m", id: "two", prompt: "p", input: "anomaly_scores.score"),
        DataProcessor(id: "d", input: LLM.output),
        DataProcessor(id: "e", input: one.outptu)
      ]
    }
    """)
    unresolved = [d for d in diags if d.code == "unresolved-reference"]
    assert [(where(d), d.message) for d in unresolved] == [
        (pos(text, '"anomaly_scores.score"'),
         "input 'anomaly_scores.score' of agent 'two' refers to nothing; did you mean 'anomaly.scores'?"),
        (pos(text, "one.outptu"), "input 'one.outptu' of DataProcessor 'e' reads field 'outptu' of agent 'one'; "
                                  "did you mean 'one.output'?"),
    ]
    d = one(diags, "ambiguous-reference")
    assert where(d) == pos(text, "LLM.output")
    assert "has 2 LLM agents (one, two); name one by id" in d.message


def test_router_destinations():
    text, diags = check(HEAD + """\
      agents: [Router(id: "r", input: source, rules: { "x > 1": "target.alrts", "default": target.out })]
    }
    """)
    d = one(diags, "unresolved-reference")
    assert where(d) == pos(text, '"target.alrts"')
    assert "did you mean 'target.alerts'?" in d.message


def test_block_references_missing_entry_and_missing_block():
    text, diags = check(HEAD + """\
      models: { fraud_detector: { file: "f.onnx" } }
      agents: [MLModel("models.fraud_detectr", id: "m", output_schema: "schemas.x")]
    }
    """)
    d = one(diags, "unknown-entry")
    assert where(d) == pos(text, '"models.fraud_detectr"')
    assert d.message.endswith("has no entry 'fraud_detectr'; did you mean 'fraud_detector'?")
    w = one(diags, "missing-block")
    assert w.severity is Severity.WARNING and where(w) == pos(text, '"schemas.x"')
    _, strict = check(text, strict_files=True)
    assert one(strict, "missing-block").severity is Severity.ERROR


def test_context_references():
    text, diags = check(HEAD + """\
      context: KnowledgeBase("kb.json", id: "guide")
      data: { medical: "m.json" }
      agents: [LLM("e/m", id: "a", prompt: "p", context: ["guid", "data.medicl", "SELECT * FROM x"])]
    }
    """)
    errors = sorted((d for d in diags if d.is_error), key=where)
    assert [(where(d), d.message.split(";")[-1].strip()) for d in errors] == [
        (pos(text, '"guid"'), "did you mean 'guide'?"),
        (pos(text, '"data.medicl"'), "did you mean 'medical'?"),
    ]


def test_integration_checks():
    text, diags = check("""\
        subworkflow Cov {
          input: ["claim"]
          output: ["verdict"]
          agents: [DataProcessor(id: "x", input: input.claim)]
        }
        workflow W {
          source: NATS("in")
          target: NATS("out")
          agents: [DataProcessor(id: "d", input: source)]
        }
        integration {
          workflow: W,
          use: Cv,
          mapping: { input: { "clam": d.output } }
        }
        integration {
          workflow: WW,
          use: Cov,
          mapping: { input: { "claim": d.output }, output: { "verdikt": target.out } }
        }
    """)
    msgs = {d.message: where(d) for d in diags if d.is_error}
    assert msgs["integration uses subworkflow 'Cv', which this file does not declare; did you mean 'Cov'?"] == \
        pos(text, "Cv")
    assert msgs["integration names workflow 'WW', which this file does not declare; did you mean 'W'?"] == \
        pos(text, "WW")
    # The Spec keeps mapping keys as plain str, so the diagnostic points at the key's value, on the same line.
    assert msgs["subworkflow 'Cov' declares no output 'verdikt'; did you mean 'verdict'?"] == pos(text, "\"verdikt\"")


def test_cycle_unreachable_and_no_source():
    text, diags = check(HEAD + """\
      agents: [
        DataProcessor(id: "a", input: source),
        DataProcessor(id: "z", input: y.output),
        DataProcessor(id: "y", input: z.output),
        DataProcessor(id: "lonely", input: {})
      ]
    }
    workflow NoSource { agents: [DataProcessor(id: "a")] }
    """)
    d = one(diags, "cycle")
    assert where(d) == pos(text, 'DataProcessor(id: "z"')
    assert d.message.startswith("agents form a cycle: z → y → z")
    w = one(diags, "unreachable")
    assert w.severity is Severity.WARNING and where(w) == pos(text, 'DataProcessor(id: "lonely"')
    assert where(one(diags, "no-source")) == pos(text, "workflow NoSource")


EXPRESSIONS = HEAD + """\
  config: { limits: { high: 0.8 } }
  agents: [
    DataProcessor(id: "dp", input: source, when: "amount >> 1",
                  config: { features: ["x", "big: x >"] }),
    Router(id: "r", input: dp.output, rules: {
      "score >= config.limits.hgh": "target.alerts",
      "score >= (": target.out,
      "default": "target.out"
    }),
    HumanReview(id: "h", input: dp.output, trigger: "a ==", output: "reviewed"),
    DecisionMatrix(id: "m", input: "reviewed ?? (", rules: [{ name: "n", condition: "&&", error: "e" }]),
    RuleEngine(id: "re", input: m.output, rules: [{ when: "not", set: { a: 1 } }])
  ]
}
"""


def test_expression_errors_at_their_exact_column():
    text, diags = check(EXPRESSIONS)
    got = sorted((where(d), d.message.split(" does not parse")[0]) for d in diags if d.code == "expression")
    assert got == sorted([
        (pos(text, '"amount >> 1"', shift=1 + len("amount >")), "`when` of DataProcessor 'dp'"),
        (pos(text, '"big: x >"', shift=1 + len("big: x >")), "computed field 'big' of DataProcessor 'dp'"),
        (pos(text, '"score >= ("', shift=1 + len("score >= (")), "rule 'score >= (' of Router 'r'"),
        (pos(text, '"a =="', shift=1 + len("a ==")), "`trigger` of HumanReview 'h'"),
        (pos(text, '"reviewed ?? ("', shift=1 + len("reviewed ?? (")), "input 'reviewed ?? (' of DecisionMatrix 'm'"),
        (pos(text, '"&&"', shift=1), "`condition` of rule 1 of DecisionMatrix 'm'"),
        (pos(text, '"not"', shift=1 + len("not")), "`when` of rule 1 of RuleEngine 're'"),
    ])


def test_config_path_in_expression_at_its_column():
    text, diags = check(EXPRESSIONS)
    d = one(diags, "unknown-entry")
    assert where(d) == pos(text, "config.limits.hgh")
    assert d.message.endswith("'config.limits' has no entry 'hgh'; did you mean 'high'?")


def test_timeout_and_retry():
    text, diags = check(HEAD + """\
      agents: [DataProcessor(id: "a", input: source, timeout: "3 weeks", retry: { attempts: 2, bakoff: "1s" })]
    }
    """)
    assert where(one(diags, "bad-duration")) == pos(text, '"3 weeks"')
    d = one(diags, "bad-retry")
    assert where(d) == pos(text, "bakoff")
    assert d.message == "retry of DataProcessor 'a' has no setting 'bakoff'; did you mean 'backoff'?"


def test_missing_files(tmp_path: Path):
    (tmp_path / "here.onnx").write_bytes(b"")
    text = textwrap.dedent(HEAD + """\
      agents: [
        MLModel("here.onnx", id: "a", input: source),
        MLModel("gone.onnx", id: "b", input: a.output),
        DecisionMatrix("policy.dmx", id: "c", input: b.output)
      ]
    }
    """)
    path = tmp_path / "t.kumeo"
    path.write_text(text)
    diags = check_file(path)
    missing = [d for d in diags if d.code == "missing-file"]
    assert [(d.span.line, d.span.column) for d in missing] == [pos(text, '"gone.onnx"'), pos(text, '"policy.dmx"')]
    assert all(d.severity is Severity.WARNING for d in missing)
    assert all(d.is_error for d in check_file(path, strict_files=True) if d.code == "missing-file")
    assert load(path).workflows[0].name == "W"
    with pytest.raises(KumeoValidationError) as info:
        load(path, strict_files=True)
    assert "gone.onnx" in str(info.value)


def test_kafka_and_mqtt_are_fine_at_validation():
    _, diags = check("""\
        workflow W {
          source: Kafka("topic.in")
          target: MQTT("topic/out")
          agents: [DataProcessor(id: "a", input: source)]
        }
    """)
    assert diags == []


def test_load_reports_syntax_errors_as_validation_errors(tmp_path: Path):
    path = tmp_path / "bad.kumeo"
    path.write_text("workflow W {\n  source: NATS(\"in\"\n}\n")
    with pytest.raises(KumeoValidationError) as info:  # validate.load is kumeo_iac.load: one error type
        load(path)
    assert [d.span.line for d in info.value.diagnostics if d.span] == [3]
    assert check_file(path)[0].span.path == str(path)
