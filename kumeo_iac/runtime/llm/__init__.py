"""Talking to language models: OpenAI-compatible and Ollama clients, prompt templates, the KV response cache.

    client = create_client(resolve_provider({"engine": "ollama/llama3"}, "LLM 'x'"), "LLM 'x'")
    reply = await client.complete(ChatRequest("llama3", (("user", "Hi"),)), deadline=time.monotonic() + 30)

The LLM agent kind (``kumeo_iac.runtime.agents.llm``) is built from these parts; they import only httpx (and
nats-py for the cache, jsonschema for ``output_schema``), so they are usable on their own.
"""

from kumeo_iac.runtime.llm._cache import ResponseCache, cache_key, open_cache
from kumeo_iac.runtime.llm._errors import LLMError, LLMRejected
from kumeo_iac.runtime.llm._http import ChatClient, RetryPolicy
from kumeo_iac.runtime.llm._ollama import OllamaClient
from kumeo_iac.runtime.llm._openai import OpenAIClient
from kumeo_iac.runtime.llm._output import InvalidReply, SchemaCheck, parse_json_reply
from kumeo_iac.runtime.llm._provider import (
    ProviderSettings,
    create_client,
    resolve_provider,
)
from kumeo_iac.runtime.llm._template import Template, compile_template, render_value
from kumeo_iac.runtime.llm._types import ChatReply, ChatRequest

__all__ = [
    "ChatClient",
    "ChatReply",
    "ChatRequest",
    "InvalidReply",
    "LLMError",
    "LLMRejected",
    "OllamaClient",
    "OpenAIClient",
    "ProviderSettings",
    "ResponseCache",
    "RetryPolicy",
    "SchemaCheck",
    "Template",
    "cache_key",
    "compile_template",
    "create_client",
    "open_cache",
    "parse_json_reply",
    "render_value",
    "resolve_provider",
]
