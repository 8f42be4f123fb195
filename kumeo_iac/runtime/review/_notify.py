"""Webhook notifications of reviews: a JSON POST per event, retried a few times, never in the pipeline's way.

Notifications are best effort by design: each one is a background task (the event is parked and acked whether or
not the webhook answers), retried ``attempts`` times with a doubling pause, and a final failure is logged. The
review itself is durable in KV; a missed notification never loses it (``GET /reviews`` still lists it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

__all__ = ["WebhookNotifier"]

log = logging.getLogger("kumeo.runtime.review")


class WebhookNotifier:
    """POSTs notifications to webhook URLs from background tasks."""

    def __init__(self, *, attempts: int = 3, backoff_seconds: float = 0.5, timeout_seconds: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._client = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        self._tasks: set[asyncio.Task[bool]] = set()
        #: Notifications that reached their webhook / gave up (for metrics and tests).
        self.delivered = 0
        self.failed = 0

    def notify(self, url: str, payload: dict[str, Any]) -> asyncio.Task[bool]:
        """Send ``payload`` to ``url`` in the background; the task's result says whether it was delivered."""
        task = asyncio.create_task(self._send(url, payload), name="kumeo-review-webhook")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send(self, url: str, payload: dict[str, Any]) -> bool:
        delay = self.backoff_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self._client.post(url, json=payload)
                if response.status_code < 300:
                    self.delivered += 1
                    return True
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                log.info("review webhook %s failed (%s), attempt %d of %d", _redact(url), problem, attempt,
                         self.attempts)
                await asyncio.sleep(delay)
                delay *= 2
        self.failed += 1
        log.warning("review webhook %s failed after %d attempts (%s); the review stays available at /reviews",
                    _redact(url), self.attempts, problem)
        return False

    async def aclose(self, wait_seconds: float = 2.0) -> None:
        """Give notifications in flight a moment to finish, then cancel the rest and close the client."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=wait_seconds)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self._client.aclose()


def _redact(url: str) -> str:
    """The URL without its query (webhook tokens often sit there) for logs."""
    return url.split("?", 1)[0]
