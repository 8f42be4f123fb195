"""One JSON POST to a model server, with bounded retries: the part the OpenAI and Ollama clients share.

Retried (exponential backoff with jitter, or the server's ``Retry-After``): 408, 409, 425, 429, every 5xx,
timeouts and connection errors. Any other 4xx is :class:`LLMRejected` (the event goes to the dead-letter subject
with the status and the server's message). A wait never runs past the event's deadline and never exceeds
``max_delay``: when the server asks for longer, the error is raised as transient and the worker's own backoff
takes over, so an event is not held while its consumer's ``ack_wait`` runs out.

Request headers are never logged or put in an error message: they carry the API key.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import email.utils
import logging
import random
import time
from typing import Any

import httpx

from kumeo_iac.runtime.llm._errors import LLMError, LLMRejected
from kumeo_iac.runtime.llm._types import ChatReply, ChatRequest

log = logging.getLogger("kumeo.runtime.llm")

_RETRYABLE = frozenset({408, 409, 425, 429})
_MESSAGE_CHARS = 300


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one event's model call is retried before the failure goes back to the worker."""

    retries: int = 3  # further requests after the first
    base_delay: float = 0.5  # seconds; doubles on each retry (with jitter)
    max_delay: float = 20.0  # the longest single wait, Retry-After included


def is_retryable(status: int) -> bool:
    return status in _RETRYABLE or status >= 500


def retry_after_seconds(headers: httpx.Headers, now: float | None = None) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, ``Retry-After`` in seconds or as an HTTP date."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def error_message(response: httpx.Response) -> str:
    """The server's own words: OpenAI's ``{"error": {"message"}}``, Ollama's ``{"error": "…"}``, or the body."""
    text = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            text = str(error.get("message") or error)
        elif error:
            text = str(error)
        elif body.get("message"):
            text = str(body["message"])
    if not text:
        text = response.text or response.reason_phrase or ""
    text = " ".join(text.split())
    return text[:_MESSAGE_CHARS] + ("…" if len(text) > _MESSAGE_CHARS else "")


class ChatClient(abc.ABC):
    """A chat-completion client for one provider; subclasses turn a ChatRequest into their wire format."""

    provider: str = ""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 16,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        headers = {"Accept": "application/json", "User-Agent": "kumeo-llm"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            headers=headers,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=False,
        )

    @abc.abstractmethod
    async def complete(self, request: ChatRequest, deadline: float) -> ChatReply:
        """Send one request and return the model's reply; ``deadline`` is a ``time.monotonic()`` instant."""

    async def aclose(self) -> None:
        await self._http.aclose()

    async def post_json(self, path: str, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        """POST ``body`` to ``base_url + path``; the decoded JSON object of a 2xx answer (see the module doc)."""
        url = self.base_url + path
        what = f"{self.provider} {url}"
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LLMError(f"{what}: no time left for another request (agent timeout)")
            wait: float | None = None
            started = time.monotonic()
            try:
                response = await self._http.post(
                    url, json=body, timeout=httpx.Timeout(remaining, connect=min(remaining, 10.0)))
            except httpx.TimeoutException:
                error = LLMError(f"{what}: no answer within {time.monotonic() - started:.1f} s")
            except httpx.TransportError as exc:
                error = LLMError(f"{what}: cannot reach the server: {type(exc).__name__}: {exc}".rstrip(": "))
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        data = response.json()
                    except ValueError:
                        data = None
                    if isinstance(data, dict):
                        return data
                    error = LLMError(f"{what}: HTTP {status} but the body is not a JSON object", status)
                elif is_retryable(status):
                    error = LLMError(f"{what}: HTTP {status}: {error_message(response)}", status)
                    wait = retry_after_seconds(response.headers)
                else:
                    raise LLMRejected(f"{what}: HTTP {status}: {error_message(response)}", status)
            if attempt >= self.policy.retries:
                raise error
            if wait is None:
                delay = self.policy.base_delay * (2 ** attempt)
                wait = delay / 2 + random.uniform(0, delay / 2)
            elif wait > self.policy.max_delay:
                raise LLMError(f"{error}; the server asks to retry after {wait:g} s", error.status)
            wait = min(wait, self.policy.max_delay)
            if time.monotonic() + wait >= deadline:
                raise error
            attempt += 1
            log.info("%s; retry %d/%d in %.2f s", error, attempt, self.policy.retries, wait)
            await asyncio.sleep(wait)
