"""What the importer says when a `.kumeo` file is wrong: syntax errors (raised) and importer diagnostics (returned).

Each case pins the message and the exact line:column, because that is what `kumeo check` prints.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kumeo_iac.errors import KumeoError, KumeoSyntaxError, Severity, SourceSpan
from kumeo_iac.lang import parse, parse_file
from kumeo_iac.spec import LLM, MLModel


def diagnostics(text: str) -> list[tuple[int, int, str, str | None]]:
    result = parse(text, "d.kumeo")
    for d in result.diagnostics:
        assert d.severity is Severity.ERROR and d.span is not None and d.span.path == "d.kumeo"
    return [(d.span.line, d.span.column, d.message, d.hint) for d in result.diagnostics]  # type: ignore[union-attr]


def syntax_error(text: str) -> KumeoSyntaxError:
    with pytest.raises(KumeoSyntaxError) as info:
        parse(text, "s.kumeo")
    error = info.value
    assert error.span is not None and error.span.path == "s.kumeo"
    assert "lark" not in str(error).lower() and "Token(" not in str(error)
    return error


# -- importer diagnostics ------------------------------------------------------------------------------------------


def test_unknown_agent_kind_with_did_you_mean_drops_the_node() -> None:
    text = 'workflow W {\n  agents: [\n    LLMM("o/m", prompt: "p"),\n    DataProcessor()\n  ]\n}'
    assert diagnostics(text) == [(3, 5, "unknown agent kind 'LLMM'", "did you mean 'LLM'?")]
    assert [a.kind_name for a in parse(text).program.workflows[0].agents] == ["DataProcessor"]


def test_unknown_kind_without_a_close_match_lists_the_kinds() -> None:
    text = 'workflow W { target: Carrier("x") }'
    assert diagnostics(text) == [
        (1, 22, "unknown target kind 'Carrier'", "target kinds are File, HTTP, Kafka, MQTT, NATS")
    ]


def test_a_kind_in_the_wrong_position() -> None:
    text = 'workflow W {\n  source: [NATS("a"), Database("db")]\n}'
    assert diagnostics(text) == [
        (
            2,
            23,
            "'Database' is a context kind, not a source kind",
            "source kinds are File, HTTP, Kafka, MQTT, NATS, Timer",
        )
    ]


def test_too_many_positional_arguments() -> None:
    text = 'workflow W {\n  agents: [LLM("o/m", "extra", prompt: "p")]\n}'
    [(line, column, message, _)] = diagnostics(text)
    assert (line, column) == (2, 23)
    assert message == "LLM() takes at most 1 positional argument (engine), 2 given"
    llm = parse(text).program.workflows[0].agents[0]
    assert isinstance(llm, LLM) and llm.engine == "o/m"


def test_positional_argument_to_a_kind_that_takes_none() -> None:
    text = 'workflow W { agents: [Router("x", rules: {})] }'
    assert diagnostics(text)[0][:3] == (1, 30, "Router() takes no positional arguments, 1 given")


def test_wrong_argument_types_are_reported_and_the_node_is_kept() -> None:
    text = """workflow W {
  agents: [
    LLM("o/m", prompt: "p", temperature: "hot", max_tokens: 1.5),
    MLModel("m.onnx", timeout: [1], features: "amount")
  ]
}
"""
    assert diagnostics(text) == [
        (3, 42, "invalid value for 'temperature' of LLM: expected a number, got \"hot\"", None),
        (3, 61, "invalid value for 'max_tokens' of LLM: expected an integer, got 1.5", None),
        (4, 32, "invalid value for 'timeout' of MLModel: expected a string, an integer or a number, got a list", None),
        (4, 47, "invalid value for 'features' of MLModel: expected a list of strings, got \"amount\"", None),
    ]
    llm, model = parse(text).program.workflows[0].agents
    assert isinstance(llm, LLM) and llm.prompt == "p" and llm.temperature is None and "temperature" not in llm.arg_spans
    assert isinstance(model, MLModel) and model.model == "m.onnx" and model.timeout is None


def test_a_bare_path_where_a_string_is_needed() -> None:
    text = 'workflow W { agents: [DataProcessor(output: validated.tx)] }'
    assert diagnostics(text) == [
        (1, 45, "invalid value for 'output' of DataProcessor: expected a string, got the bare path validated.tx", None)
    ]


def test_argument_given_twice() -> None:
    text = 'workflow W {\n  agents: [MLModel("a.onnx", model: "b.onnx", x: 1, x = 2)]\n}'
    assert diagnostics(text) == [
        (2, 30, "argument 'model' of MLModel given twice", "first given at line 2, column 20"),
        (2, 53, "argument 'x' of MLModel given twice", "first given at line 2, column 47"),
    ]


def test_duplicate_workflow_key_keeps_the_first() -> None:
    text = 'workflow W {\n  source: NATS("a")\n  source: NATS("b")\n}'
    assert diagnostics(text) == [
        (3, 3, "duplicate 'source' in workflow 'W'", "first given at line 2, column 3")
    ]
    assert parse(text).program.workflows[0].sources[0].subject == "a"


def test_duplicate_key_in_an_object() -> None:
    text = 'workflow W {\n  config: {\n    a: 1,\n    a: 2\n  }\n}'
    assert diagnostics(text) == [(4, 5, "duplicate 'a' in object", "first given at line 3, column 5")]


def test_something_else_than_a_call_where_agents_are_listed() -> None:
    text = 'workflow W {\n  agents: [DataProcessor(), "summariser"]\n  source: "orders"\n}'
    assert diagnostics(text) == [
        (2, 29, 'expected an agent like LLM("ollama/llama3", prompt: "…"), got "summariser"', None),
        (3, 11, 'expected a source like NATS("subject"), got "orders"', None),
    ]


def test_workflow_level_types() -> None:
    text = (
        'workflow W {\n  nats: 4222\n  models: ["a"]\n  monitor: "grafana"\n'
        '  deployment: { scaling: 3, resources: { default: "big" } }\n}'
    )
    assert diagnostics(text) == [
        (2, 9, "invalid value for 'nats' of workflow 'W': expected a string, got 4222", None),
        (3, 11, "invalid value for 'models' of workflow 'W': expected an object, got a list", None),
        (4, 12, "invalid value for 'monitor' of workflow 'W': expected an object, got \"grafana\"", None),
        (5, 26, "invalid value for 'scaling' of deployment: expected an object, got 3", None),
        (5, 51, "invalid value for 'resources.default' of deployment: expected an object, got \"big\"", None),
    ]


def test_subworkflow_and_integration_problems() -> None:
    text = """subworkflow S { inputs: ["a"] }
