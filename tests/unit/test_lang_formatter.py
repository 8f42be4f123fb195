"""`kumeo fmt`: canonical output, idempotence, round-trips (the Spec is unchanged) and comments kept in place."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lang_helpers import SEED_TEXT, corpus_files, programs, seed_program_in_python

from kumeo_iac.errors import KumeoSpecError, KumeoSyntaxError, KumeoValidationError
from kumeo_iac.lang import format_program, format_text, parse
from kumeo_iac.spec import LLM, NATS, Program, Ref, WorkflowSpec

SEED_CANONICAL = """workflow FraudDetection {
  source: NATS("transactions")
  target: NATS("alerts")
  context: BayesianNetwork("risk.bn")

  agents: [
    LLM(
      "ollama/llama3",
      prompt: "Classify {{data}} as fraud? Context: {{context}}"
    ),

    MLModel(
      "isolation_forest.pkl",
      input: llm.output
    ),

    DecisionMatrix(
      "policy.dmx",
      input: ml_model.output
    )
  ]
}
"""


def assert_stable(text: str) -> str:
    """fmt(x) is a fixed point and means what x means; returns fmt(x)."""
    formatted = format_text(text)
    assert format_text(formatted) == formatted
    assert parse(formatted).program == parse(text).program
    return formatted


# -- canonical style -----------------------------------------------------------------------------------------------


def test_seed_canonical_form() -> None:
    assert format_text(SEED_TEXT) == SEED_CANONICAL


def test_the_python_dsl_program_prints_the_same() -> None:
    assert format_program(seed_program_in_python()) == SEED_CANONICAL


def test_canonical_style() -> None:
    text = r"""workflow Style {
  agents: [
    LLM(engine = "o/m", prompt = "line one\nline two", id = "llm"),
    LLM(id: "writer", engine: "o/m", prompt: "say \"hi\"\ttab", input: LLM.output),
    DataProcessor(id: "data_processor"),
    DataProcessor(input: writer.output, id: "data_processor_2",
                  config: { "a key": 1, "true": null, rules: { "x > 1": target.a } }),
  ]
  target: [NATS("a"), NATS("b")]
  source: NATS("in",)
  unknown_block: { v: 1.0, w: -2e-05, big: 100000000000000000000, e: "\u0001", "default": "x", list: [1, "a", b.c] }
}
"""
    assert assert_stable(text) == '''workflow Style {
  agents: [
    LLM(
      "o/m",
      prompt: """line one
line two"""
    ),

    LLM(
      id: "writer",
      engine: "o/m",
      prompt: "say \\"hi\\"\\ttab",
      input: LLM.output
    ),

    DataProcessor(),

    DataProcessor(
      input: writer.output,
      config: { "a key": 1, "true": null, rules: { "x > 1": target.a } }
    )
  ]

  target: [
    NATS("a"),
    NATS("b")
  ]

  source: NATS("in")

  unknown_block: {
    v: 1.0,
    w: -2e-05,
    big: 100000000000000000000,
    e: "\\u0001",
    default: "x",
    list: [1, "a", b.c]
  }
}
'''


def test_strings_that_cannot_be_triple_quoted_are_escaped() -> None:
    text = 'workflow W { config: { a: "x\\n\\"\\"\\"y", b: "ends\\nwith quote\\"", c: "cr\\r\\nlf" } }'
    formatted = assert_stable(text)
    assert 'a: "x\\n\\"\\"\\"y"' in formatted
    assert 'b: "ends\\nwith quote\\""' in formatted
    assert 'c: "cr\\r\\nlf"' in formatted


def test_single_argument_calls_stay_on_one_line_unless_too_long() -> None:
    long_subject = "s" * 120
    text = f'workflow W {{ source: NATS("{long_subject}") agents: [Router(rules: {{}})] }}'
    formatted = assert_stable(text)
    assert f'  source: NATS(\n    "{long_subject}"\n  )\n' in formatted
    assert "    Router(rules: {})\n" in formatted


def test_small_objects_stay_on_one_line() -> None:
    text = """workflow W {
  config: {
    thresholds: { block: 0.8, review: 0.5 },
    fields: ["a", "b"],
    high_value: 1000
  }
}
"""
    # nested small objects and flat lists of scalars fit on one line, so the whole object does
    assert assert_stable(text) == (
        'workflow W {\n  config: { thresholds: { block: 0.8, review: 0.5 }, fields: ["a", "b"], high_value: 1000 }\n}\n'
    )
    one_line = 'workflow W {\n  config: { a: 1, b: source.x, c: { d: null } }  // why\n}\n'
    assert assert_stable(one_line) == one_line


def test_objects_built_in_python_inline_by_width_alone() -> None:
    program = Program(workflows=[WorkflowSpec(name="W", config={"t": {"block": 0.8}, "n": 1})])
    assert format_program(program) == "workflow W {\n  config: { t: { block: 0.8 }, n: 1 }\n}\n"


def test_an_object_with_a_comment_inside_keeps_its_lines() -> None:
    text = """workflow W {
  config: {
    user: { url: "u",  // e.g. ghcr.io
      // credentials come from the environment
    },
    other: { a: 1 /* one */ },
    last: { b: 2 }
  }
}
"""
    assert assert_stable(text) == """workflow W {
  config: {
    user: {
      url: "u"  // e.g. ghcr.io
      // credentials come from the environment
    },
    other: {
      a: 1  /* one */
    },
    last: { b: 2 }
  }
}
"""


def test_objects_too_long_for_one_line_break() -> None:
    value = "v" * 40
    text = f'workflow W {{ config: {{ first: "{value}", second: "{value}", small: {{ a: 1 }} }} }}'
    assert assert_stable(text) == f"""workflow W {{
  config: {{
    first: "{value}",
    second: "{value}",
    small: {{ a: 1 }}
  }}
}}
"""


def test_objects_holding_calls_or_nested_lists_take_several_lines() -> None:
    text = 'workflow W { config: { q: Database("c", "q"), m: [[1]], o: [{ a: 1 }] } }'
    formatted = assert_stable(text)
    assert "  config: {\n    q: Database(\n" in formatted
    assert "    m: [\n      [1]\n    ],\n" in formatted and "    o: [{ a: 1 }]\n" in formatted


def test_integration_and_subworkflow() -> None:
    text = """integration { use: Enrich, workflow: Main,
  mapping: { output: { "x": target.out }, input: { "a": source.a, "b": Database("c", "SELECT 1") } } }
