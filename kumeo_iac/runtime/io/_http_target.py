"""HTTP target: POSTs each result as JSON, retrying with exponential backoff, dead-lettering on final failure.

Retried: connection errors, timeouts, ``408``, ``425``, ``429`` and ``5xx``. Any other status (a ``4xx``: the
receiver will never accept this body) fails at once. A result that could not be delivered goes to
``kumeo.<slug>.dlq.target.<name>`` with the last HTTP status and the reason, and is acked, so one bad result never
blocks the ones behind it. Each request carries ``Kumeo-Event-Id``, ``traceparent`` and
``Idempotency-Key: <event-id>`` so the receiver can drop a retried duplicate.

Options: ``method`` (POST), ``headers`` (an object), ``timeout`` ("10s"), ``retry`` (a count, or
``{ attempts, backoff }``; default 3 retries from 0.5 s), ``concurrency`` (16 requests at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime import envelope
from kumeo_iac.runtime.io._common import (
    dead_letter_subject,
    duration,
    publish_dead_letter,
)
from kumeo_iac.runtime.io._target import TargetAdapter, event_id_of

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from kumeo_iac.compile import EndpointPlan, WorkflowPlan

__all__ = ["HttpTarget"]

log = logging.getLogger("kumeo.io")

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_SECONDS = 0.5
DEFAULT_TIMEOUT_SECONDS = 10.0
_RETRYABLE = frozenset({408, 425, 429})


class HttpTarget(TargetAdapter):
    """Delivers each result with an HTTP request; ``transport`` lets tests swap httpx's network layer."""

    def __init__(self, workflow: WorkflowPlan, endpoint: EndpointPlan, *, retries: int | None = None,
                 backoff: float | None = None, timeout: float | None = None, transport: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(workflow, endpoint, **kwargs)
        options = endpoint.options or {}
        where = f"workflow '{workflow.name}': HTTP target {endpoint.address!r}"
        if not endpoint.address.startswith(("http://", "https://")):
            raise KumeoRuntimeError(f"{where}: the address must be an http:// or https:// URL")
        self.url = endpoint.address
        self.method = str(options.get("method", "POST")).upper()
        self.headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
        retry = options.get("retry")
        option_retries, option_backoff = DEFAULT_RETRIES, DEFAULT_BACKOFF_SECONDS
        if isinstance(retry, dict):
            option_retries = int(retry.get("attempts", DEFAULT_RETRIES))
            if retry.get("backoff") is not None:
                option_backoff = duration(retry["backoff"], f"{where}: retry backoff")
        elif isinstance(retry, (int, float)) and not isinstance(retry, bool):
            option_retries = int(retry)
        self.retries = max(0, retries if retries is not None else option_retries)
        self.backoff = backoff if backoff is not None else option_backoff
        self.timeout = timeout if timeout is not None else (
            duration(options["timeout"], f"{where}: timeout") if options.get("timeout") is not None
            else DEFAULT_TIMEOUT_SECONDS)
        self.concurrency = max(1, int(options.get("concurrency", 16)))
        self._transport = transport
        self._client: Any = None
        self._slots = asyncio.Semaphore(self.concurrency)

    @property
    def ack_wait(self) -> float:
        # Every attempt may take the full timeout, plus the pauses between them.
        pauses = sum(self.delay(i) for i in range(1, self.retries + 1))
        return (self.retries + 1) * self.timeout + pauses + 10.0

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt ``attempt`` (1-based): backoff, doubled each time, at most 30 s."""
        return min(self.backoff * 2.0 ** (attempt - 1), 30.0)

    async def open(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(timeout=self.timeout, transport=self._transport, follow_redirects=True)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, msgs: list[Msg]) -> None:
        await asyncio.gather(*(self._deliver_one(m) for m in msgs))

    async def _deliver_one(self, msg: Msg) -> None:
        import httpx

        async with self._slots:
            event_id = event_id_of(msg)
            parent = envelope.header(msg.headers, envelope.TRACEPARENT)
            headers = {"Content-Type": "application/json", **self.headers, envelope.EVENT_ID: event_id,
                       "Idempotency-Key": event_id,
                       envelope.TRACEPARENT: envelope.next_traceparent(parent, event_id)}
            status: int | None = None
            reason = ""
            attempt = 0
            for attempt in range(1, self.retries + 2):
                try:
                    response = await self._client.request(self.method, self.url, content=msg.data,
                                                          headers=headers)
                except httpx.HTTPError as exc:
                    status, reason = None, f"{type(exc).__name__}: {exc or 'no answer'}"
                    retryable = True
                else:
                    if response.is_success:
                        await msg.ack()
                        self.delivered += 1
                        return
                    status = response.status_code
                    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
                    retryable = status in _RETRYABLE or status >= 500
                if not retryable or attempt > self.retries:
                    break
                log.info("HTTP target %s: event %s attempt %d failed (%s); retrying", self.url, event_id,
                         attempt, reason)
                with contextlib.suppress(Exception):  # the ack deadline already covers every attempt
                    await msg.in_progress()
                await asyncio.sleep(self.delay(attempt))
            message = f"{self.method} {self.url} failed after {attempt} attempt(s): {reason}"
            log.warning("HTTP target: event %s dead-lettered: %s", event_id, message)
            try:
                data: Any = json.loads(msg.data) if msg.data else None
            except ValueError:
                data = msg.data.decode("utf-8", "replace")
            try:
                await publish_dead_letter(
                    self.js, dead_letter_subject(self.workflow, f"target.{self.endpoint.name}"), event_id=event_id,
                    producer=f"target.{self.endpoint.name}", reason=message, attempt=attempt, traceparent=parent,
                    body={"target": self.url, "status": status, "attempts": attempt, "input": data})
            except Exception as exc:  # noqa: BLE001 - keep the result: JetStream redelivers it later
                log.warning("HTTP target %s: could not dead-letter event %s: %r", self.url, event_id, exc)
                await msg.nak(delay=5.0)
                return
            self.dead_lettered += 1
            await msg.ack()
