"""The part every target adapter shares: a durable pull consumer on ``kumeo.<slug>.target.<name>``, read in
batches, each message acked only once the outside world has it (or its dead letter is stored).

The deployer creates that consumer (:meth:`TargetAdapter.consumer_plan`, :func:`target_consumers`): the Workflow
component in a cluster, the local runner under ``kumeo run``. The adapter only binds to it; the gateway's NATS
identity may not create or change a consumer, so it cannot widen the filter to read other subjects."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import nats.errors

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime import envelope
from kumeo_iac.runtime._binding import ConsumerMissing, bind_durable, is_missing
from kumeo_iac.runtime.io._common import Adapter, target_consumer_config, target_durable

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from kumeo_iac.compile import ConsumerPlan, EndpointPlan, WorkflowPlan

log = logging.getLogger("kumeo.io")


class TargetAdapter(Adapter):
    """Reads the target subject with its own durable consumer and hands batches to :meth:`deliver`."""

    role = "target"

    def __init__(self, workflow: WorkflowPlan, endpoint: EndpointPlan, *, batch_size: int = 64,
                 fetch_timeout: float = 0.5, stop_timeout: float = 5.0) -> None:
        super().__init__(workflow, endpoint)
        if not endpoint.stream:
            raise KumeoRuntimeError(
                f"workflow '{workflow.name}': {endpoint.kind} target {endpoint.address!r}: no stream holds its "
                f"subject {endpoint.subject!r}; recompile the workflow")
        self.stream = endpoint.stream
        self.durable = target_durable(endpoint)
        self.consumers = [(self.stream, self.durable)]
        self.batch_size = batch_size
        self.fetch_timeout = fetch_timeout
        self.stop_timeout = stop_timeout
        self.delivered = 0
        self.dead_lettered = 0
        self.js: Any = None
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    #: How long one message may stay unacked before JetStream redelivers it (the adapter died meanwhile).
    @property
    def ack_wait(self) -> float:
        return 60.0

    @property
    def _who(self) -> str:
        return f"workflow '{self.workflow.name}': {self.label}"

    def consumer_plan(self) -> ConsumerPlan:
        """The durable consumer this adapter reads, as the deployer creates it (config in the Plan's wire shape)."""
        import json

        from kumeo_iac.compile import ConsumerPlan

        config = target_consumer_config(self.endpoint, ack_wait=self.ack_wait).as_dict()
        return ConsumerPlan(stream=self.stream, durable=self.durable, agent="gateway",
                            config=json.loads(json.dumps(config, sort_keys=True)))  # enums to wire strings

    async def start(self, nc: Any) -> None:
        """Bind to the durable the deployer created (:class:`ConsumerMissing` if there is none) and start pulling."""
        self.js = nc.jetstream()
        await bind_durable(self.js, self.stream, self.durable, who=self._who)
        await self.open()
        self._sub = await self.js.pull_subscribe_bind(self.durable, self.stream)
        self._task = asyncio.create_task(self._run(), name=f"kumeo-target-{self.endpoint.name}")

    async def open(self) -> None:
        """Acquire what delivering needs (a file, an HTTP client)."""

    async def close(self) -> None:
        """Release what :meth:`open` acquired."""

    @abc.abstractmethod
    async def deliver(self, msgs: list[Msg]) -> None:
        """Deliver a batch and ack (or dead-letter and ack, or NAK) every message of it."""

    async def _run(self) -> None:
        delay = 0.1
        while not self._stopping:
            try:
                msgs = await self._sub.fetch(self.batch_size, timeout=self.fetch_timeout)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a NATS hiccup: wait and pull again
                if self._stopping:
                    break
                if is_missing(exc):  # the server lost the consumer: only the deployer may create it again
                    log.error("%s", ConsumerMissing(self._who, self.stream, self.durable))
                    await asyncio.sleep(2.0)
                    continue
                log.warning("%s: pulling failed: %r", self.label, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            try:
                await self.deliver(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - let JetStream redeliver the batch
                log.error("%s: delivering a batch failed: %r", self.label, exc)
                for msg in msgs:
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=1.0)

    async def stop(self) -> None:
        """Stop pulling; the batch in hand gets ``stop_timeout`` seconds to be delivered. What is still unacked
        then (a receiver that does not answer) is redelivered by JetStream to the next adapter: nothing is lost."""
        if self._stopping:
            return
        self._stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.fetch_timeout + self.stop_timeout)
            except (TimeoutError, Exception):  # noqa: BLE001
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        await self.close()


def event_id_of(msg: Msg) -> str:
    """The event id a message carries, or one derived from its stream position."""
    found = envelope.header(msg.headers, envelope.EVENT_ID)
    if found:
        return found
    try:
        meta = msg.metadata
        return envelope.source_event_id(meta.stream, meta.sequence.stream, envelope.header(msg.headers,
                                                                                            envelope.MSG_ID))
    except Exception:  # noqa: BLE001
        return envelope.new_event_id()


def target_consumers(workflow: WorkflowPlan) -> list[ConsumerPlan]:
    """The durable consumers of a workflow's gateway (one per HTTP/File target), for the deployer to create.

    Agents' consumers are in the Plan (``WorkflowPlan.consumers``); these come from the target adapters themselves,
    so their settings (an HTTP target's ack wait follows its retries and timeout) have one source."""
    from kumeo_iac.runtime.io._file_target import FileTarget
    from kumeo_iac.runtime.io._http_target import HttpTarget

    out: list[ConsumerPlan] = []
    for ep in workflow.targets:
        if ep.kind == "HTTP":
            out.append(HttpTarget(workflow, ep).consumer_plan())
        elif ep.kind == "File":
            out.append(FileTarget(workflow, ep).consumer_plan())
    return out
