"""HumanReview (alias HumanInLoop): events wait in the workflow's reviews KV bucket until a person decides.

The event is never held unacked: ``process`` stores the pending review in KV (key ``<agent>.<review-id>``) and
returns no emit, which for this kind (``parks_events``) tells the worker to ack the input and publish nothing. The
event is published later, with its original event id, dedupe id ``<event-id>:<agent>`` and trace, when a reviewer
approves or rejects it (in the dashboard or over the review API), or when its timeout applies ``on_timeout``. Both
decisions are released to the agent's normal outputs with ``review: {decision, reviewer, comments, …}`` added, so a
Router after the review can send ``review?.decision == 'rejected'`` elsewhere. Events the ``trigger`` does not
select pass on unchanged. See docs/agents.md, "HumanReview".

The review API listens on its own port, on loopback unless ``KUMEO_REVIEW_HOST`` says otherwise, and checks every
caller with the dashboard's verifier (``kumeo_iac.runtime.review._access``): no anonymous approvals. The worker's
probe port (``/healthz``, ``/metrics``, reachable by every pod) only answers ``/reviews`` with where the API is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime import envelope
from kumeo_iac.runtime._agent import Emit, Event
from kumeo_iac.runtime._health import HttpServer
from kumeo_iac.runtime.agents._common import KindAgent, holds
from kumeo_iac.runtime.review import (
    NatsKeyValue,
    Review,
    ReviewAccess,
    ReviewAPI,
    ReviewAudit,
    ReviewQueue,
    ReviewSettings,
    ReviewStore,
    WebhookNotifier,
    listen_address,
)

__all__ = ["HumanReviewAgent"]

log = logging.getLogger("kumeo.runtime.review")

#: The bucket a hand-built Plan without a reviews bucket uses (``kumeo_<slug>_reviews``, like compile names it).
_DEFAULT_BUCKET = "kumeo_{slug}_reviews"


class HumanReviewAgent(KindAgent):
    """Parks each selected event as a pending review and releases it once it is decided."""

    kind_name = "HumanReview"
    options_in_config = True
    parks_events = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: ReviewQueue | None = None
        self.api: ReviewAPI | None = None
        self.review_settings: ReviewSettings | None = None
        self._trigger: Any = None
        self._notifier: WebhookNotifier | None = None
        self._sweeper: asyncio.Task[None] | None = None
        #: Who may call the review API (tests may hand one in before start()); default: from the environment.
        self.access: ReviewAccess | None = None
        self._server: HttpServer | None = None

    @property
    def review_url(self) -> str | None:
        """``http://HOST:PORT/reviews`` while the review API is served, else None."""
        if self._server is None:
            return None
        host = self._server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
        return f"http://{f'[{host}]' if ':' in host else host}:{self._server.port}{ReviewAPI.prefix}"

    async def start(self) -> None:
        settings = ReviewSettings.from_config(self.agent_config(), self.label,
                                              interface=self.settings.get("interface"))
        self.review_settings = settings
        trigger = self.settings.get("trigger")
        self._trigger = self.compile(trigger, "trigger") if trigger else None
        if self.queue is None:  # tests may hand in a queue over an in-memory store
            if self.host is None:
                raise KumeoRuntimeError(f"{self.label}: needs a worker (reviews live in the workflow's KV bucket)")
            kv = await self._open_bucket()
            self._notifier = WebhookNotifier()
            self.queue = ReviewQueue(ReviewStore(NatsKeyValue(kv), self.plan.id), settings,
                                     workflow=self.workflow.name, release=self._release, notifier=self._notifier,
                                     base_url=settings.base_url)
            with contextlib.suppress(Exception):
                self.queue.bucket_ttl = await self.queue.store.kv.ttl()
        if self.access is None:
            self.access = ReviewAccess.from_env()
        host = self.host
        audit = ReviewAudit(lambda: host.js) if host is not None else None
        self.api = ReviewAPI(self.queue, self.access, audit)
        if self.host is not None:
            await self._serve_api()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name=f"kumeo-review-sweep-{self.plan.id}")

    async def _serve_api(self) -> None:
        assert self.api is not None and self.host is not None and self.access is not None
        try:
            address = listen_address()
        except ValueError as exc:
            raise KumeoRuntimeError(f"{self.label}: {exc}") from None
        if address is None:
            log.info("%s: KUMEO_REVIEW_PORT is negative: the review API is not served", self.label)
        else:
            server = HttpServer(host=address[0], port=address[1])
            server.mount(ReviewAPI.prefix, self.api.handle)
            try:
                await server.start()
            except OSError as exc:  # the port is taken: reviews still park, time out, and are decided elsewhere
                log.error("%s: cannot serve the review API on %s:%s: %s", self.label, address[0], address[1], exc)
            else:
                self._server = server
                auth = ("no authentication configured: reads from this machine only, no decisions"
                        if self.access.auth is None else f"{self.access.mode} authentication")
                log.info("%s: review API on %s (%s)", self.label, self.review_url, auth)
                if self.access.auth is None:
                    log.warning("%s: %s", self.label, self.access.problem)
        # The worker's probe port is reachable by every pod: it never serves reviews, it only says where they are.
        self.host.mount_http(ReviewAPI.prefix, self._elsewhere)

    async def _elsewhere(self, method: str, target: str, headers: dict[str, str],
                         body: bytes) -> tuple[int, str, str]:
        where = (f"it listens on port {self._server.port} of this worker ({self.review_url})"
                 if self._server is not None else "this worker does not serve it (KUMEO_REVIEW_PORT)")
        message = (f"the review API is not served on the probe port: {where}; KUMEO_REVIEW_HOST and "
                   "KUMEO_REVIEW_PORT set where it listens")
        return 404, json.dumps({"error": message}) + "\n", "application/json"

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(BaseException):
                await self._sweeper
            self._sweeper = None
        if self._notifier is not None:
            await self._notifier.aclose()
            self._notifier = None

    async def process(self, event: Event) -> list[Emit]:
        if self.queue is None:
            raise KumeoRuntimeError(f"{self.label}: process() called before start()")
        payload = self.payload(event.data)
        if self._trigger is not None and not holds(self._trigger, self.scope(payload), f"{self.label}: trigger"):
            return [Emit(event.data)]
        await self.queue.park(event.id, payload, envelope.header(event.headers, envelope.TRACEPARENT))
        return []  # parked durably: the worker acks the input; the decision releases the event

    async def sweep(self) -> Any:
        """One pass of the timeout/release sweeper (it also runs in the background every ``sweep_interval``)."""
        assert self.queue is not None
        return await self.queue.sweep()

    async def _sweep_forever(self) -> None:
        assert self.review_settings is not None
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS hiccup: the next sweep tries again
                log.debug("%s: review sweep failed: %r", self.label, exc)
            await asyncio.sleep(self.review_settings.sweep_seconds)

    async def _release(self, review: Review) -> None:
        if self.host is None:
            raise KumeoRuntimeError(f"{self.label}: cannot release review {review.id} without a worker")
        await self.host.release(review.event_id, [Emit(review.released_event())], traceparent=review.traceparent)

    async def _open_bucket(self) -> Any:
        from nats.js.api import KeyValueConfig

        from kumeo_iac.jetstream import open_key_value

        assert self.host is not None
        bucket = self.settings.get("review_bucket") or _DEFAULT_BUCKET.format(
            slug=self.workflow.slug.replace("-", "_"))
        plan = next((kv for kv in self.workflow.key_values if kv.bucket == bucket), None)
        # The Plan keeps the wire shape (nanoseconds), which open_key_value reads as such.
        config: KeyValueConfig | dict[str, Any] = (
            plan.config if plan is not None
            else KeyValueConfig(bucket=bucket, history=1, description="Kumeo: events waiting for review"))
        return await open_key_value(self.host.js, config)
