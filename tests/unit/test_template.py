"""Prompt templates: substitution, #if/else blocks, errors at compile time, and nothing ever executed."""

from __future__ import annotations

import pytest

from kumeo_iac.errors import KumeoSyntaxError
from kumeo_iac.runtime.llm import compile_template


def render(text: str, data: object) -> str:
    return compile_template(text).render(data)


def test_substitution_of_fields_nested_paths_and_list_indexes():
    data = {"tx_id": "t1", "amount": 850, "score": 0.52, "customer": {"name": "Ana", "tags": ["vip", "eu"]}}
    out = render("Tx {{tx_id}}: {{ amount }} EUR, score {{score}}, {{customer.name}} ({{customer.tags.1}})", data)
    assert out == "Tx t1: 850 EUR, score 0.52, Ana (eu)"


def test_values_are_rendered_as_text_or_compact_json():
    data = {"flag": True, "off": False, "none": None, "obj": {"a": [1, None], "b": "é"}, "items": [1, 2]}
    assert render("{{flag}} {{off}} [{{none}}] {{obj}} {{items}}", data) == 'true false [] {"a":[1,null],"b":"é"} [1,2]'


def test_unknown_paths_render_as_the_empty_string():
    assert render("[{{missing}}][{{a.b.c}}][{{a.0}}][{{list.9}}]", {"a": {"b": 1}, "list": [1]}) == "[][][][]"
    assert render("{{x}}", "not an object") == ""


def test_if_else_and_nesting():
    text = "{{#if prior}}filed {{prior}} claims{{#if vip}} (VIP){{/if}}{{else}}first claim{{/if}}."
    assert render(text, {"prior": 2, "vip": True}) == "filed 2 claims (VIP)."
    assert render(text, {"prior": 2}) == "filed 2 claims."
    assert render(text, {"prior": 0}) == "first claim."
    assert render(text, {}) == "first claim."


@pytest.mark.parametrize("value", [None, False, 0, 0.0, "", [], {}, float("nan")])
def test_falsy_values(value):
    assert render("{{#if v}}yes{{else}}no{{/if}}", {"v": value}) == "no"


@pytest.mark.parametrize("value", [True, 1, -1, "0", "false", [0], {"a": None}])
def test_truthy_values(value):
    assert render("{{#if v}}yes{{else}}no{{/if}}", {"v": value}) == "yes"


def test_the_claims_triage_prompt():
    text = ("Claim: {{description}} (amount {{amount}} {{currency}}).\n"
            "{{#if prior_claims}}The customer filed {{prior_claims}} earlier claims.{{/if}}")
    assert render(text, {"description": "Car stolen", "amount": 24000, "currency": "USD", "prior_claims": 2}) == (
        "Claim: Car stolen (amount 24000 USD).\nThe customer filed 2 earlier claims.")
    assert render(text, {"description": "Worn carpet", "amount": 120}) == "Claim: Worn carpet (amount 120 ).\n"


def test_escaped_braces_are_literal():
    assert render(r"Use \{{name}} to insert {{name}}", {"name": "x"}) == "Use {{name}} to insert x"


@pytest.mark.parametrize("text", [
    "{{__import__('os').system('echo hacked')}}",
    "{{ amount + 1 }}",
    "{{ name() }}",
    "{{ a[0] }}",
    "{{ lambda: 1 }}",
    "{{ {{x}} }}",
])
def test_anything_but_a_path_is_a_syntax_error_never_evaluated(text):
    with pytest.raises(KumeoSyntaxError, match=r"not a path|without a closing"):
        compile_template(text, "LLM 'x' prompt")


def test_event_values_are_inserted_verbatim_never_expanded_or_evaluated():
    hostile = "{{__import__('os').system('echo hacked')}} {{secret}} {{#if x}}"
    out = render("Note: {{note}}", {"note": hostile, "secret": "s3cr3t", "x": True})
    assert out == f"Note: {hostile}"


def test_paths_never_reach_python_attributes():
    data = {"d": {"k": 1}, "s": "text", "n": 5}
    assert render("[{{d.__class__}}][{{s.upper}}][{{n.real}}][{{d.keys}}][{{__class__}}]", data) == "[][][][][]"


@pytest.mark.parametrize(("text", "message", "where"), [
    ("Hello\n  {{#if vip}}VIP", "unclosed {{#if vip}}", (2, 3)),
    ("{{/if}}", "{{/if}} without an opening {{#if}}", (1, 1)),
    ("a {{else}} b", "{{else}} outside an {{#if}} block", (1, 3)),
    ("{{#if a}}x{{else}}y{{else}}z{{/if}}", "a second {{else}}", (1, 20)),
    ("{{#each items}}{{/each}}", "unknown block {{#each}}", (1, 1)),
    ("{{#if a}}x{{/unless}}", "unknown closing tag", (1, 11)),
    ("text {{ name", "'{{' without a closing '}}'", (1, 6)),
])
def test_malformed_templates_are_syntax_errors_with_line_and_column(text, message, where):
    with pytest.raises(KumeoSyntaxError) as info:
        compile_template(text, "LLM 'summarize' prompt")
    error = info.value
    assert message in error.message
    assert (error.span.line, error.span.column) == where
    assert str(error).startswith(f"LLM 'summarize' prompt:{where[0]}:{where[1]}: error:")


def test_paths_used_are_reported():
    template = compile_template("{{a.b}} {{#if context.guide}}{{c}}{{/if}}")
    assert template.paths == {"a.b", "context.guide", "c"}
    assert template.uses_root("context") and not template.uses_root("con")
