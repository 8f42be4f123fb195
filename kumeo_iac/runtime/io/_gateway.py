"""The gateway of a workflow: every source and target adapter it needs, started and stopped together.

`kumeo run` runs it in-process beside the workers; in a cluster it runs as one small pod per workflow,
``<slug>-gateway`` (``python -m kumeo_iac.runtime.io --plan PLAN.json``, see ``__main__.py``; compile adds that
Deployment, Service, PodDisruptionBudget and NetworkPolicy when the workflow needs one). NATS sources and targets need
no adapter: agents read and write those subjects themselves.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumeo_iac.runtime.io._common import Adapter, refusals
from kumeo_iac.runtime.io._target import TargetAdapter

if TYPE_CHECKING:
    from kumeo_iac.compile import ConsumerPlan, WorkflowPlan

__all__ = ["Gateway"]

log = logging.getLogger("kumeo.io")


class Gateway:
    """The source and target adapters of one workflow.

    Raises the first :class:`~kumeo_iac.runtime.io.EndpointRefused` at construction for a Kafka or MQTT endpoint
    (see :func:`refusals` for all of them). ``http_host``/``http_port`` override where HTTP sources listen
    (``http_port=0``: any free port, what tests want); ``http_default_port`` is the port of an HTTP source that
    names none (`kumeo run` passes 0 and prints the URL).
    """

    def __init__(self, workflow: WorkflowPlan, base_dir: str | Path = ".", *, http_host: str | None = None,
                 http_port: int | None = None, http_default_port: int | None = None,
                 start_sources: bool = True) -> None:
        refused = refusals(workflow)
        if refused:
            raise refused[0]
        from kumeo_iac.runtime.io._file_source import FileSource
        from kumeo_iac.runtime.io._file_target import FileTarget
        from kumeo_iac.runtime.io._http_source import HttpSource
        from kumeo_iac.runtime.io._http_target import HttpTarget
        from kumeo_iac.runtime.io._timer_source import TimerSource

        self.workflow = workflow
        self.base_dir = Path(base_dir)
        self.sources: list[Adapter] = []
        self.targets: list[Adapter] = []
        if start_sources:
            for ep in workflow.sources:
                if ep.kind == "HTTP":
                    extra = {} if http_default_port is None else {"default_port": http_default_port}
                    self.sources.append(HttpSource(workflow, ep, host=http_host, port=http_port, **extra))
                elif ep.kind == "Timer":
                    self.sources.append(TimerSource(workflow, ep))
                elif ep.kind == "File":
                    self.sources.append(FileSource(workflow, ep, base_dir=self.base_dir))
        for ep in workflow.targets:
            if ep.kind == "HTTP":
                self.targets.append(HttpTarget(workflow, ep))
            elif ep.kind == "File":
                self.targets.append(FileTarget(workflow, ep, base_dir=self.base_dir))
        self._started: list[Adapter] = []

    @property
    def adapters(self) -> list[Adapter]:
        return [*self.targets, *self.sources]

    @property
    def consumers(self) -> list[tuple[str, str]]:
        return [c for a in self.targets for c in a.consumers]

    @property
    def consumer_plans(self) -> list[ConsumerPlan]:
        """The durable consumers the targets read, for the deployer to create before :meth:`start` binds to them."""
        return [a.consumer_plan() for a in self.targets if isinstance(a, TargetAdapter)]

    @property
    def sources_finished(self) -> bool:
        """True when every finite source (a File source) has published what it has; HTTP and Timer sources are
        live and never hold up a drain."""
        return all(a.finished for a in self.sources)

    async def start(self, nc: Any) -> None:
        """Start targets first (so nothing a source lets in finds its target missing), then sources. Each target
        binds to the durable consumer the deployer created (see :attr:`consumer_plans`); a missing one is a
        :class:`~kumeo_iac.runtime._binding.ConsumerMissing` error naming the stream and durable."""
        try:
            for adapter in self.adapters:
                await adapter.start(nc)
                self._started.append(adapter)
                log.info("workflow %s: %s started", self.workflow.name, adapter.label)
        except BaseException:
            await self.stop()
            raise

    async def stop_sources(self) -> None:
        for adapter in reversed(self._started):
            if adapter.role == "source":
                with contextlib.suppress(Exception):
                    await adapter.stop()

    async def stop(self) -> None:
        """Stop sources (no new events), then targets (each finishes the batch it holds)."""
        await self.stop_sources()
        for adapter in reversed(self._started):
            if adapter.role == "target":
                try:
                    await adapter.stop()
                except Exception:
                    log.exception("%s did not stop cleanly", adapter.label)
        self._started.clear()
