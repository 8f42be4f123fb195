"""Timer source: an event every interval, the workflow's ``payload`` or ``{"tick": n, "time": ISO-8601}``.

Ticks are paced on the monotonic clock from the start (tick n fires at ``start + n * interval``), so a slow publish
does not make the schedule drift; a tick missed while NATS was unreachable is skipped, not replayed in a burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from typing import TYPE_CHECKING, Any

from kumeo_iac.runtime.io._common import Adapter, duration, publish_event

if TYPE_CHECKING:
    from kumeo_iac.compile import EndpointPlan, WorkflowPlan

__all__ = ["TimerSource"]

log = logging.getLogger("kumeo.io")


class TimerSource(Adapter):
    """Publishes a tick every ``interval`` seconds; ``limit`` (option ``count``) stops it after that many."""

    role = "source"

    def __init__(self, workflow: WorkflowPlan, endpoint: EndpointPlan, *, interval: float | None = None,
                 limit: int | None = None) -> None:
        super().__init__(workflow, endpoint)
        options = endpoint.options or {}
        what = f"workflow '{workflow.name}': Timer source interval"
        self.interval = interval if interval is not None else duration(endpoint.address, what)
        count = limit if limit is not None else options.get("count")
        self.limit = int(count) if count is not None else None
        self.payload = options.get("payload")
        self.fired = 0
        self._task: asyncio.Task[None] | None = None

    def body(self, tick: int) -> Any:
        if self.payload is not None:
            return self.payload
        now = datetime.datetime.now(datetime.UTC)
        return {"tick": tick, "time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")}

    async def start(self, nc: Any) -> None:
        js = nc.jetstream()
        self._task = asyncio.create_task(self._run(js), name=f"kumeo-timer-{self.endpoint.name}")

    async def _run(self, js: Any) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        tick = 0
        producer = f"source.{self.endpoint.name}"
        while self.limit is None or tick < self.limit:
            tick += 1
            await asyncio.sleep(max(0.0, began + tick * self.interval - loop.time()))
            try:
                await publish_event(js, self.endpoint.subject, self.body(tick), source=producer)
                self.fired += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS away: skip this tick, keep the schedule
                log.warning("Timer source %s: tick %d not published: %r", self.endpoint.address, tick, exc)
            # A tick that fell far behind (NATS was away) is skipped, not fired in a burst.
            behind = int((loop.time() - began) / self.interval) - tick
            if behind > 1:
                tick += behind - 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