integration { workflow: W, use: S, mapping: { inptu: {} }, extra: 1 }
integration { use: S }
integration { workflow: 5, use: S }
"""
    assert diagnostics(text) == [
        (1, 17, "unknown key 'inputs' in subworkflow 'S'", "did you mean 'input'?"),
        (2, 47, "unknown key 'inptu' in mapping", "did you mean 'input'?"),
        (2, 60, "unknown key 'extra' in integration", "an integration has workflow, use and mapping"),
        (3, 1, "integration is missing 'workflow'",
         "write `integration { workflow: MyWorkflow, use: MySubworkflow, mapping: { … } }`"),
        (4, 1, "integration is missing 'workflow'",
         "write `integration { workflow: MyWorkflow, use: MySubworkflow, mapping: { … } }`"),
        (4, 25, "'workflow' of integration expects a workflow name, got 5", None),
    ]


def test_diagnostics_are_sorted_by_position() -> None:
    text = 'workflow W { agents: [Foo()] }\nworkflow V { agents: [Bar()] }'
    lines = [line for line, *_ in diagnostics(text)]
    assert lines == sorted(lines) == [1, 2]


# -- syntax errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("workflow W {\n  source: }\n", 2, 11, "unexpected '}'; expected a value"),
        ('workflow W {\n  source NATS("x")\n}', 2, 10, "expected ':' after 'source'"),
        ('workflow W {\n  source = NATS("x")\n}', 2, 10, "expected ':' after 'source'"),
        ('workflow W {\n  nats: "nats://n\n}', 2, 9, "unterminated string"),
        ('workflow W {\n  prompt: """never closed\n}', 2, 11, "unterminated triple-quoted string"),
        ("workflow W {\n  /* never closed\n}", 2, 3, "unterminated comment"),
        ('workflow W {\n  nats: "a\\qb"\n}', 2, 11, "invalid escape '\\q' in string"),
        ("workflow W {\n  nats: 'x'\n}", 2, 9, "unexpected character \"'\""),
        ("workflow W {\n  a: @\n}", 2, 6, "unexpected character '@'"),
        ("workflow W {\n  a: [1, 2\n}", 3, 1, "unexpected '}'; expected ',' or ']'"),
        ('workflow W {\n  a: f(x: 1 y: 2)\n}', 2, 13, "unexpected 'y'; expected ',' or ')'"),
        ('workflow W {\n  source: NATS("x")', 2, 20, "unexpected end of file; expected '}'"),
        ("workflow W Extra {}", 1, 12, "unexpected 'Extra'; expected '{'"),
        ("{}", 1, 1, "unexpected '{'; expected 'workflow', 'subworkflow' or 'integration'"),
        ("workflow {}", 1, 10, "expected a name after 'workflow'"),
        ("subworkflow { }", 1, 13, "expected a name after 'subworkflow'"),
    ],
)
def test_syntax_errors_say_what_and_where(text: str, line: int, column: int, message: str) -> None:
    error = syntax_error(text)
    assert (error.span.line, error.span.column, error.message) == (line, column, message)  # type: ignore[union-attr]


