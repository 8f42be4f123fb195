"""A kind is one place: the hooks a kind overrides (``Agent.expressions``, ``Agent.egress_urls``) drive `kumeo check`
and the agent's NetworkPolicy, for a kind of one's own as for the built-ins; no kind names in validate or compile."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from kumeo_iac.compile import compile_program
from kumeo_iac.errors import SourceSpan
from kumeo_iac.spec import (
    LLM,
    NATS,
    Agent,
    HumanReview,
    KindExpression,
    KindProblem,
    LocatedStr,
    Program,
    WorkflowSpec,
    arg,
)
from kumeo_iac.validate import validate


class Stamp(Agent):
    """A kind of one's own (never registered, so no other test sees it): ``unless`` and ``fields`` hold
    expressions, and it posts to ``audit_url``."""

    kind_name: ClassVar[str] = "Stamp"
    runtime_handler: ClassVar[str] = "stamp:StampAgent"

    unless: str | None = arg("An expression.")
    fields: Any = arg("A list of expressions.")
    audit_url: str | None = arg("Where each stamp is posted.")

    def expressions(self) -> Iterator[KindExpression | KindProblem]:
        if self.unless is not None:
            yield KindExpression(self.located("unless"), "`unless`", "unless")
        if isinstance(self.fields, list):
            for i, text in enumerate(self.fields):
                yield KindExpression(text, f"field {i + 1}", "fields")
        elif self.fields is not None:
            yield KindProblem("fields", " must be a list of expressions", "fields", self.fields)

    @classmethod
    def egress_urls(cls, settings: Any) -> list[str]:
        url = settings.get("audit_url")
        return [url] if isinstance(url, str) else []


def program(agent: Agent) -> Program:
    return Program(workflows=[WorkflowSpec(name="W", source=NATS("in"), target=[NATS("out")], agents=[agent])])


def test_check_parses_the_expressions_a_kind_declares_and_reports_its_problems() -> None:
    quote = SourceSpan("wf.kumeo", 4, 12)
    stamp = Stamp(id="s", input="source", unless="amount >", fields=["x +", LocatedStr("ok", quote, quote)],
                  arg_spans={"unless": SourceSpan("wf.kumeo", 3, 10), "fields": SourceSpan("wf.kumeo", 4, 3)})
    diags = [d for d in validate(program(stamp)) if d.code == "expression"]
    assert [d.message.split(" does not parse")[0] for d in diags] == ["`unless` of Stamp 's'", "field 1 of Stamp 's'"]
    assert (diags[0].span.line, diags[1].span.line) == (3, 4)  # at the argument that holds each one
    wrong = Stamp(id="s", input="source", fields="x + 1", arg_spans={"fields": SourceSpan("wf.kumeo", 5, 3)})
    problem = next(d for d in validate(program(wrong)) if d.code == "bad-value")
    assert problem.message == "fields of Stamp 's' must be a list of expressions"
    assert problem.span == SourceSpan("wf.kumeo", 5, 3)
    fine = Stamp(id="s", input="source", unless="amount > 5", fields=["x + 1"])
    assert not [d for d in validate(program(fine)) if d.code in ("expression", "bad-value")]


def test_compile_keeps_the_urls_a_kind_declares_and_its_network_policy_lets_the_pod_reach_them() -> None:
    plan = compile_program(program(Stamp(id="s", input="source", audit_url="https://audit.example.com:8443/x")))
    wf = plan.workflows[0]
    assert wf.agent("s").egress == ["https://audit.example.com:8443/x"]
    policy = next(o for o in wf.kubernetes if o["metadata"]["name"] == "w-agents-egress")
    assert policy["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 8443}]  # outside the cluster
    quiet = compile_program(program(Stamp(id="s", input="source"))).workflows[0]
    assert quiet.agent("s").egress == [] and not [o for o in quiet.kubernetes
                                                  if o["metadata"]["name"] == "w-agents-egress"]


def test_the_built_in_kinds_declare_their_outbound_urls_from_their_settings() -> None:
    assert LLM.egress_urls({"engine": "openai/gpt-4o-mini"}) == ["https://api.openai.com/v1"]
    assert LLM.egress_urls({"engine": "ollama/llama3", "config": {"base_url": "ollama.ai.svc:11434"}}) == [
        "http://ollama.ai.svc:11434"]
    assert LLM.egress_urls({"provider": {"openai": {"model": "m", "base_url": "http://vllm:8000/v1/"}}}) == [
        "http://vllm:8000/v1"]
    assert LLM.egress_urls({"engine": "nonsense"}) == ["https://api.openai.com/v1"]  # refused at start anyway
    assert HumanReview.egress_urls({"config": {"notifications": {"webhook": "https://hooks.example.com/r"},
                                               "escalation_path": ["ops", "https://pager.example.com/p"]}}) == [
        "https://hooks.example.com/r", "https://pager.example.com/p"]
    assert HumanReview.egress_urls({}) == [] and Agent.egress_urls({"base_url": "http://x"}) == []
