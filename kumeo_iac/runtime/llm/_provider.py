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

from kumeo_iac._llm_endpoints import PROVIDERS, pick_base_url, select_provider, url_text
from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime.llm._http import ChatClient, RetryPolicy
from kumeo_iac.runtime.llm._ollama import OLLAMA_APIS, OllamaClient
from kumeo_iac.runtime.llm._openai import OpenAIClient

__all__ = ["PROVIDERS", "ProviderSettings", "create_client", "resolve_provider"]

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
    url = url_text(url, provider)
    try:
        parsed = httpx.URL(url)
    except Exception as exc:  # noqa: BLE001 - httpx.InvalidURL and friends
        raise KumeoRuntimeError(f"{where}: invalid base_url {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise KumeoRuntimeError(f"{where}: base_url must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def resolve_provider(options: Mapping[str, Any], where: str, env: Mapping[str, str] | None = None) -> ProviderSettings:
    """Read ``engine``/``provider`` and their companions from an LLM agent's options (see the module doc)."""
    provider, model, extra = select_provider(options, where)

    def pick(name: str) -> Any:
        return options[name] if options.get(name) is not None else extra.get(name)

    base_url = pick_base_url(options, extra, provider, env)
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
