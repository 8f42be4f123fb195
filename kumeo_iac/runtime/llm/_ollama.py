"""Ollama's native API: ``POST /api/chat`` (default) or ``POST /api/generate`` (``api: "generate"``).

Requests are sent with ``"stream": false`` so the answer is one JSON object; JSON mode sends ``"format": "json"``
(or the JSON Schema itself with ``structured_output``); temperature and max_tokens go in ``options`` as
``temperature`` and ``num_predict``. Errors come back as ``{"error": "…"}`` with an HTTP status.
"""

from __future__ import annotations

from typing import Any

from kumeo_iac._llm_endpoints import DEFAULT_BASE_URLS
from kumeo_iac.runtime.llm._errors import LLMError
from kumeo_iac.runtime.llm._http import ChatClient
from kumeo_iac.runtime.llm._types import ChatReply, ChatRequest

__all__ = ["DEFAULT_OLLAMA_BASE_URL", "OLLAMA_APIS", "OllamaClient"]

DEFAULT_OLLAMA_BASE_URL = DEFAULT_BASE_URLS["ollama"]
OLLAMA_APIS = ("chat", "generate")


class OllamaClient(ChatClient):
    """A client of an Ollama server's native chat (or generate) endpoint."""

    provider = "ollama"

    def __init__(self, base_url: str, *, api: str = "chat", **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        if api not in OLLAMA_APIS:
            raise ValueError(f"unknown Ollama api {api!r}")
        self.api = api

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "stream": False}
        if self.api == "chat":
            body["messages"] = request.message_dicts()
        else:
            system = "\n\n".join(c for role, c in request.messages if role == "system")
            body["prompt"] = "\n\n".join(c for role, c in request.messages if role != "system")
            if system:
                body["system"] = system
        if request.schema is not None:
            body["format"] = request.schema
        elif request.json_mode:
            body["format"] = "json"
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if options:
            body["options"] = options
        return body

    async def complete(self, request: ChatRequest, deadline: float) -> ChatReply:
        data = await self.post_json(f"/api/{self.api}", self.body(request), deadline)
        if data.get("error"):
            raise LLMError(f"ollama {self.base_url}: {data['error']}")
        if self.api == "chat":
            message = data.get("message")
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                raise LLMError(f"ollama {self.base_url}/api/chat: the answer has no message.content")
            text = message["content"]
        else:
            if not isinstance(data.get("response"), str):
                raise LLMError(f"ollama {self.base_url}/api/generate: the answer has no response")
            text = data["response"]
        usage = {}
        if isinstance(data.get("prompt_eval_count"), int):
            usage["prompt_tokens"] = data["prompt_eval_count"]
        if isinstance(data.get("eval_count"), int):
            usage["completion_tokens"] = data["eval_count"]
        return ChatReply(text=text, model=str(data.get("model") or request.model), usage=usage,
                         finish_reason=data.get("done_reason"))