def test_misspelled_top_level_keyword_suggests_the_keyword() -> None:
    error = syntax_error("// a file\nworklow W {\n}")
    assert error.span == SourceSpan("s.kumeo", 2, 1)
    assert error.message == "expected 'workflow', 'subworkflow' or 'integration', found 'worklow'"
    assert error.hint == "did you mean 'workflow'?"
    error = syntax_error("subworkfow: X")
    assert (error.span.line, error.span.column, error.hint) == (1, 1, "did you mean 'subworkflow'?")  # type: ignore[union-attr]


def test_unclosed_bracket_hint_points_at_the_opening() -> None:
    error = syntax_error('workflow W {\n  agents: [\n    DataProcessor(\n')
    assert error.message == "unexpected end of file; expected ')'"
    assert error.hint == "the '(' at line 3, column 18 is not closed"
    error = syntax_error("workflow W {\n  a: [1, 2 }\n}")
    assert error.hint == "the '[' at line 2, column 6 is not closed"
    # an object left open: the error is where the parser noticed, and the hint points at the brace itself
    error = syntax_error('workflow W {\n  agents: [\n    DataProcessor(id: "c", config: { fields: ["a"] ),\n  ]\n}')
    assert (error.span.line, error.span.column) == (3, 52)  # type: ignore[union-attr]
    assert error.hint == "the '{' at line 3, column 36 is not closed"
    error = syntax_error('workflow W {\n  source: NATS("in")\n')
    assert error.message == "unexpected end of file; expected '}'"
    assert error.hint == "the '{' at line 1, column 12 is not closed"


def test_multiline_string_hint() -> None:
    error = syntax_error('workflow W { prompt: "one\ntwo" }')
    assert error.hint is not None and '"""' in error.hint


def test_syntax_error_is_a_kumeo_error_with_one_diagnostic() -> None:
    error = syntax_error("workflow W {")
    assert isinstance(error, KumeoError)
    [diagnostic] = error.diagnostics
    assert diagnostic.format().startswith("s.kumeo:1:")


# -- files ---------------------------------------------------------------------------------------------------------


def test_parse_file_uses_the_path_in_every_span(tmp_path: Path) -> None:
    path = tmp_path / "w.kumeo"
    path.write_text('workflow W {\n  agents: [Nope()]\n}\n', encoding="utf-8")
    result = parse_file(path)
    assert result.program.path == str(path)
    assert result.program.workflows[0].span.path == str(path)  # type: ignore[union-attr]
    [diagnostic] = result.diagnostics
    assert diagnostic.span == SourceSpan(str(path), 2, 12, 2, 17)
    assert diagnostic.format().startswith(f"{path}:2:12: error: unknown agent kind 'Nope' (agent kinds are ")


def test_invalid_utf8_is_reported_at_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "bad.kumeo"
    path.write_bytes('workflow W {\n  nats: "é\xff"\n}\n'.encode("latin-1").replace(b"\xe9", "é".encode()))
    with pytest.raises(KumeoSyntaxError) as info:
        parse_file(path)
    assert info.value.message == "invalid UTF-8 byte 0xff"
    assert info.value.span == SourceSpan(str(path), 2, 11)


def test_invalid_utf8_on_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.kumeo"
    path.write_bytes(b"\xc3(workflow")
    with pytest.raises(KumeoSyntaxError) as info:
        parse_file(path)
    assert (info.value.message, info.value.span) == ("invalid UTF-8 byte 0xc3", SourceSpan(str(path), 1, 1))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.kumeo"
    with pytest.raises(KumeoSyntaxError) as info:
        parse_file(path)
    assert info.value.span == SourceSpan(str(path), 1, 1)
    assert info.value.message == "cannot read file: No such file or directory"


def test_directory_is_not_readable_as_a_file(tmp_path: Path) -> None:
    with pytest.raises(KumeoSyntaxError) as info:
        parse_file(tmp_path)
    assert info.value.span == SourceSpan(str(tmp_path), 1, 1)
    assert info.value.message.startswith("cannot read file: ")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.kumeo"
    path.write_text("workflow W {}", encoding="utf-8")
    path.chmod(0)
    with pytest.raises(KumeoSyntaxError) as info:
        parse_file(path)
    assert info.value.message == "cannot read file: Permission denied"


def test_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.kumeo"
    path.write_bytes(b"\xef\xbb\xbfworkflow W {}")
    result = parse_file(path)
    assert result.program.workflows[0].span == SourceSpan(str(path), 1, 1, 1, 13)
