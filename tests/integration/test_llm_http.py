"""The LLM clients on the wire, against loopback HTTP servers written here.

``OllamaStandIn`` stands in for an Ollama server, which cannot run here: it answers ``POST /api/chat`` and
``POST /api/generate`` with the request and response shapes of Ollama's documented API (docs/api.md: non-streaming
``"stream": false`` replies, ``message.content`` / ``response``, ``done``, ``eval_count``…, ``{"error": "…"}`` with
an HTTP status on failure). The OpenAI-side tests use the same server scripted to fail first (429/503 with
``Retry-After``), to check the retry policy on real sockets and real clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from kumeo_iac.runtime.llm import (
    ChatRequest,
    LLMError,
    LLMRejected,
    OllamaClient,
    OpenAIClient,
    RetryPolicy,
)

pytestmark = pytest.mark.timeout(60)

Handler = Callable[[str, str, dict[str, str], Any], tuple[int, dict[str, str], Any]]


class LoopbackServer:
    """A minimal HTTP/1.1 server on 127.0.0.1 (keep-alive, Content-Length bodies) calling ``handler`` per request.

    Every request is recorded as ``(method, path, headers, json_body, monotonic_time)``.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, str], Any, float]] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> LoopbackServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                body = json.loads(raw) if raw else None
                self.requests.append((method, path, headers, body, time.monotonic()))
                status, extra, reply = self.handler(method, path, headers, body)
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(data)}"]
                head += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


class OllamaStandIn:
    """Answers like Ollama's documented /api/chat and /api/generate (non-streaming), for one pulled model."""

    def __init__(self, model: str = "llama3") -> None:
        self.model = model

    def __call__(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict, Any]:
        if method != "POST" or path not in ("/api/chat", "/api/generate"):
            return 404, {}, "404 page not found"
        if body.get("model") != self.model:
            return 404, {}, {"error": f"model '{body.get('model')}' not found, try pulling it first"}
        json_mode = body.get("format") == "json"
        if path == "/api/chat":
            user = body["messages"][-1]["content"]
            text = json.dumps({"echo": user}) if json_mode else f"chat: {user}"
            reply = {"model": self.model, "created_at": "2024-12-06T00:46:58.265747Z",
                     "message": {"role": "assistant", "content": text}}
        else:
            text = json.dumps({"echo": body["prompt"]}) if json_mode else f"generate: {body['prompt']}"
            reply = {"model": self.model, "created_at": "2024-12-06T00:46:58.265747Z", "response": text,
                     "context": [1, 2, 3]}
        reply.update({"done": True, "done_reason": "stop", "total_duration": 1075509083, "load_duration": 567678,
                      "prompt_eval_count": 28, "prompt_eval_duration": 236000000, "eval_count": 16,
                      "eval_duration": 269000000})
        return 200, {}, reply


def llm_agent(settings: dict[str, Any], base_dir: Any) -> Any:
    import dataclasses

    from worker_support import agent_plan, workflow_plan

    from kumeo_iac.runtime.agents.llm import LLMAgent

    plan = dataclasses.replace(agent_plan("llm", "ask", {"": "src.llm.in"}, kind="LLM", timeout=10),
                               settings=settings)
    return LLMAgent(plan, workflow_plan("llm", [plan]), base_dir)


def _request(**kwargs: Any) -> ChatRequest:
    defaults: dict[str, Any] = {"model": "llama3", "messages": (("system", "Be brief."), ("user", "Hello"))}
    return ChatRequest(**{**defaults, **kwargs})


