"""Which server an LLM agent talks to: the provider, model, base URL, API key and sampling settings.

``engine: "openai/gpt-4o-mini"`` or ``"ollama/llama3"`` (split at the first ``/``, so ``openai/org/model`` keeps
``org/model`` as the model), or ``provider: { ollama: { model, temperature, max_tokens, base_url, api } }``
(``{ openai: {...} }`` likewise). The agent's own ``temperature``/``max_tokens``/``base_url`` win over the
provider object's. Base URL: the setting, else ``OPENAI_BASE_URL`` / ``OLLAMA_HOST``, else
``https://api.openai.com/v1`` / ``http://127.0.0.1:11434``. The API key is read from the environment variable
``api_key_env`` names (``OPENAI_API_KEY`` for openai; none for ollama), which Kubernetes fills from a Secret.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

import httpx

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime.llm._http import ChatClient, RetryPolicy
from kumeo_iac.runtime.llm._ollama import (
    DEFAULT_OLLAMA_BASE_URL,
    OLLAMA_APIS,
    OllamaClient,
)
from kumeo_iac.runtime.llm._openai import DEFAULT_OPENAI_BASE_URL, OpenAIClient

__all__ = ["PROVIDERS", "ProviderSettings", "create_client", "resolve_provider"]

PROVIDERS = ("openai", "ollama")
_ENV_REF = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclasses.dataclass(frozen=True)
class ProviderSettings:
    """A resolved provider: everything needed to build a client, except the key itself (read at connect)."""

    provider: str
    model: str
    base_url: str
    api: str = "chat"  # ollama only: chat | generate
    temperature: float | None = None
    max_tokens: int | None = None
    api_key_env: str | None = None
    api_key_literal_ref: str | None = None  # a "${env.NAME}" written in the workflow

    def api_key(self) -> str | None:
        """The API key from the environment (never logged, never part of an error message)."""
        name = self.api_key_env
        if self.api_key_literal_ref:
            m = _ENV_REF.fullmatch(self.api_key_literal_ref)
            name = m.group(1) if m else None
        return os.environ.get(name) if name else None


def _number(value: Any, what: str, where: str, kind: type) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KumeoRuntimeError(f"{where}: {what} must be a number, got {value!r}")
    if kind is int:
        if value != int(value) or value <= 0:
            raise KumeoRuntimeError(f"{where}: {what} must be a positive whole number, got {value!r}")
        return int(value)
    return float(value)


def _normalise_base_url(url: str, provider: str, where: str) -> str:
    url = url.strip()
    if provider == "ollama" and "://" not in url:
        # OLLAMA_HOST is often "host:port" or "0.0.0.0:11434" (the server's bind address).
        host, _, port = url.partition(":")
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        url = f"http://{host}:{port or '11434'}"
    try:
        parsed = httpx.URL(url)
    except Exception as exc:  # noqa: BLE001 - httpx.InvalidURL and friends
        raise KumeoRuntimeError(f"{where}: invalid base_url {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise KumeoRuntimeError(f"{where}: base_url must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def resolve_provider(options: Mapping[str, Any], where: str, env: Mapping[str, str] | None = None) -> ProviderSettings:
    """Read ``engine``/``provider`` and their companions from an LLM agent's options (see the module doc)."""
    env = os.environ if env is None else env
    engine = options.get("engine")
    provider_value = options.get("provider")
    provider: str | None = None
    model: str | None = None
    extra: dict[str, Any] = {}
    if isinstance(provider_value, Mapping):
        if len(provider_value) == 1 and isinstance(next(iter(provider_value.values())), Mapping):
            provider, body = next(iter(provider_value.items()))
            extra = dict(body)
        else:
            extra = dict(provider_value)
            provider = extra.pop("name", None) or extra.pop("type", None)
        model = extra.get("model")
    elif isinstance(provider_value, str):
        provider = provider_value
    elif provider_value is not None:
        raise KumeoRuntimeError(f"{where}: provider must be an object like {{ ollama: {{ model: \"llama3\" }} }}")
    if isinstance(engine, str) and engine.strip():
        head, sep, tail = engine.strip().partition("/")
        if sep and head.lower() in PROVIDERS:
            provider, model = head, tail
        elif provider is not None:
            model = engine.strip()
        elif sep and tail:
            provider, model = head, tail  # an unknown provider: named in the error below
        else:
            raise KumeoRuntimeError(
                f"{where}: engine {engine!r} must be 'provider/model', e.g. 'openai/gpt-4o-mini' or 'ollama/llama3'")
    elif engine is not None:
        raise KumeoRuntimeError(f"{where}: engine must be a string like 'ollama/llama3'")
    if provider is None:
        raise KumeoRuntimeError(f"{where}: needs engine: \"provider/model\" or provider: {{ ollama: {{ model: … }} }}")
    provider = str(provider).lower()
    if provider not in PROVIDERS:
        raise KumeoRuntimeError(
            f"{where}: unknown provider {provider!r}; use 'openai' (any OpenAI-compatible server: OpenAI, vLLM, "
            "llama.cpp, LM Studio — set base_url) or 'ollama'")
    if not isinstance(model, str) or not model.strip():
        raise KumeoRuntimeError(f"{where}: no model given for provider {provider!r}")

    def pick(name: str) -> Any:
        return options[name] if options.get(name) is not None else extra.get(name)

    base_url = pick("base_url")
    if base_url is None:
        base_url = env.get("OPENAI_BASE_URL") if provider == "openai" else env.get("OLLAMA_HOST")
    if not base_url:
        base_url = DEFAULT_OPENAI_BASE_URL if provider == "openai" else DEFAULT_OLLAMA_BASE_URL
    if not isinstance(base_url, str):
        raise KumeoRuntimeError(f"{where}: base_url must be a string")
    api = str(pick("api") or "chat")
    if provider == "ollama" and api not in OLLAMA_APIS:
        raise KumeoRuntimeError(f"{where}: api must be 'chat' or 'generate', got {api!r}")
    key_env = pick("api_key_env")
    if key_env is None:
        key_env = "OPENAI_API_KEY" if provider == "openai" else None
    literal = pick("api_key")
    if literal is not None and not (isinstance(literal, str) and _ENV_REF.fullmatch(literal)):
        raise KumeoRuntimeError(f"{where}: api_key must be a reference like \"${{env.OPENAI_API_KEY}}\", never the key")
    return ProviderSettings(
        provider=provider,
        model=model.strip(),
        base_url=_normalise_base_url(base_url, provider, where),
        api=api,
        temperature=_number(pick("temperature"), "temperature", where, float),
        max_tokens=_number(pick("max_tokens"), "max_tokens", where, int),
        api_key_env=str(key_env) if key_env else None,
        api_key_literal_ref=literal,
    )


def create_client(
    settings: ProviderSettings,
    where: str,
    *,
    policy: RetryPolicy | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = 16,
) -> ChatClient:
    """The client for a provider; OpenAI's own API without a key fails here, at start, not on every event."""
    key = settings.api_key()
    if settings.provider == "openai":
        if not key and httpx.URL(settings.base_url).host == "api.openai.com":
            var = settings.api_key_env or "OPENAI_API_KEY"
            raise KumeoRuntimeError(
                f"{where}: {var} is not set; the OpenAI API needs a key (on Kubernetes put it in a Secret: "
                f"PlatformSettings(secrets={{'{var}': 'secret-name'}}))")
        return OpenAIClient(settings.base_url, api_key=key, policy=policy, transport=transport,
                            max_connections=max_connections)
    return OllamaClient(settings.base_url, api=settings.api, api_key=key, policy=policy, transport=transport,
                        max_connections=max_connections)