subworkflow Enrich { input: ["a", "b"], output: ["x"],
  context: KnowledgeBase("kb/customers.json"), agents: [DataProcessor()] }
"""
    assert assert_stable(text) == """integration {
  use: Enrich
  workflow: Main

  mapping: {
    output: { x: target.out },
    input: {
      a: source.a,
      b: Database(
        "c",
        "SELECT 1"
      )
    }
  }
}

subworkflow Enrich {
  input: ["a", "b"]
  output: ["x"]
  context: KnowledgeBase("kb/customers.json")

  agents: [
    DataProcessor()
  ]
}
"""


def test_context_ids_the_author_wrote_are_kept_and_none_are_invented() -> None:
    """Agents name contexts by id, so a written id stays even when it equals the one derived from the file."""
    text = 'workflow W { context: [KnowledgeBase("kb/faq.md", id: "faq"), KnowledgeBase("a.md")] }'
    formatted = assert_stable(text)
    assert 'KnowledgeBase(\n      "kb/faq.md",\n      id: "faq"\n    )' in formatted
    assert 'KnowledgeBase("a.md")' in formatted


def test_values_that_cannot_be_written_are_a_spec_error() -> None:
    program = Program(workflows=[WorkflowSpec(name="W", config={"x": math.inf})])
    with pytest.raises(KumeoSpecError):
        format_program(program)
    program = Program(workflows=[WorkflowSpec(name="W", config={"x": Ref(path=("not a name",))})])
    with pytest.raises(KumeoSpecError):
        format_program(program)


def test_empty_program_and_empty_bodies() -> None:
    assert format_program(Program()) == ""
    assert format_text("// only a comment") == "// only a comment\n"
    assert format_text("workflow A { }\nworkflow B {\n}") == "workflow A {}\n\nworkflow B {}\n"
    assert format_text("workflow A { // why\n}") == "workflow A {\n  // why\n}\n"


def test_text_with_import_errors_is_not_formatted() -> None:
    # The unknown kind is not in the Spec: printing the Spec would delete the user's agent.
    with pytest.raises(KumeoValidationError) as info:
        format_text('workflow W {\n  agents: [LLMM("o/m")]\n}', "w.kumeo")
    [diagnostic] = info.value.diagnostics
    assert diagnostic.format() == "w.kumeo:2:12: error: unknown agent kind 'LLMM' (did you mean 'LLM'?)"
    with pytest.raises(KumeoSyntaxError):
        format_text("workflow W {")


def test_unknown_names_are_kept_so_such_files_still_format() -> None:
    formatted = assert_stable('workflow W { agnets: [1], agents: [LLM("o/m", prompt: "p", temprature: 1)] }')
    assert "agnets: [1]" in formatted and "temprature: 1" in formatted


# -- comments ------------------------------------------------------------------------------------------------------

COMMENTED = """// file header
workflow W { // after the brace
      // before source (badly indented)
  source: NATS("in")  // trailing on source
  target: NATS(/* the subject */ "out")
  agents: [
    // before the first agent
    DataProcessor(id: "a", input: source),
    LLM("o/m", prompt: "p")
    // last words in the list
  ]
  config: {
    /* a block
       comment */
    x: 1, // one
    y: [1, 2] // two
    // end of config
  }
  // end of workflow
}
// end of file
"""

COMMENTED_CANONICAL = """// file header
workflow W {
  // after the brace
  // before source (badly indented)
  source: NATS("in")  // trailing on source

  target: NATS(
    /* the subject */
    "out"
  )

  agents: [
    // before the first agent
    DataProcessor(
      id: "a",
      input: source
    ),

    LLM(
      "o/m",
      prompt: "p"
    )
    // last words in the list
  ]

  config: {
    /* a block
       comment */
    x: 1,  // one
    y: [1, 2]  // two
    // end of config
  }
  // end of workflow
}
// end of file
"""


def test_comments_are_put_back_where_they_were() -> None:
    assert assert_stable(COMMENTED) == COMMENTED_CANONICAL


def test_format_program_without_comments_drops_them() -> None:
    result = parse(COMMENTED)
    assert "//" not in format_program(result.program)
    assert format_program(result.program, result.comments) == COMMENTED_CANONICAL


# -- the corpus and random programs --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", corpus_files() or [None], ids=lambda p: p.name if p else "no-corpus")
def test_corpus_formats_idempotently_and_keeps_meaning_and_comments(path: Path | None) -> None:
    if path is None:
        pytest.skip("upstream corpus not available")
    text = path.read_text(encoding="utf-8")
    formatted = assert_stable(text)
    before, after = parse(text).comments, parse(formatted).comments
    assert [c.text for c in after] == [c.text for c in before]  # every comment, in the same order
    assert formatted.endswith("}\n") and "\t" not in formatted


def test_corpus_comments_stay_with_their_entries() -> None:
    paths = [p for p in corpus_files() if p.name == "health_monitoring_system.kumeo"]
    if not paths:
        pytest.skip("upstream corpus not available")
    formatted = format_text(paths[0].read_text(encoding="utf-8"))
    assert "    // 4. Medical Analysis (LLM)\n    LLM(\n      id: \"medical_advisor\"," in formatted
    assert '      // Only trigger for high-risk cases\n      when: "analysis.risk_level' in formatted
    assert '        url: "${env.DOCKER_REGISTRY}"  // e.g., ghcr.io/your-org\n' in formatted
    assert '        // Reglas de formato\n        { name: "valid_json",' in formatted
    assert '      prompt: """\n        Analyze patient data and provide medical analysis.\n' in formatted


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs)
def test_random_programs_round_trip(program: Program) -> None:
    text = format_program(program)
    result = parse(text)
    assert result.diagnostics == []
    assert result.program == program
    assert format_text(text) == text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs, st.data())
def test_comments_anywhere_between_lines_are_stable(program: Program, data: st.DataObject) -> None:
    lines = format_program(program).split("\n")
    for _ in range(data.draw(st.integers(0, 6))):
        where = data.draw(st.integers(0, len(lines)))
        comment = data.draw(st.sampled_from(["// note", "/* block */", "/* two\n lines */"]))
        if data.draw(st.booleans()) and where < len(lines) and lines[where].strip():
            lines[where] += "  " + comment.replace("\n", " ") if comment.startswith("/*") else "  " + comment
        else:
            lines.insert(where, comment)
    text = "\n".join(lines) + "\n"
    original = parse(text)
    formatted = format_text(text)
    assert format_text(formatted) == formatted
    again = parse(formatted)
    assert again.program == original.program
    assert [c.text for c in again.comments] == [c.text for c in original.comments]


def test_python_programs_with_shared_refs_print_by_id() -> None:
    llm = LLM("o/m", prompt="p", id="writer")
    other = LLM("o/m", prompt="q", input=llm.output.text)
    program = Program(workflows=[WorkflowSpec(name="W", source=NATS("in"), agents=[llm, other])])
    formatted = format_program(program)
    assert "input: writer.output.text" in formatted
    assert parse(formatted).program == program