def _deadline(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


# -- Ollama wire format -----------------------------------------------------------------------------------------


async def test_ollama_chat_request_and_reply_shapes():
    async with LoopbackServer(OllamaStandIn()) as server:
        client = OllamaClient(server.url)
        try:
            reply = await client.complete(_request(temperature=0.2, max_tokens=32), _deadline())
        finally:
            await client.aclose()
    method, path, _, body, _ = server.requests[0]
    assert (method, path) == ("POST", "/api/chat")
    assert body == {"model": "llama3", "stream": False,
                    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
                    "options": {"temperature": 0.2, "num_predict": 32}}
    assert reply.text == "chat: Hello"
    assert reply.model == "llama3"
    assert reply.usage == {"prompt_tokens": 28, "completion_tokens": 16}
    assert reply.finish_reason == "stop"


async def test_ollama_generate_sends_prompt_and_system_and_json_format():
    async with LoopbackServer(OllamaStandIn()) as server:
        client = OllamaClient(server.url, api="generate")
        try:
            reply = await client.complete(_request(json_mode=True), _deadline())
        finally:
            await client.aclose()
    _, path, _, body, _ = server.requests[0]
    assert path == "/api/generate"
    assert body == {"model": "llama3", "stream": False, "prompt": "Hello", "system": "Be brief.", "format": "json"}
    assert json.loads(reply.text) == {"echo": "Hello"}


async def test_ollama_structured_output_sends_the_schema_as_format():
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
    async with LoopbackServer(OllamaStandIn()) as server:
        client = OllamaClient(server.url)
        try:
            await client.complete(_request(json_mode=True, schema=schema), _deadline())
        finally:
            await client.aclose()
    assert server.requests[0][3]["format"] == schema


async def test_ollama_unknown_model_is_a_permanent_rejection_with_its_message():
    async with LoopbackServer(OllamaStandIn()) as server:
        client = OllamaClient(server.url)
        try:
            with pytest.raises(LLMRejected) as info:
                await client.complete(_request(model="mistral"), _deadline())
        finally:
            await client.aclose()
    assert info.value.status == 404
    assert "HTTP 404" in str(info.value) and "model 'mistral' not found" in str(info.value)
    assert len(server.requests) == 1  # a 4xx is not retried


async def test_llm_agent_end_to_end_on_the_ollama_stand_in(tmp_path):
    """The agent (provider object, generate api, JSON mode) against the stand-in, without NATS."""
    async with LoopbackServer(OllamaStandIn()) as server:
        agent = llm_agent({"provider": {"ollama": {"model": "llama3", "temperature": 0.1, "max_tokens": 20,
                                                   "base_url": server.url, "api": "generate"}},
                           "prompt": "Claim {{claim_id}}", "json_mode": True}, base_dir=tmp_path)
        await agent.start()
        try:
            from kumeo_iac.runtime._agent import Event

            [emit] = await agent.process(Event("e1", {"claim_id": "c-1"}))
        finally:
            await agent.stop()
    assert emit.data == {"claim_id": "c-1", "echo": "Claim c-1", "llm": {"model": "llama3", "cached": False}}
    body = server.requests[0][3]
    assert body["options"] == {"temperature": 0.1, "num_predict": 20} and body["format"] == "json"
    assert "JSON" in body["system"]


# -- retries (OpenAI-compatible endpoint) -------------------------------------------------------------------------


def _openai_reply(text: str = "ok") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


def _scripted(*answers: tuple[int, dict[str, str], Any]) -> Handler:
    queue = list(answers)

    def handler(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict, Any]:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


async def test_openai_429_with_retry_after_is_waited_for_then_succeeds():
    handler = _scripted((429, {"Retry-After": "1"}, {"error": {"message": "Rate limit reached", "type": "x"}}),
                        (200, {}, _openai_reply("hello")))
    async with LoopbackServer(handler) as server:
        client = OpenAIClient(server.url + "/v1", api_key="sk-test-secret", policy=RetryPolicy(retries=3))
        try:
            reply = await client.complete(_request(model="gpt-4o-mini"), _deadline())
        finally:
            await client.aclose()
    assert reply.text == "hello"
    assert [r[1] for r in server.requests] == ["/v1/chat/completions"] * 2
    waited = server.requests[1][4] - server.requests[0][4]
    assert 0.9 <= waited < 3.0, waited  # the server's Retry-After (1 s), not the 0.5 s backoff
    assert server.requests[0][2]["authorization"] == "Bearer sk-test-secret"


async def test_openai_503_retried_with_backoff_then_transient_error_naming_the_status():
    handler = _scripted((503, {}, {"error": {"message": "overloaded"}}))
    async with LoopbackServer(handler) as server:
        client = OpenAIClient(server.url + "/v1", api_key="sk-test-secret",
                              policy=RetryPolicy(retries=2, base_delay=0.05))
        try:
            with pytest.raises(LLMError) as info:
                await client.complete(_request(model="gpt-4o-mini"), _deadline())
        finally:
            await client.aclose()
    assert not isinstance(info.value, LLMRejected)  # transient: the worker retries the event
    assert len(server.requests) == 3
    assert "HTTP 503: overloaded" in str(info.value)
    assert "sk-test-secret" not in str(info.value)


async def test_retry_after_longer_than_the_cap_goes_back_to_the_worker_at_once():
    handler = _scripted((429, {"Retry-After": "120"}, {"error": {"message": "slow down"}}))
    async with LoopbackServer(handler) as server:
        client = OpenAIClient(server.url + "/v1", policy=RetryPolicy(retries=3, max_delay=5))
        began = time.monotonic()
        try:
            with pytest.raises(LLMError, match="retry after 120 s"):
                await client.complete(_request(model="gpt-4o-mini"), _deadline())
        finally:
            await client.aclose()
    assert time.monotonic() - began < 2 and len(server.requests) == 1


async def test_a_retry_never_waits_past_the_deadline():
    handler = _scripted((503, {"Retry-After": "3"}, {"error": {"message": "busy"}}))
    async with LoopbackServer(handler) as server:
        client = OpenAIClient(server.url + "/v1", policy=RetryPolicy(retries=3, max_delay=10))
        began = time.monotonic()
        try:
            with pytest.raises(LLMError, match="HTTP 503"):
                await client.complete(_request(model="gpt-4o-mini"), _deadline(1.0))
        finally:
            await client.aclose()
    assert time.monotonic() - began < 1.0 and len(server.requests) == 1


async def test_openai_400_is_rejected_with_the_servers_message():
    handler = _scripted((400, {}, {"error": {"message": "'messages' must contain the word 'json'", "code": None}}))
    async with LoopbackServer(handler) as server:
        client = OpenAIClient(server.url + "/v1")
        try:
            with pytest.raises(LLMRejected, match="HTTP 400: 'messages' must contain the word 'json'"):
                await client.complete(_request(model="gpt-4o-mini", json_mode=True), _deadline())
        finally:
            await client.aclose()
    assert server.requests[0][3]["response_format"] == {"type": "json_object"}


async def test_unreachable_server_is_a_transient_error():
    async with LoopbackServer(_scripted((200, {}, {}))) as server:
        url = server.url
    client = OpenAIClient(url + "/v1", policy=RetryPolicy(retries=1, base_delay=0.01))
    try:
        with pytest.raises(LLMError, match="cannot reach the server"):
            await client.complete(_request(model="m"), _deadline())
    finally:
        await client.aclose()
