"""The worker: runs one agent of a WorkflowPlan on NATS JetStream, with at-least-once input and deduped output.

One worker owns everything about NATS for its agent, so agent kinds only compute (see ``_agent.py``):

1. **Consume.** Each of the agent's durable pull consumers is read by a pull loop that keeps one pull request of
   ``batch_size`` messages open on the server and hands over whatever has arrived, so a busy stream is read in
   batches and a quiet one with no batching delay. The deployer creates those consumers (the ``Workflow``
   component, or ``kumeo run``); the worker only binds to them (``CONSUMER.INFO``) and has no right to create one,
   so it cannot widen its filter. A consumer missing at start is a
   :class:`~kumeo_iac.runtime._binding.ConsumerMissing` error naming the stream and durable.
2. **Process.** Each message becomes an :class:`Event` (id from ``Kumeo-Event-Id``, or derived from the source
   stream position so a redelivered source message keeps its id). ``when`` false passes the payload on unchanged;
   otherwise the agent runs under ``timeout_seconds``.
3. **Publish, then ack.** Every Emit is published with ``Nats-Msg-Id = <event-id>:<agent>[:<n>]``; the input is
   acked only after every PubAck. A crash in between redelivers the input, and JetStream's duplicate window drops
   the re-publish, so nothing downstream is doubled and nothing is lost.
4. **Fail.** A transient error NAKs with the agent's backoff delay; ``EventRejected``, or the last allowed
   delivery, sends a dead letter (or the fallback) and acks.
   A publish the server keeps refusing (a full stream, no connection) NAKs too, except on the last allowed
   delivery, where a NAK would strand the event: the worker stores its output or a dead letter, holding the event
   in progress until one of them lands.
   No event can stop the worker: anything that raises while reading one (invalid UTF-8, ``NaN``/``Infinity``,
   JSON nested past the decoder's limit, an input over ``max_input_bytes``) or while handling it dead-letters that
   event with the reason and acks it, and the rest of the batch flows. An output the server would refuse (over its
   ``max_payload``, headers included) is never sent: the event is dead-lettered with the size and the limit, and
   the connection stays up. A dead letter always fits: its input is left out (with a note) when it would not.
5. **Reconnect.** nats.py reconnects the connection but not a pull consumer (nats.py#504: the server forgets the
   open pull request). On every reconnect, and whenever a pull request goes unanswered past its expiry, the worker
   re-binds: checks the consumer still exists, renews its inbox subscription if it was closed, and issues a fresh
   pull request. A consumer the server lost is logged as an error (what to do included), the worker reports not
   ready and checks again until the deployer has created it once more; then it resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from kumeo_iac.compile import AgentPlan, ConsumerPlan, WorkflowPlan
from kumeo_iac.errors import KumeoError, KumeoRuntimeError
from kumeo_iac.jetstream import connect, open_key_value, subject_matches
from kumeo_iac.runtime import envelope
from kumeo_iac.runtime._agent import Emit, Event, EventRejected, RuntimeAgent
from kumeo_iac.runtime._binding import ConsumerMissing, bind_durable
from kumeo_iac.runtime._health import HealthServer
from kumeo_iac.runtime._joins import JoinStore
from kumeo_iac.runtime._metrics import WorkerMetrics
from kumeo_iac.runtime._partitions import keyed_subjects, lane_durable, lane_of_process
from kumeo_iac.runtime.agents import WORKFLOW_CONFIG_KEY, expression_scope

log = logging.getLogger("kumeo.runtime")

_STATUS = "Status"
_STATUS_HEARTBEAT = "100"
_STATUS_DONE = frozenset({"404", "408", "409"})  # no messages / request expired / request ended (see description)
_DEFAULT_JOIN_TTL_SECONDS = 300.0
#: An event that takes longer than this makes the rest of its batch run concurrently (see ``_process``).
_SEQUENTIAL_LIMIT_SECONDS = 0.002
#: How much of an input a dead letter shows (as text) when the input itself is left out.
_PREVIEW_BYTES = 256
#: How often a worker whose consumer has gone missing says so again.
_MISSING_LOG_SECONDS = 30.0


class _Stop:
    """Queue sentinel: wakes a pull loop (stop or re-bind)."""


_WAKE = _Stop()


class _Puller:
    """One durable pull consumer read with a single open pull request (see the module docstring, step 1)."""

    def __init__(self, worker: Worker, plan: ConsumerPlan) -> None:
        self.worker = worker
        self.plan = plan
        self.stream = plan.stream
        self.durable = plan.durable
        self.queue: asyncio.Queue[tuple[int, Msg] | _Stop] = asyncio.Queue()
        self.bound = False
        self._sub: Any = None
        self._inbox = ""
        self._generation = -1  # the connection generation the pull request was made on
        self._outstanding = 0
        self._deadline = 0.0
        #: While the consumer is missing: when to log that again (an error every few seconds would flood the log).
        self.missing_logged_until = 0.0

    @property
    def needs_rebind(self) -> bool:
        return self._generation != self.worker.generation

    async def bind(self) -> None:
        """Check the consumer exists, subscribe the inbox, and forget any pull request of the past."""
        worker = self.worker
        nc = worker.nc
        generation = worker.generation
        await worker.bind_consumer(self.plan)
        if self._sub is None or self._sub._closed:
            self._inbox = nc.new_inbox()

            async def deliver(msg: Msg) -> None:
                self.queue.put_nowait((self._generation, msg))

            self._sub = await nc.subscribe(self._inbox, cb=deliver, pending_msgs_limit=-1, pending_bytes_limit=-1)
        self._generation = generation
        self._outstanding = 0
        self.bound = True

    async def _request(self) -> None:
        worker = self.worker
        expires = worker.fetch_expires
        request = {"batch": worker.batch_size, "expires": int(expires * 1e9)}
        api = f"{worker.js_api_prefix}.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}"
        await worker.nc.publish(api, json.dumps(request).encode(), reply=self._inbox)
        self._outstanding = worker.batch_size
        self._deadline = time.monotonic() + expires + 1.0

    async def next_batch(self) -> list[Msg]:
        """Wait for messages (at most until the pull request expires) and return every one that has arrived."""
        worker = self.worker
        if self._outstanding <= 0 or time.monotonic() > self._deadline:
            if not worker.nc.is_connected:
                await worker.wait_connected(1.0)
                return []
            await self._request()
        msgs: list[Msg] = []
        timeout = max(self._deadline - time.monotonic(), 0.001)
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            # Not even the server's 408 came back: the request was lost (a reconnect, a restarted server, a
            # deleted consumer). Re-bind, which re-checks the consumer, before pulling again.
            self._outstanding = 0
            self._generation = -1
            return msgs
        while True:
            if isinstance(item, _Stop):
                break
            generation, msg = item
            status = msg.headers.get(_STATUS) if msg.headers else None
            if status and not msg.data:
                if status in _STATUS_DONE and generation == self._generation:
                    self._outstanding = 0
                    if status == "409":
                        # "Consumer Deleted", "Leadership Change", "Exceeded MaxWaiting"…: bind afresh.
                        log.info("pull request on %s/%s ended: %s", self.stream, self.durable,
                                 (msg.headers or {}).get("Description"))
                        self._generation = -1
            elif status != _STATUS_HEARTBEAT:
                self._outstanding -= 1
                msgs.append(msg)
            if len(msgs) >= worker.batch_size or self.queue.empty():
                break
            item = self.queue.get_nowait()
        return msgs

    def wake(self) -> None:
        self.queue.put_nowait(_WAKE)

    async def close(self) -> list[Msg]:
        """Unsubscribe and return the messages that arrived but were never handed over (to be NAKed)."""
        self.bound = False
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        left: list[Msg] = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if not isinstance(item, _Stop):
                msg = item[1]
                if not (msg.headers and msg.headers.get(_STATUS)):
                    left.append(msg)
        return left


@dataclasses.dataclass
class _Outgoing:
    subject: str
    data: bytes
    headers: dict[str, str]
    kind: str  # "out" | "dlq" | "fallback"


@dataclasses.dataclass
class _Work:
    """One delivered message on its way through the worker."""

    msg: Msg
    event_id: str
    attempt: int
    payload: Any
    raw: bytes
    part: str
    traceparent: str
    event: Event | None = None
    outcome: list[Emit] | BaseException | None = None
    passthrough: Any = dataclasses.field(default=None)
    passthrough_set: bool = False
    join_complete: bool = False
    done: bool = False  # already answered (acked/naked) before publishing
    outgoing: list[_Outgoing] = dataclasses.field(default_factory=list)
    nak_delay: float | None = None  # set: NAK instead of ACK after publishing
    dead_lettered: bool = False
    #: Set when the input cannot travel in its dead letter as JSON (not decodable, too large): says why.
    input_note: str | None = None


class Worker:
    """Runs one agent of a workflow on NATS JetStream until stopped.

    ``agent`` is the RuntimeAgent to run; when None it is created from the agent kind's registry entry. Use
    ``await worker.start()`` then ``await worker.run()`` (returns once :meth:`stop` has drained the worker), or
    ``async with Worker(...)`` for a worker running in the background.
    """

    def __init__(
        self,
        plan: WorkflowPlan,
        agent_id: str,
        nats_url: str | None = None,
        base_dir: str | Path = ".",
        agent: RuntimeAgent | None = None,
        *,
        batch_size: int = 64,
        fetch_expires: float = 5.0,
        publish_timeout: float = 5.0,
        health_port: int | None = None,
        health_host: str = "0.0.0.0",
        join_ttl_seconds: float | None = None,
        join_sweep_seconds: float | None = None,
        lag_interval: float = 5.0,
        connect_timeout: float = 30.0,
        reconnect_wait: float = 0.25,
        stop_timeout: float | None = None,
        connect_options: Mapping[str, Any] | None = None,
        max_input_bytes: int | None = None,
        partition: int | None = None,
    ) -> None:
        self.workflow = plan
        #: Extra ``connect`` options: credentials (user/password, token, creds_file), inbox_prefix, tls.
        self.connect_options = dict(connect_options or {})
        self.plan: AgentPlan = plan.agent(agent_id)
        self.agent_id = agent_id
        self.nats_url = nats_url or plan.nats_url
        self.base_dir = Path(base_dir)
        self.agent = agent
        self.batch_size = batch_size
        self.fetch_expires = fetch_expires
        self.publish_timeout = publish_timeout
        self.lag_interval = lag_interval
        self.connect_timeout = connect_timeout
        self.reconnect_wait = reconnect_wait
        self.stop_timeout = stop_timeout if stop_timeout is not None else self.plan.timeout_seconds + 10.0
        self.metrics = WorkerMetrics(plan.name, agent_id)
        self.js_api_prefix = "$JS.API"
        #: Inputs larger than this (bytes) are dead-lettered unread: the argument, else $KUMEO_MAX_INPUT_BYTES,
        #: else the agent's Plan setting ``max_input_bytes``, else 1 MiB.
        self.max_input_bytes = _max_input_bytes(max_input_bytes, self.plan.settings)

        join = self.plan.settings.get("join") if isinstance(self.plan.settings, dict) else None
        self._join_settings: dict[str, Any] | None = join if isinstance(join, dict) else None
        if self._join_settings is None and len(self.plan.inputs) > 1:
            self._join_settings = {"parts": sorted(self.plan.inputs)}
        ttl = join_ttl_seconds
        if ttl is None and self._join_settings is not None:
            ttl = self._join_settings.get("timeout_seconds")
        self.join_ttl_seconds = float(ttl) if ttl else _DEFAULT_JOIN_TTL_SECONDS
        self.join_sweep_seconds = join_sweep_seconds or min(max(self.join_ttl_seconds / 4, 0.5), 30.0)

        self._bindings = self._input_bindings()
        self._binding_cache: dict[str, tuple[str, list[str]]] = {}
        self.generation = 0
        self.nc: NATS = NATS()
        self.js: Any = None
        self.joins: JoinStore | None = None
        self._when: Any = None
        lanes = self.plan.settings.get("partition") if isinstance(self.plan.settings, dict) else None
        #: The lane of a partitioned agent this worker consumes (None: every lane, or not partitioned).
        self.partition = lane_of_process(lanes, partition, agent_id) if isinstance(lanes, dict) else None
        consumers = self.plan.consumers
        if self.partition is not None:  # one lane, one worker: the key's order holds (see runtime._partitions)
            consumers = [c for c in consumers if c.durable == lane_durable(agent_id, self.partition)]
        self._keyed_outputs = self.plan.settings.get("keyed_outputs") if isinstance(self.plan.settings, dict) else None
        self._pullers = [_Puller(self, c) for c in consumers]
        #: Whether the agent took longer than ``_SEQUENTIAL_LIMIT_SECONDS`` an event lately (see ``_process``).
        self._slow_agent = False
        self._health = (
            HealthServer(self.is_ready, self.metrics.render, host=health_host, port=health_port)
            if health_port is not None
            else None
        )
        self._background: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self._stopping = False
        self._started = False
        self._running: asyncio.Future[None] | None = None
        self._closed = False
        self._batches = 0
        self._run_task: asyncio.Task[None] | None = None
        self._contexts: Any = None  # kumeo_iac.runtime.contexts.Contexts when the agent reads workflow contexts

    # -- facts -----------------------------------------------------------------------------------------------

    @property
    def health_port(self) -> int | None:
        return self._health.port if self._health is not None else None

    def is_ready(self) -> bool:
        """True while NATS is connected and every consumer is bound (what ``/readyz`` reports)."""
        return (
            self._started
            and not self._stopping
            and self.nc.is_connected
            and all(p.bound for p in self._pullers)
        )

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, bind to the consumers (:class:`ConsumerMissing` when one is not there), open the joins bucket,
        start the agent and the endpoints."""
        if self._started:
            return
        if self._health is not None:
            await self._health.start()
        if self.agent is None:
            self.agent = self._create_agent()
        await self._connect()
        if self.plan.when:
            from kumeo_iac.expr import compile_expression

            self._when = compile_expression(self.plan.when)
        if self._join_settings is not None:
            self.joins = await self._open_joins()
        self.agent.host = self  # release() and mount_http() for kinds that park events (HumanReview)
        await self.agent.start()
        if self.plan.settings.get("context"):
            # Workflow contexts (a Bayesian network) are loaded once here; pgmpy only for agents that read one.
            from kumeo_iac.runtime.contexts import load_contexts

            self._contexts = await load_contexts(self.plan, self.base_dir)
        for puller in self._pullers:
            await puller.bind()
        self._started = True
        self._background.append(asyncio.create_task(self._refresh_lag(), name="kumeo-lag"))
        if self.joins is not None:
            self._background.append(asyncio.create_task(self._sweep_joins(), name="kumeo-join-sweep"))
        log.info("worker %s/%s started on %s (%d consumer(s))", self.workflow.name, self.agent_id, self.nats_url,
                 len(self._pullers))

    async def run(self) -> None:
        """Process events until :meth:`stop`; in-flight events finish before this returns."""
        await self.start()
        loop = asyncio.get_running_loop()
        self._running = loop.create_future()
        try:
            await asyncio.gather(*(self._consume(p) for p in self._pullers))
        finally:
            if not self._running.done():
                self._running.set_result(None)

    async def stop(self) -> None:
        """Stop fetching, let in-flight events finish (publish and ack), NAK what was fetched but not started,
        and drain the connection. Safe to call more than once."""
        if self._closed:
            return
        self._stopping = True
        for puller in self._pullers:
            puller.wake()
        if self._running is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._running), self.stop_timeout)
        self._closed = True
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(BaseException):
                await task
        for puller in self._pullers:
            for msg in await puller.close():
                with contextlib.suppress(Exception):
                    await msg.nak()
        if self.agent is not None and self._started:
            try:
                await self.agent.stop()
            except Exception:
                log.exception("agent %s failed to stop cleanly", self.agent_id)
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 5.0)
            if not self.nc.is_closed:
                with contextlib.suppress(Exception):
                    await self.nc.close()
        if self._health is not None:
            await self._health.stop()
        log.info("worker %s/%s stopped", self.workflow.name, self.agent_id)

    async def __aenter__(self) -> Worker:
        await self.start()
        self._run_task = asyncio.create_task(self.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self._run_task is not None:
            with contextlib.suppress(Exception):
                await self._run_task

    # -- NATS --------------------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        async def disconnected() -> None:
            self._connected.clear()
            if not self._closed:
                log.warning("worker %s: disconnected from NATS", self.agent_id)

        async def reconnected() -> None:
            self.generation += 1  # every puller re-binds before its next pull request
            self._connected.set()
            for puller in self._pullers:
                puller.wake()
            log.warning("worker %s: reconnected to NATS", self.agent_id)

        async def error(exc: Exception) -> None:
            log.debug("worker %s: NATS error: %r", self.agent_id, exc)

        try:
            self.nc = await connect(
                self.nats_url,
                timeout_s=self.connect_timeout,
                name=f"kumeo-{self.workflow.slug}-{self.agent_id}",
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=self.reconnect_wait,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
                **self.connect_options,
            )
        except KumeoError as exc:
            raise KumeoRuntimeError(f"worker {self.workflow.name}/{self.agent_id}: {exc}") from exc
        self._connected.set()
        self.js = self.nc.jetstream()
        self.js_api_prefix = self.js._prefix

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.nc.is_connected

    async def bind_consumer(self, plan: ConsumerPlan) -> None:
        """Check that the deployer created the consumer; :class:`ConsumerMissing` (stream and durable named) if not.

        Never creates it: the agent's identity may not, and a worker that could would also be able to widen it."""
        await bind_durable(self.js, plan.stream, plan.durable,
                           who=f"worker {self.workflow.name}/{self.agent_id}")

    async def _open_joins(self) -> JoinStore:
        assert self._join_settings is not None
        bucket = self._join_settings.get("bucket")
        kv_plan = next(
            (kv for kv in self.workflow.key_values if (bucket and kv.bucket == bucket) or
             (not bucket and kv.purpose == "joins")), None)
        if kv_plan is None:
            raise KumeoRuntimeError(
                f"agent {self.agent_id} joins several inputs but workflow {self.workflow.name} has no joins KV "
                "bucket in its Plan; recompile the workflow"
            )
        # The Plan keeps the bucket's configuration in the wire shape (nanoseconds), which open_key_value reads.
        kv = await open_key_value(self.js, kv_plan.config)
        parts = list(self._join_settings.get("parts") or sorted(self.plan.inputs))
        return JoinStore(kv, self.agent_id, parts, self.join_ttl_seconds)

    def _create_agent(self) -> RuntimeAgent:
        from kumeo_iac.runtime.agents import create_agent

        return create_agent(self.plan, self.workflow, self.base_dir)

    def _input_bindings(self) -> list[tuple[str, str, list[str]]]:
        """(subject pattern, part, field path) of every input, most specific subject first."""
        out: list[tuple[str, str, list[str]]] = []
        for b in self.plan.input_bindings:
            out.append((b["subject"], b.get("part") or "", list(b.get("field") or [])))
        if not out:
            for part, subject in self.plan.inputs.items():
                out.append((subject, part, list(self.plan.input_fields.get(part) or [])))
        out.sort(key=lambda b: ("*" in b[0] or ">" in b[0], -len(b[0])))
        return out

    def _binding_for(self, subject: str) -> tuple[str, list[str]]:
        found = self._binding_cache.get(subject)
        if found is not None:
            return found
        found = ("", [])
        for pattern, part, field in self._bindings:
            if subject_matches(pattern, subject):
                found = (part, field)
                break
        else:
            if len(self._bindings) == 1:
                found = (self._bindings[0][1], self._bindings[0][2])
        if len(self._binding_cache) < 10_000:  # wildcard inputs could see unboundedly many subjects
            self._binding_cache[subject] = found
        return found

    # -- the pull loop -----------------------------------------------------------------------------------------

    async def _consume(self, puller: _Puller) -> None:
        delay = 0.05
        while not self._stopping:
            try:
                if puller.needs_rebind:
                    if not await self.wait_connected(1.0):
                        continue
                    await puller.bind()
                    puller.missing_logged_until = 0.0
                    log.info("worker %s: consumer %s/%s bound", self.agent_id, puller.stream, puller.durable)
                msgs = await puller.next_batch()
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except ConsumerMissing as exc:
                # The server lost the consumer (deleted, or a server with a fresh store). Only the deployer may
                # create it: say so, stay not ready, and check again until it is back.
                puller.bound = False
                puller._generation = -1
                now = time.monotonic()
                if now >= puller.missing_logged_until:
                    log.error("%s; waiting for it (not ready until then)", exc)
                    puller.missing_logged_until = now + _MISSING_LOG_SECONDS
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except Exception as exc:  # noqa: BLE001 - a NATS hiccup: re-bind and carry on
                puller.bound = False
                puller._generation = -1
                log.warning("worker %s: consumer %s/%s: %r; re-binding", self.agent_id, puller.stream,
                            puller.durable, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if msgs:
                try:
                    await self._handle_batch(msgs)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - no event may stop the worker
                    await self._salvage(msgs, exc)

    async def _salvage(self, msgs: list[Msg], error: BaseException) -> None:
        """A batch raised where it should not have: handle its messages one by one, and dead-letter (and ack)
        the one that still raises on its own, so it neither stops the worker nor comes back forever."""
        log.exception("worker %s: a batch of %d failed: %r; handling its events one by one", self.agent_id,
                      len(msgs), error)
        for msg in msgs:
            if getattr(msg, "_ackd", False):
                continue
            if len(msgs) > 1:
                self.metrics.events_in -= 1  # counted again by _receive
                try:
                    await self._handle_batch([msg])
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    error = exc
            work = self._receive(msg)
            work.outgoing = []
            work.input_note = work.input_note or "left out after an internal error"
            self._final_failure(work, EventRejected(f"internal error handling the event: {_reason(error)}"))
            if not await self._publish_now(self._fit(work).outgoing):
                await self._answer(msg, self._retry_delay(work.attempt) or 1.0)
                continue
            await self._finish(work)

    # -- one batch -------------------------------------------------------------------------------------------

    async def _handle_batch(self, msgs: list[Msg]) -> None:
        started = time.perf_counter()
        works = [self._receive(m) for m in msgs]
        if self.joins is not None:
            await self._collect_joins(works)
        if self._contexts:
            self._add_contexts(works)
        self._prepare(works)
        await self._process(works)
        for work in works:
            if not work.done:
                try:
                    self._plan_outgoing(work)
                except Exception as exc:  # noqa: BLE001 - an output that is not JSON (NaN, a cycle…) is final
                    work.outgoing = []
                    work.nak_delay = None
                    self._final_failure(work, EventRejected(f"the output is not JSON: {_reason(exc)}"))
        await self._publish_and_answer(works)
        elapsed = time.perf_counter() - started
        for _ in works:
            self.metrics.observe_processing(elapsed)
        self._batches += 1

    def _receive(self, msg: Msg) -> _Work:
        self.metrics.events_in += 1
        try:
            return self._read(msg)
        except Exception as exc:  # noqa: BLE001 - no event may stop the worker: this one is dead-lettered
            log.warning("worker %s: could not read a message on %s: %r", self.agent_id, msg.subject, exc)
            headers = msg.headers or {}
            try:
                meta = msg.metadata
                attempt, fallback_id = meta.num_delivered or 1, f"{meta.stream}-{meta.sequence.stream}"
            except Exception:  # noqa: BLE001
                attempt, fallback_id = 1, envelope.new_event_id()
            event_id = str(envelope.header(headers, envelope.EVENT_ID) or fallback_id)
            raw = msg.data or b""
            work = _Work(msg=msg, event_id=event_id, attempt=attempt, payload=None, raw=raw, part="",
                         traceparent=envelope.next_traceparent(None, event_id))
            work.outcome = EventRejected(f"could not read the event: {_reason(exc)}")
            work.input_note = "the input could not be read"
            return work

    def _read(self, msg: Msg) -> _Work:
        headers = msg.headers or {}
        try:
            meta = msg.metadata
            attempt = meta.num_delivered or 1
            stream, sequence = meta.stream, meta.sequence.stream
        except Exception:  # noqa: BLE001 - not a JetStream message (should not happen on a pull consumer)
            attempt, stream, sequence = 1, "", 0
        event_id = envelope.header(headers, envelope.EVENT_ID) or envelope.source_event_id(
            stream, sequence, envelope.header(headers, envelope.MSG_ID))
        part, field = self._binding_for(msg.subject)
        raw = msg.data or b""
        work = _Work(msg=msg, event_id=event_id, attempt=attempt, payload=None, raw=raw, part=part,
                     traceparent=envelope.next_traceparent(envelope.header(headers, envelope.TRACEPARENT), event_id))
        if len(raw) > self.max_input_bytes:
            work.outcome = EventRejected(
                f"input of {len(raw)} bytes is over the worker's limit of {self.max_input_bytes} bytes "
                f"({envelope.MAX_INPUT_BYTES_ENV})")
            work.input_note = "the input is over the worker's input size limit"
            return work
        try:
            work.payload = envelope.loads(raw) if raw else None
        except envelope.NotJSON as exc:
            work.outcome = EventRejected(str(exc))
            work.input_note = "the input is not JSON"
        except ValueError:
            work.payload = raw.decode("utf-8")  # a source sending plain text: the event is that string
        if work.outcome is None:
            try:
                data = _select(work.payload, field) if self.joins is None else work.payload
            except EventRejected as exc:
                work.outcome = exc
            else:
                work.event = Event(id=event_id, data=data, subject=msg.subject, attempt=attempt,
                                   headers=dict(headers))
        return work

    async def _collect_joins(self, works: list[_Work]) -> None:
        assert self.joins is not None
        for work in works:
            if work.outcome is not None or work.event is None:
                continue
            try:
                parent = envelope.header(work.msg.headers, envelope.TRACEPARENT)
                result = await self.joins.add(work.event_id, work.part, work.payload, traceparent=parent)
            except Exception as exc:  # noqa: BLE001 - the bucket is unreachable: retry the part later
                work.outcome = exc
                continue
            if result.state == "waiting" or result.state == "done":
                # Stored (or a duplicate of a join already emitted): the part is safe in the bucket.
                work.done = True
                await self._answer(work.msg, None)
            elif result.state == "expired":
                work.outcome = EventRejected(
                    f"part '{work.part}' arrived after its join expired ({self.join_ttl_seconds:g} s)")
            else:
                data: dict[str, Any] = {}
                try:
                    for _pattern, part, field in self._bindings:
                        if part in result.parts and part not in data:
                            data[part] = _select(result.parts[part], field)
                except Exception as exc:  # noqa: BLE001 - a part that cannot be read rejects the event
                    work.outcome = exc if isinstance(exc, EventRejected) else EventRejected(_reason(exc))
                    continue
                work.join_complete = True
                work.payload = result.parts
                work.traceparent = envelope.next_traceparent(result.traceparent, work.event_id)
                work.event = Event(id=work.event_id, data=data, subject=work.msg.subject, attempt=work.attempt,
                                   headers=dict(work.msg.headers or {}))

    def _add_contexts(self, works: list[_Work]) -> None:
        """Add each workflow context's answer to the event (``risk.fraud``), before ``when`` and the agent see it."""
        for work in works:
            if work.done or work.outcome is not None or work.event is None:
                continue
            try:
                work.event.data = self._contexts.enrich(work.event.data)
            except Exception as exc:  # noqa: BLE001 - EventRejected (a value naming no state) is final, others retry
                work.outcome = exc

    def _prepare(self, works: list[_Work]) -> None:
        """Apply ``when``: an event it does not select passes on unchanged."""
        if self._when is None:
            return
        for work in works:
            if work.done or work.outcome is not None or work.event is None:
                continue
            try:
                # `when` sees what every agent condition sees: the fields, `input` and the workflow `config`.
                selected = self._when.truthy(
                    expression_scope(work.event.data, self.plan.settings.get(WORKFLOW_CONFIG_KEY) or {})
                )
            except Exception as exc:  # noqa: BLE001 - KumeoError, or anything the event makes `when` raise
                reason = exc if isinstance(exc, KumeoError) else _reason(exc)
                work.outcome = EventRejected(f"when {self.plan.when!r}: {reason}")
                continue
            if not selected:
                work.passthrough = work.payload if work.join_complete else work.raw
                work.passthrough_set = True

    async def _process(self, works: list[_Work]) -> None:
        todo = [w for w in works if not w.done and w.outcome is None and w.event is not None and not w.passthrough_set]
        if not todo:
            return
        agent = self.agent
        assert agent is not None
        timeout = self.plan.timeout_seconds
        if type(agent).process_batch is not RuntimeAgent.process_batch:
            try:
                results = await asyncio.wait_for(agent.process_batch([w.event for w in todo]), timeout)  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - the whole batch failed: each event retries on its own
                results = [_timeout_error(exc, timeout)] * len(todo)
            for work, result in zip(todo, results, strict=False):
                work.outcome = result
            return

        async def one(event: Event) -> list[Emit] | BaseException:
            try:
                async with asyncio.timeout(timeout):
                    return await agent.process(event)
            except Exception as exc:  # noqa: BLE001 - the agent's failure is the event's outcome
                return _timeout_error(exc, timeout)

        # Events run one after the other while the agent answers at once (a task per event would cost more than
        # the work); as soon as one takes a while (I/O: an LLM, a model server) the rest run concurrently. An agent
        # found slow in one batch starts the next one concurrently at once, so its first event does not hold the
        # others for a whole reply each batch; a concurrent batch that turns out quick goes back to sequential.
        clock = time.perf_counter
        if self._slow_agent and len(todo) > 1:
            began = clock()
            results = await asyncio.gather(*(one(w.event) for w in todo))  # type: ignore[arg-type]
            for work, result in zip(todo, results, strict=True):
                work.outcome = result
            self._slow_agent = clock() - began > _SEQUENTIAL_LIMIT_SECONDS * len(todo)
            return
        for index, work in enumerate(todo):
            began = clock()
            work.outcome = await one(work.event)  # type: ignore[arg-type]
            if clock() - began > _SEQUENTIAL_LIMIT_SECONDS:
                self._slow_agent = True
                if index + 1 < len(todo):
                    rest = todo[index + 1:]
                    results = await asyncio.gather(*(one(w.event) for w in rest))  # type: ignore[arg-type]
                    for other, result in zip(rest, results, strict=True):
                        other.outcome = result
                    return

    def _plan_outgoing(self, work: _Work) -> None:
        if work.passthrough_set:
            data = work.passthrough if isinstance(work.passthrough, bytes) else _dumps(work.passthrough)
            self._add_outputs(work, [(None, data)])
            return
        outcome = work.outcome
        if isinstance(outcome, BaseException):
            self.metrics.events_failed += 1
            final = isinstance(outcome, (EventRejected, RecursionError)) or work.attempt >= self.plan.max_deliver
            if not final:
                work.nak_delay = self._retry_delay(work.attempt)
                log.info("worker %s: event %s attempt %d failed, retrying: %s", self.agent_id, work.event_id,
                         work.attempt, _reason(outcome))
                return
            self._final_failure(work, outcome)
            return
        emits = outcome if isinstance(outcome, list) else []
        if not emits and isinstance(outcome, list) and self.agent is not None and self.agent.parks_events:
            return  # parked durably by the agent (see _agent.py): ack, publish nothing now; release() later
        if not emits:
            # The contract says an agent always emits; one that does not still must not drop the event.
            emits = [Emit(work.event.data if work.event is not None else work.payload)]
        self._add_outputs(work, [(e.subject, _dumps(e.data)) for e in emits])

    def _add_outputs(self, work: _Work, emits: list[tuple[str | None, bytes]]) -> None:
        work.outgoing.extend(self._outputs(work.event_id, work.attempt, work.traceparent, emits))

    def _outputs(self, event_id: str, attempt: int, traceparent: str,
                 emits: list[tuple[str | None, bytes]]) -> list[_Outgoing]:
        out: list[_Outgoing] = []
        for index, (subject, data) in enumerate(emits):
            msg_id = envelope.dedupe_id(event_id, self.agent_id, index)
            subjects = [subject] if subject else [self.plan.output_subject, *self.plan.target_subjects,
                                                  *keyed_subjects(self._keyed_outputs, data)]
            for n, target in enumerate(dict.fromkeys(subjects)):
                # One id per (emit, subject): a target in the same stream as the output must not be deduped away.
                mid = msg_id if n == 0 else f"{msg_id}@{target}"
                headers = envelope.build_headers(event_id=event_id, agent=self.agent_id, attempt=attempt,
                                                 traceparent=traceparent, msg_id=mid)
                out.append(_Outgoing(target, data, headers, "out"))
        return out

    # -- the agent's host (see _agent.AgentHost) -------------------------------------------------------------

    async def release(self, event_id: str, emits: list[Emit], *, traceparent: str | None = None,
                      attempt: int = 1) -> None:
        """Publish the output of an event the agent parked earlier, with the envelope of a normal hop.

        The dedupe ids are the ones the event would have had without parking, so a release repeated within the
        stream's duplicate window (two replicas, a crash before the agent recorded it) is dropped by JetStream.
        """
        hop = envelope.next_traceparent(traceparent, event_id)
        outputs = self._outputs(event_id, attempt, hop, [(e.subject, _dumps(e.data)) for e in emits])
        too_large = self._too_large(outputs)
        if too_large is not None:
            outputs = [self._dead_letter(event_id, None, attempt, too_large, hop, "dlq:release",
                                         input_note="the input of a released event is not kept")]
        for out in outputs:
            await self.js.publish(out.subject, out.data, headers=dict(out.headers), timeout=self.publish_timeout)
            if out.kind == "dlq":
                self.metrics.events_dead_lettered += 1
            else:
                self.metrics.events_out += 1

    def mount_http(self, prefix: str, handler: Any) -> bool:
        """Serve ``prefix`` on the worker's HTTP server (the health port); False when it runs without one."""
        if self._health is None:
            return False
        self._health.mount(prefix, handler)
        return True

    def _final_failure(self, work: _Work, error: BaseException) -> None:
        reason = _reason(error)
        fallback = self.plan.fallback or {}
        if "value" in fallback:
            log.warning("worker %s: event %s failed (%s); emitting the fallback value", self.agent_id,
                        work.event_id, reason)
            self._add_outputs(work, [(None, _dumps(fallback["value"]))])
            return
        if fallback.get("agent") or fallback.get("subject"):
            subject = fallback.get("subject") or f"kumeo.{self.workflow.slug}.{self.agent_id}.fallback"
            headers = envelope.build_headers(
                event_id=work.event_id, agent=self.agent_id, attempt=work.attempt, traceparent=work.traceparent,
                msg_id=f"{envelope.dedupe_id(work.event_id, self.agent_id)}:fallback", error=reason)
            data = _dumps(work.payload) if work.join_complete else work.raw
            work.outgoing.append(_Outgoing(subject, data, headers, "fallback"))
            log.warning("worker %s: event %s failed (%s); handed to fallback %s", self.agent_id, work.event_id,
                        reason, fallback.get("agent"))
            return
        # A join part failing on its own (it came too late) is one of several dead letters of its event id.
        suffix = f"dlq:{work.part}" if self.joins is not None and not work.join_complete else "dlq"
        replay_of = (work.msg.headers or {}).get(envelope.REPLAY_OF)
        if replay_of:
            # A replayed event that fails again is a new dead letter, not a duplicate of the first one.
            suffix += f":replay:{replay_of}"
        work.outgoing.append(
            self._dead_letter(work.event_id, work.payload, work.attempt, reason, work.traceparent, suffix,
                              raw=work.raw, input_note=work.input_note))
        work.dead_lettered = True
        log.warning("worker %s: event %s dead-lettered after attempt %d: %s", self.agent_id, work.event_id,
                    work.attempt, reason)

    def _dead_letter(self, event_id: str, payload: Any, attempt: int, reason: str, traceparent: str,
                     suffix: str = "dlq", *, raw: bytes | None = None, input_note: str | None = None) -> _Outgoing:
        """The dead letter of an event: ``{"error", "agent", "input", "attempt"}``.

        It always fits the server's ``max_payload``: when the input is not JSON (``input_note`` says why) or would
        make the dead letter too large, ``input`` is left out, and ``input_omitted`` (why), ``input_bytes`` and
        ``input_preview`` (its first bytes as text) stand in for it.
        """
        headers = envelope.build_headers(event_id=event_id, agent=self.agent_id, attempt=attempt,
                                         traceparent=traceparent,
                                         msg_id=f"{envelope.dedupe_id(event_id, self.agent_id)}:{suffix}", error=reason)
        limit = self._max_payload()
        data = None
        if input_note is None:
            body = {"error": reason, "agent": self.agent_id, "input": payload, "attempt": attempt}
            try:
                data = _dumps(body)
            except Exception:  # noqa: BLE001 - an input that cannot be written back is left out
                input_note = "the input cannot be written as JSON"
            else:
                if envelope.wire_size(data, headers) > limit:
                    input_note = f"the input would make the dead letter larger than max_payload ({limit} bytes)"
                    data = None
        if data is None:
            if raw is None:
                with contextlib.suppress(Exception):
                    raw = _dumps(payload)
            raw = raw or b""
            body = {"error": envelope.one_line(reason, 2000), "agent": self.agent_id, "attempt": attempt,
                    "input_omitted": input_note, "input_bytes": len(raw),
                    "input_preview": raw[:_PREVIEW_BYTES].decode("utf-8", "replace")}
            data = _dumps(body)
        return _Outgoing(self.plan.dead_letter_subject, data, headers, "dlq")

    def _max_payload(self) -> int:
        """The server's ``max_payload`` (headers and payload together), from its INFO; 1 MiB before connecting."""
        try:
            value = int(self.nc.max_payload)
        except Exception:  # noqa: BLE001 - not connected yet
            value = 0
        return value if value > 0 else 1024 * 1024

    def _too_large(self, outgoing: list[_Outgoing]) -> str | None:
        """Why one of ``outgoing`` cannot be published (over the server's max_payload), or None."""
        limit = self._max_payload()
        for out in outgoing:
            size = envelope.wire_size(out.data, out.headers)
            if size > limit:
                what = {"out": "output", "fallback": "fallback message", "dlq": "dead letter"}[out.kind]
                return (f"the {what} to {out.subject} is {size} bytes, over the NATS server's max_payload of "
                        f"{limit} bytes")
        return None

    def _fit(self, work: _Work) -> _Work:
        """Replace the outgoing messages of ``work`` by a dead letter when one of them is too large to publish."""
        reason = self._too_large(work.outgoing)
        if reason is None:
            return work
        log.warning("worker %s: event %s dead-lettered: %s", self.agent_id, work.event_id, reason)
        if any(out.kind == "out" for out in work.outgoing):
            self.metrics.events_failed += 1
        suffix = "dlq:size"
        replay_of = (work.msg.headers or {}).get(envelope.REPLAY_OF)
        if replay_of:
            suffix += f":replay:{replay_of}"
        work.outgoing = [self._dead_letter(work.event_id, work.payload, work.attempt, reason, work.traceparent,
                                           suffix, raw=work.raw, input_note=work.input_note)]
        work.dead_lettered = True
        work.nak_delay = None
        return work

    def _retry_delay(self, attempt: int) -> float:
        delays = self.plan.backoff_seconds
        if not delays:
            return 0.0
        return float(delays[min(attempt - 1, len(delays) - 1)])

    async def _publish_and_answer(self, works: list[_Work]) -> None:
        """Publish every outgoing message of the batch at once, wait for the PubAcks, then ack (or NAK) inputs.

        A work whose publishes failed is retried twice within the batch (the duplicate window makes re-publishing
        the ones that did land harmless); after that its input is NAKed so JetStream redelivers it later — unless
        this was its last allowed delivery, when a NAK would end it silently (see :meth:`_settle_last_delivery`).
        """
        pending = [self._fit(w) for w in works if not w.done]
        errors: dict[int, str] = {}
        for round_ in range(3):
            futures: list[tuple[_Work, asyncio.Future[Any]]] = []
            failed: set[int] = set()
            for work in pending:
                for out in work.outgoing:
                    try:
                        future = await self.js.publish_async(out.subject, out.data, headers=dict(out.headers))
                    except Exception as exc:  # noqa: BLE001 - not connected, too many stalled publishes
                        log.debug("publish to %s failed: %r", out.subject, exc)
                        failed.add(id(work))
                        errors[id(work)] = _reason(exc)
                        break
                    futures.append((work, future))
            if futures:
                _, not_done = await asyncio.wait([f for _, f in futures], timeout=self.publish_timeout)
                for future in not_done:
                    future.cancel()
            for work, future in futures:
                if future.cancelled() or future.exception() is not None:
                    if not future.cancelled():
                        log.debug("publish failed: %r", future.exception())
                    failed.add(id(work))
                    errors[id(work)] = ("no PubAck within the publish timeout" if future.cancelled()
                                        else _reason(future.exception()))  # type: ignore[arg-type]
            retry: list[_Work] = []
            for work in pending:
                if id(work) in failed:
                    retry.append(work)
                else:
                    await self._finish(work)
            pending = retry
            if not pending or self._stopping:
                break
            await asyncio.sleep(0.2 * (round_ + 1))
        for work in pending:
            self.metrics.events_failed += 1
            if work.attempt >= self.plan.max_deliver:
                await self._settle_last_delivery(work, errors.get(id(work), "publishing failed"))
                continue
            # Publishing failed (NATS unreachable, a full stream): let JetStream redeliver the event later.
            await self._answer(work.msg, self._retry_delay(work.attempt) or 1.0)

    async def _settle_last_delivery(self, work: _Work, reason: str) -> None:
        """Store the output (or a dead letter) of an event on its last allowed delivery, whatever it takes.

        JetStream does not redeliver past ``max_deliver``, so NAKing here would leave the event unacked in its
        stream with neither an output nor a dead letter. Instead: publish the outputs again, else a dead letter
        saying why; if neither can be stored (the stream holding both is full, NATS is down) keep the event in
        progress and retry with backoff, which also stops this puller from fetching more — back-pressure — until
        the server takes the messages or the worker stops.
        """
        letter = None
        if any(out.kind == "out" for out in work.outgoing):
            letter = self._dead_letter(work.event_id, work.payload, work.attempt,
                                       f"could not publish the output: {reason}", work.traceparent)
        delay, tries = 0.25, 0
        while True:
            if await self._publish_now(work.outgoing):
                break
            if letter is not None and await self._publish_now([letter]):
                work.outgoing = [letter]
                work.dead_lettered = True
                log.warning("worker %s: event %s dead-lettered on its last delivery: could not publish the "
                            "output: %s", self.agent_id, work.event_id, reason)
                break
            if self._stopping or self._closed:
                log.error("worker %s: stopping with event %s unsettled on its last delivery (its output and dead "
                          "letter could not be published: %s); JetStream will not redeliver it, replay it from "
                          "its stream", self.agent_id, work.event_id, reason)
                return
            if tries % 20 == 0:
                log.warning("worker %s: holding event %s on its last delivery until its output can be published: "
                            "%s", self.agent_id, work.event_id, reason)
            tries += 1
            with contextlib.suppress(Exception):
                await work.msg.in_progress()  # keeps ack_wait from ending the event while it waits
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        await self._finish(work)

    async def _publish_now(self, outgoing: list[_Outgoing]) -> bool:
        """Publish each message and wait for its PubAck; False at the first one the server did not store."""
        try:
            for out in outgoing:
                await self.js.publish(out.subject, out.data, headers=dict(out.headers), timeout=self.publish_timeout)
        except Exception as exc:  # noqa: BLE001 - a full stream, no connection: the caller decides
            log.debug("publish failed: %r", exc)
            return False
        return True

    async def _finish(self, work: _Work) -> None:
        for out in work.outgoing:
            if out.kind == "out":
                self.metrics.events_out += 1
            elif out.kind == "dlq":
                self.metrics.events_dead_lettered += 1
        if work.nak_delay is not None:
            await self._answer(work.msg, work.nak_delay)
            return
        if work.join_complete and self.joins is not None:
            try:
                await self.joins.complete(work.event_id)
            except Exception as exc:  # noqa: BLE001 - output is published; a redelivery re-publishes (deduped)
                log.warning("worker %s: could not close join %s: %r", self.agent_id, work.event_id, exc)
                await self._answer(work.msg, 0.5)
                return
        await self._answer(work.msg, None)

    async def _answer(self, msg: Msg, nak_delay: float | None) -> None:
        try:
            if nak_delay is None:
                await msg.ack()
            else:
                await msg.nak(delay=nak_delay)
        except Exception as exc:  # noqa: BLE001 - lost with the connection: JetStream redelivers after ack_wait
            log.debug("answer failed: %r", exc)

    # -- background -----------------------------------------------------------------------------------------

    async def _refresh_lag(self) -> None:
        while True:
            try:
                total = 0
                for puller in self._pullers:
                    info = await self.js.consumer_info(puller.stream, puller.durable)
                    total += int(info.num_pending or 0)
                self.metrics.consumer_lag = total
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - metrics must not kill the worker
                log.debug("consumer lag refresh failed: %r", exc)
            await asyncio.sleep(self.lag_interval)

    async def _sweep_joins(self) -> None:
        assert self.joins is not None
        while True:
            await asyncio.sleep(self.join_sweep_seconds)
            try:
                await self.sweep_joins()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.debug("join sweep failed: %r", exc)

    async def sweep_joins(self) -> int:
        """Dead-letter every join of this agent older than the join TTL; returns how many it dead-lettered."""
        if self.joins is None or not self.nc.is_connected:
            return 0
        count = 0
        for expired in await self.joins.claim_expired():
            reason = (f"join incomplete after {self.join_ttl_seconds:g} s: missing part(s) "
                      f"{', '.join(expired.missing)}")
            out = self._dead_letter(expired.event_id, expired.parts, 1, reason,
                                    envelope.next_traceparent(expired.traceparent, expired.event_id))
            await self.js.publish(out.subject, out.data, headers=out.headers, timeout=self.publish_timeout)
            await self.joins.forget(expired.key)
            self.metrics.events_dead_lettered += 1
            count += 1
            log.warning("worker %s: join %s dead-lettered: %s", self.agent_id, expired.event_id, reason)
        return count


# -- helpers ------------------------------------------------------------------------------------------------------


def _dumps(data: Any) -> bytes:
    """Strict JSON (no NaN/Infinity): :class:`envelope.NotJSON` says why not."""
    return envelope.dumps(data)


def _max_input_bytes(explicit: int | None, settings: Any) -> int:
    """The input size limit: ``explicit``, else $KUMEO_MAX_INPUT_BYTES, else the Plan setting, else 1 MiB."""
    import os

    candidates = [("max_input_bytes", explicit), (envelope.MAX_INPUT_BYTES_ENV,
                                                  os.environ.get(envelope.MAX_INPUT_BYTES_ENV) or None)]
    if isinstance(settings, Mapping):
        candidates.append(("the Plan setting max_input_bytes", settings.get("max_input_bytes")))
    for name, value in candidates:
        if value is None:
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number <= 0:
            raise KumeoRuntimeError(f"{name} must be a positive number of bytes, not {value!r}")
        return number
    return envelope.DEFAULT_MAX_INPUT_BYTES


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if not isinstance(error, KumeoError):
        text = f"{type(error).__name__}: {text}"
    return envelope.one_line(text)


def _timeout_error(exc: BaseException, timeout: float) -> BaseException:
    if isinstance(exc, asyncio.TimeoutError):
        return TimeoutError(f"agent did not answer within {timeout:g} s")
    return exc


def _select(payload: Any, field: list[str]) -> Any:
    """The part of a payload an input selects (``risk.output.score`` → ``payload["score"]``)."""
    value = payload
    for name in field:
        if isinstance(value, dict) and name in value:
            value = value[name]
        elif isinstance(value, list) and name.isdigit() and int(name) < len(value):
            value = value[int(name)]
        else:
            raise EventRejected(f"the input has no field '{'.'.join(field)}'")
    return value
