"""The review queue of one HumanReview agent: park, act (comment/approve/reject), time out, release.

Release is an outbox: a decision is first written to the review (revision-checked), then the event is published,
then the review is marked ``released``. A crash between the two leaves a decided, unreleased review, which the
sweeper (every replica runs one) publishes again; the publish carries the event's dedupe id
(``<event-id>:<agent>``), so JetStream drops the second copy within the stream's duplicate window.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kumeo_iac.runtime.review._model import (
    Review,
    ReviewConflict,
    ReviewStatus,
    comment,
    decide,
    is_decided_unreleased,
    mark_released,
    new_review,
    parse_iso,
    time_out,
    touch,
)
from kumeo_iac.runtime.review._notify import WebhookNotifier
from kumeo_iac.runtime.review._settings import ReviewSettings
from kumeo_iac.runtime.review._store import ReviewStore

__all__ = ["ReviewQueue", "SweepResult"]

log = logging.getLogger("kumeo.runtime.review")

Release = Callable[[Review], Awaitable[None]]


@dataclasses.dataclass
class SweepResult:
    """What one sweep did."""

    timed_out: int = 0
    escalated: int = 0
    released: int = 0
    refreshed: int = 0


class ReviewQueue:
    """Reviews of one agent: the store, the rules of its settings, and how a decided event is published."""

    def __init__(
        self,
        store: ReviewStore,
        settings: ReviewSettings,
        *,
        workflow: str,
        release: Release,
        notifier: WebhookNotifier | None = None,
        base_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.workflow = workflow
        self.release = release
        self.notifier = notifier
        self.base_url = base_url.rstrip("/") if base_url else None
        self.clock = clock
        self.bucket_ttl: float | None = None

    @property
    def agent(self) -> str:
        return self.store.agent

    # -- parking ---------------------------------------------------------------------------------------------

    async def park(self, event_id: str, payload: dict[str, Any], traceparent: str | None) -> tuple[Review, bool]:
        """Store the pending review of an event; a redelivered event finds its review and parks nothing new."""
        review = new_review(agent=self.agent, workflow=self.workflow, event_id=event_id, payload=payload,
                            traceparent=traceparent, now=self.clock(), timeout_seconds=self.settings.timeout_seconds,
                            title=self.settings.title, display=list(self.settings.display))
        stored, created = await self.store.park(review)
        if created:
            self._notify("review.pending", stored)
        return stored, created

    # -- reviewer actions ------------------------------------------------------------------------------------

    async def comment(self, review_id: str, *, reviewer: Any, text: str | None = None,
                      fields: Mapping[str, Any] | None = None, revision: int | None = None) -> Review:
        """Add a round of comments; the review stays open."""
        return await self.store.change(
            review_id, lambda r: comment(r, reviewer=reviewer, text=text, fields=fields,
                                         editable=self.settings.editable, now=self.clock()),
            expected_revision=revision)

    async def approve(self, review_id: str, *, reviewer: Any, text: str | None = None,
                      fields: Mapping[str, Any] | None = None, revision: int | None = None) -> Review:
        """Approve, then release the event to the agent's outputs."""
        return await self._decide(review_id, True, reviewer, text, fields, revision)

    async def reject(self, review_id: str, *, reviewer: Any, text: str | None = None,
                     fields: Mapping[str, Any] | None = None, revision: int | None = None) -> Review:
        """Reject, then release the event (``review.decision == 'rejected'``) so the workflow can route it."""
        return await self._decide(review_id, False, reviewer, text, fields, revision)

    async def _decide(self, review_id: str, approve: bool, reviewer: Any, text: str | None,
                      fields: Mapping[str, Any] | None, revision: int | None) -> Review:
        decided = await self.store.change(
            review_id, lambda r: decide(r, approve=approve, reviewer=reviewer, text=text, fields=fields,
                                        editable=self.settings.editable, now=self.clock()),
            expected_revision=revision)
        return await self._release(decided)

    # -- background ------------------------------------------------------------------------------------------

    async def sweep(self) -> SweepResult:
        """Apply ``on_timeout`` to reviews past their deadline, publish decided reviews not yet released, and
        rewrite open reviews before the bucket's TTL would forget them."""
        result = SweepResult()
        now = self.clock()
        for review in await self.store.list():
            deadline = review.deadline_ts
            if review.is_open and deadline is not None and deadline <= now:
                was_pending = review.status is ReviewStatus.PENDING
                try:
                    review = await self.store.change(
                        review.id, lambda r: time_out(r, on_timeout=self.settings.on_timeout, now=now,
                                                      escalation_seconds=self.settings.escalation_seconds),
                        expected_revision=review.revision)
                except ReviewConflict:
                    continue  # a reviewer acted at this moment; the next sweep sees what they did
                if review.decision is None and was_pending:
                    result.escalated += 1
                    log.info("review %s/%s escalated: no decision before its deadline", self.agent, review.id)
                    self._notify("review.escalated", review, escalation=True)
                else:
                    result.timed_out += 1
                    log.info("review %s/%s timed out: %s", self.agent, review.id,
                             review.decision["decision"] if review.decision else "?")
            if is_decided_unreleased(review):
                if (await self._release(review)).released:
                    result.released += 1
            elif review.is_open and self.bucket_ttl and now - (parse_iso(review.updated_at) or now) > \
                    self.bucket_ttl / 3:
                try:
                    await self.store.save(touch(review, now=now))
                    result.refreshed += 1
                except ReviewConflict:
                    pass
        return result

    async def _release(self, review: Review) -> Review:
        try:
            await self.release(review)
        except Exception as exc:  # noqa: BLE001 - NATS unreachable: the sweeper publishes it later
            log.warning("review %s/%s is %s but its event could not be published yet (%r); retrying later",
                        self.agent, review.id, review.status.value, exc)
            return review
        try:
            return await self.store.change(review.id, lambda r: mark_released(r, now=self.clock()))
        except Exception as exc:  # noqa: BLE001 - published; a later sweep re-publishes (deduped) and marks it
            log.info("review %s/%s released, but not yet marked so: %r", self.agent, review.id, exc)
            return review

    def _notify(self, kind: str, review: Review, *, escalation: bool = False) -> None:
        if self.notifier is None:
            return
        urls = [self.settings.webhook] if self.settings.webhook else []
        if escalation:
            urls.extend(u for u in self.settings.escalation_urls if u not in urls)
        if not urls:
            return
        path = f"/reviews/{review.id}"
        payload = {
            "event": kind,
            "workflow": self.workflow,
            "agent": self.agent,
            "review": review.summary(),
            "url": f"{self.base_url}{path}" if self.base_url else path,
        }
        if self.settings.email:
            payload["email"] = list(self.settings.email)
        if escalation and self.settings.escalation_path:
            payload["escalation_path"] = list(self.settings.escalation_path)
        for url in urls:
            self.notifier.notify(url, payload)
