"""Broken input never breaks the importer: whatever the text, parse() returns or raises a KumeoError with a position.

Mutations of corpus-like text (characters deleted, inserted, swapped, the text cut short) reach the error paths a
user hits while typing; purely random text covers the lexer. Whenever a mutant still parses, formatting it must
keep its meaning, so the formatter is fuzzed too.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lang_helpers import SEED_TEXT

from kumeo_iac.errors import KumeoError, KumeoSyntaxError
from kumeo_iac.lang import format_program, parse

CORPUS_LIKE = '''// Alerts for a shop
workflow Shop {
  nats: "nats://nats:4222"
  source: NATS("orders.raw")
  target: [NATS("alerts.high"), NATS("orders.done")]
  models: { scorer: { file: "scorer.onnx", type: "onnx" } }
  agents: [
    /* validation */
    DataProcessor(id: "validator", input: "source", output: "orders.valid",
      config: { required_fields: ["id", "amount"], threshold: -1.5e3 }),
    LLM(
      id = "writer",
      input: { order: validator.output },
      provider: { ollama: { model: "llama3", temperature: 0.3 } },
      prompt: """
        Summarise {{order}} in one line.
      """
    ),
    Router(input: writer.output, rules: { "score > 0.8": "target.alerts.high", "default": "target.orders.done" })
  ]
  monitor: { metrics: ["latency"], dashboard: "shop" }
  deployment: { resources: { default: { cpu: "500m", memory: "1Gi" } }, scaling: { min_replicas: 1, max_replicas: 3 } }
}
integration { workflow: Shop, use: Enrich, mapping: { input: { "a": source.x, "b": Database("c", "q") } } }
subworkflow Enrich { input: ["a"], output: ["b"], agents: [DataProcessor()] }
'''

SAMPLES = [CORPUS_LIKE, SEED_TEXT]
CHARACTERS = st.sampled_from(list('{}[]():,=."\\/*\n \tabcxyzLM0123456789-+eE_é\x00\u2028'))
SNIPPETS = CHARACTERS | st.sampled_from(['"""', "//", "/*", "*/", "true", "LLM(", "agents:", "\\u12"])


def check(text: str) -> None:
    """The property itself: only KumeoErrors, always positioned; what parses also formats faithfully."""
    try:
        result = parse(text, "fuzz.kumeo")
    except KumeoSyntaxError as error:
        assert error.span is not None and error.span.line >= 1 and error.span.column >= 1, error
        assert error.span.path == "fuzz.kumeo"
        assert error.message and "Token(" not in error.message
        return
    except KumeoError:
        return
    for diagnostic in result.diagnostics:
        assert diagnostic.span is not None and diagnostic.span.line >= 1 and diagnostic.span.column >= 1
    formatted = format_program(result.program, result.comments)
    assert parse(formatted).program == result.program


@st.composite
def mutants(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SAMPLES))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        where = draw(st.integers(0, len(text) - 1))
        operation = draw(st.sampled_from(["delete", "insert", "swap", "truncate", "duplicate"]))
        if operation == "delete":
            text = text[:where] + text[where + draw(st.integers(1, 8)) :]
        elif operation == "insert":
            text = text[:where] + draw(SNIPPETS) + text[where:]
        elif operation == "swap" and where + 1 < len(text):
            text = text[:where] + text[where + 1] + text[where] + text[where + 2 :]
        elif operation == "truncate":
            text = text[:where]
        else:
            end = min(len(text), where + draw(st.integers(1, 30)))
            text = text[:end] + text[where:end] + text[end:]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants())
def test_mutated_programs_only_raise_positioned_kumeo_errors(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=CHARACTERS, max_size=60) | st.lists(SNIPPETS, max_size=30).map("".join) | st.text(max_size=40))
def test_random_text_only_raises_positioned_kumeo_errors(text: str) -> None:
    check(text)


def test_samples_themselves_parse_cleanly() -> None:
    for sample in SAMPLES:
        assert parse(sample).diagnostics == []


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    check("workflow W { config: { a: " + "[" * 5000 + "]" * 5000 + " } }")
