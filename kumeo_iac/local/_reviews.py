"""The events a local run's HumanReview agents hold: the open reviews in each workflow's reviews KV bucket.

A HumanReview agent acks its input and parks it as a review (see ``kumeo_iac.runtime.agents.human_review``), so no
consumer shows it as pending: `kumeo run` reads the buckets to count what waits for a person, and to tell those
events from ones that reached nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any

__all__ = ["ReviewWatch", "WaitingReviews"]

log = logging.getLogger("kumeo.local")

#: How often the buckets are read while the run goes on (the progress line is redrawn more often than that).
REFRESH_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class WaitingReviews:
    """Open reviews of one HumanReview agent: the agent's label, its bucket, and the event ids that wait."""

    agent: str
    bucket: str
    event_ids: frozenset[str]


class ReviewWatch:
    """Reads the open reviews of every HumanReview agent of a running :class:`~kumeo_iac.local.LocalRunner`."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.agents = [(wf, agent) for wf in runner.workflows for agent in wf.agents if agent.review_bucket]
        self.waiting: list[WaitingReviews] = []
        self._buckets: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def any(self) -> bool:
        """Whether the workflows have a HumanReview agent at all."""
        return bool(self.agents)

    @property
    def event_ids(self) -> set[str]:
        return {event_id for w in self.waiting for event_id in w.event_ids}

    @property
    def count(self) -> int:
        return sum(len(w.event_ids) for w in self.waiting)

    async def refresh(self) -> None:
        """Read every review bucket once (a bucket not created yet holds nothing)."""
        from kumeo_iac.runtime.review import NatsKeyValue, ReviewStore

        waiting = []
        for wf, agent in self.agents:
            bucket = str(agent.settings.get("review_bucket") or next(
                (kv.bucket for kv in wf.key_values if kv.purpose == "reviews"), f"kumeo_{wf.slug}_reviews"))
            kv = self._buckets.get(bucket)
            if kv is None:
                try:
                    kv = await self.runner.js.key_value(bucket)
                except Exception:  # noqa: BLE001 - not there (yet): no review waits in it
                    continue
                self._buckets[bucket] = kv
            reviews = await ReviewStore(NatsKeyValue(kv), agent.id).list()
            label = agent.id if len(self.runner.workflows) == 1 else f"{wf.name}/{agent.id}"
            waiting.append(WaitingReviews(label, bucket, frozenset(r.event_id for r in reviews if r.is_open)))
        self.waiting = waiting

    def start(self) -> None:
        """Refresh in the background every REFRESH_SECONDS until :meth:`stop`."""
        if self.any and self._task is None:
            self._task = asyncio.create_task(self._forever(), name="kumeo-run-reviews")

    async def _forever(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.refresh(), 5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a busy or restarting server: the next round asks again
                log.debug("reading the review buckets failed: %r", exc)
            await asyncio.sleep(REFRESH_SECONDS)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
