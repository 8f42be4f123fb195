"""Which server an LLM agent's settings point at, without the LLM client: the providers, their default base URLs,
and the reading of ``engine``/``provider``/``base_url``.

The runtime (``kumeo_iac.runtime.llm.resolve_provider``) builds its client from this reading; the LLM kind
(``kumeo_iac.spec.LLM.egress_urls``) uses it at compile time for the agent's NetworkPolicy, so the compiler never
imports the runtime (httpx, nats-py) to know where a pod's requests go.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from kumeo_iac.errors import KumeoError, KumeoRuntimeError

#: The providers an LLM agent can name (``openai``: any OpenAI-compatible server).
PROVIDERS: tuple[str, ...] = ("openai", "ollama")
#: Where a provider's requests go when neither the settings nor the environment name a server.
DEFAULT_BASE_URLS: Mapping[str, str] = {"openai": "https://api.openai.com/v1", "ollama": "http://127.0.0.1:11434"}
#: The environment variable naming a provider's server when the settings do not.
BASE_URL_ENV: Mapping[str, str] = {"openai": "OPENAI_BASE_URL", "ollama": "OLLAMA_HOST"}


def select_provider(options: Mapping[str, Any], where: str) -> tuple[str, str, dict[str, Any]]:
    """(provider, model, the provider object's other entries) from an LLM agent's ``engine``/``provider``;
    KumeoRuntimeError, starting with ``where``, when they do not name a known provider and a model."""
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
    return provider, model, extra


def pick_base_url(options: Mapping[str, Any], extra: Mapping[str, Any], provider: str,
                  env: Mapping[str, str] | None = None) -> Any:
    """The base URL as written: the agent's ``base_url``, else the provider object's, else the provider's
    environment variable, else its default (not checked: a non-string is returned as it is)."""
    env = os.environ if env is None else env
    base_url = options["base_url"] if options.get("base_url") is not None else extra.get("base_url")
    if base_url is None:
        base_url = env.get(BASE_URL_ENV[provider])
    return base_url or DEFAULT_BASE_URLS[provider]


def url_text(url: str, provider: str) -> str:
    """``url`` as a URL: an Ollama host written ``host:port`` or ``0.0.0.0:11434`` (OLLAMA_HOST is often the
    server's bind address) becomes ``http://host:port`` on a reachable host."""
    url = url.strip()
    if provider == "ollama" and "://" not in url:
        host, _, port = url.partition(":")
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        url = f"http://{host}:{port or '11434'}"
    return url


def llm_base_url(options: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str | None:
    """The server an LLM agent with these options talks to (``env``: the environment it runs in, none by default:
    a pod's has no OPENAI_BASE_URL/OLLAMA_HOST); when its options name no valid provider (the runtime refuses such
    an agent at start), its ``base_url`` if it wrote one, else None."""
    try:
        provider, _, extra = select_provider(options, "LLM")
    except KumeoError:
        base_url = options.get("base_url")
        return base_url if isinstance(base_url, str) else None
    base_url = pick_base_url(options, extra, provider, {} if env is None else env)
    return url_text(base_url, provider).rstrip("/") if isinstance(base_url, str) else None
