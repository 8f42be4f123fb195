"""The LLM response cache: a JetStream KV bucket of replies keyed by the hash of what produced them.

The key is ``sha256`` of the provider, model, messages and sampling parameters (canonical JSON), so any change to
the prompt, the event fields it uses, the model or ``temperature`` is a different entry. Entries expire with the
bucket's TTL (``PlatformSettings.llm_cache_ttl_seconds``, one hour by default), set when the bucket is created.
The cache is an optimisation only: a bucket that cannot be read or written is logged and skipped, never an event
failure. Only replies the agent accepted (parsed and, in JSON mode, valid) are stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from kumeo_iac.runtime.llm._types import ChatReply, ChatRequest

if TYPE_CHECKING:
    from kumeo_iac.compile import WorkflowPlan

log = logging.getLogger("kumeo.runtime.llm")

__all__ = ["DEFAULT_CACHE_TTL_SECONDS", "ResponseCache", "cache_key", "open_cache"]

DEFAULT_CACHE_TTL_SECONDS = 3600.0


def cache_key(provider: str, request: ChatRequest) -> str:
    """The KV key of a request: 64 hex digits (valid as a JetStream KV key)."""
    identity = {"provider": provider, **request.identity()}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """Replies stored in one KV bucket; ``hits`` and ``misses`` count lookups (for tests and metrics)."""

    def __init__(self, kv: Any, bucket: str) -> None:
        self.kv = kv
        self.bucket = bucket
        self.hits = 0
        self.misses = 0

    async def get(self, key: str) -> ChatReply | None:
        import nats.js.errors

        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            self.misses += 1
            return None
        except Exception as exc:  # noqa: BLE001 - the cache must never fail an event
            log.warning("LLM cache %s: read failed, calling the model: %r", self.bucket, exc)
            self.misses += 1
            return None
        reply = None
        if entry is not None and entry.value:
            try:
                reply = ChatReply.from_json(json.loads(entry.value))
            except ValueError:
                reply = None
        if reply is None:
            self.misses += 1
        else:
            self.hits += 1
        return reply

    async def put(self, key: str, reply: ChatReply) -> None:
        try:
            await self.kv.put(key, json.dumps(reply.to_json(), separators=(",", ":"), ensure_ascii=False).encode())
        except Exception as exc:  # noqa: BLE001
            log.warning("LLM cache %s: write failed: %r", self.bucket, exc)


async def open_cache(js: Any, bucket: str, workflow: WorkflowPlan | None = None) -> ResponseCache:
    """Bind the bucket, creating it from the workflow's Plan (its TTL) if the server does not have it yet."""
    from nats.js.api import KeyValueConfig

    from kumeo_iac.jetstream import open_key_value

    plan = next((kv for kv in (workflow.key_values if workflow else []) if kv.bucket == bucket), None)
    # The Plan keeps the wire shape (nanoseconds), which open_key_value reads as such.
    config: KeyValueConfig | dict[str, Any] = (
        plan.config if plan is not None
        else KeyValueConfig(bucket=bucket, history=1, ttl=DEFAULT_CACHE_TTL_SECONDS,
                            description="Kumeo: LLM responses by prompt hash"))
    return ResponseCache(await open_key_value(js, config), bucket)
