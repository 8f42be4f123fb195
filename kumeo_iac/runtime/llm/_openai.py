"""The OpenAI chat-completions API (``POST {base_url}/chat/completions``), as served by OpenAI, vLLM, llama.cpp…

JSON mode sends ``response_format: {"type": "json_object"}``; with a schema (``structured_output``) it sends
``{"type": "json_schema", "json_schema": {"name": "output", "schema": …}}`` (non-strict, so any JSON Schema works).
"""

from __future__ import annotations

from typing import Any

from kumeo_iac._llm_endpoints import DEFAULT_BASE_URLS
from kumeo_iac.runtime.llm._errors import LLMError, LLMRejected
from kumeo_iac.runtime.llm._http import ChatClient
from kumeo_iac.runtime.llm._types import ChatReply, ChatRequest

__all__ = ["DEFAULT_OPENAI_BASE_URL", "OpenAIClient"]

DEFAULT_OPENAI_BASE_URL = DEFAULT_BASE_URLS["openai"]


class OpenAIClient(ChatClient):
    """A client of any OpenAI-compatible chat-completions endpoint."""

    provider = "openai"

    @staticmethod
    def body(request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "messages": request.message_dicts(), "stream": False}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": request.schema}}
        elif request.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    async def complete(self, request: ChatRequest, deadline: float) -> ChatReply:
        data = await self.post_json("/chat/completions", self.body(request), deadline)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LLMError(f"openai {self.base_url}: the answer has no choices")
        choice = choices[0]
        answered = choice.get("message")
        message = answered if isinstance(answered, dict) else {}
        content = message.get("content")
        if content is None and message.get("refusal"):
            raise LLMRejected(f"openai: the model refused: {message['refusal']}")
        counted = data.get("usage")
        usage = counted if isinstance(counted, dict) else {}
        return ChatReply(
            text=content if isinstance(content, str) else "",
            model=str(data.get("model") or request.model),
            usage={k: int(usage[k]) for k in ("prompt_tokens", "completion_tokens") if isinstance(usage.get(k), int)},
            finish_reason=choice.get("finish_reason"),
        )
