"""The local runner behind `kumeo run`: a Plan running on NATS JetStream on this machine, with zero setup.

:class:`LocalRunner` starts (or connects to) a nats-server, creates the Plan's streams, consumers and KV buckets with
the same ``ensure_*`` functions the Pulumi providers use (the agents' consumers and the gateways' target consumers:
the runner is the deployer, and workers and target adapters only bind to their durable), starts every agent (asyncio
tasks in this process, or one ``python -m kumeo_iac.runtime`` process per agent, like pods) and each workflow's
:class:`~kumeo_iac.runtime.io.Gateway` (HTTP/Timer/File sources, HTTP/File targets), then watches every target
subject and every dead-letter subject ``kumeo.<slug>.dlq.>`` and reports each message seen there as an output.

**The drain rule** (:meth:`LocalRunner.drain`). Polled every 50 ms once every finite source (the input, File
sources) has published what it has:

1. *idle*: every consumer — the agents', checked upstream first in topological order, then the target adapters'
   — has ``num_pending == 0`` and ``num_ack_pending == 0`` (an event waiting for a retry counts as pending), on
   two polls in a row; then a flush of the output subscription makes sure every output already stored has been
   seen (workers ack an input only after the server stored its outputs, and the server routes a message to core
   subscribers before it answers the PubAck);
2. drained when idle and *every input event has reached a target or a dead-letter subject*; otherwise (an event
   held in an incomplete join, a workflow with no target, live HTTP/Timer sources) when idle has held with no new
   output for the *quiet period* (0.5 s);
3. not drained after ``timeout`` seconds: the result names the agents and targets still holding events.

**Supervision** (``processes=True``, and the embedded nats-server). An agent process that exits while the run goes
on is started again, like a Deployment replaces a crashed pod, after a backoff of 0.5 s doubling per crash to at
most 10 s, and each restart is reported (``agent 'x' exited with code -9; restarting (2nd restart, in 1.0 s)``).
Its durable consumer is the same, so the events it held come back to the new process when their ack wait ends;
nothing is lost. An agent that exits more than 5 times within 60 s is crash-looping: the run fails with that
message. An agent process that exits before it ever became ready fails the run at once (a start error that a
restart would only repeat). The embedded nats-server is restarted on the same port with the same JetStream store
(its streams and messages survive), at most 3 times within 60 s; then, or when it cannot start again, the run
fails. After a reconnection the runner ensures the streams, consumers and buckets again (a server that lost them
gets them back from the deployer, as workers may not create them) and the output subjects are read back from their
streams since the run began, so an output published while the connection was down is still reported; every output
is reported once (per subject and ``Nats-Msg-Id``, else event id), however many times redeliveries or read-backs
show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumeo_iac.errors import KumeoError, KumeoRuntimeError

if TYPE_CHECKING:
    from kumeo_iac.compile import ConsumerPlan

__all__ = ["DrainResult", "LocalRunner", "Output"]

log = logging.getLogger("kumeo.local")

POLL_SECONDS = 0.05
QUIET_SECONDS = 0.5
READY_TIMEOUT_SECONDS = 60.0
#: Agent-process supervision: backoff before a restart (doubling per crash within the window, capped), and the
#: crash-loop limit: more than RESTART_LIMIT exits within RESTART_WINDOW seconds stop the run.
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
RESTART_LIMIT = 5
RESTART_WINDOW_SECONDS = 60.0
#: The embedded nats-server is restarted at most this many times within RESTART_WINDOW_SECONDS.
SERVER_RESTART_LIMIT = 3
#: How long one publish round waits for its PubAcks before the missing ones are published again (same
#: Nats-Msg-Id: the stream stores each event once).
PUBLISH_ACK_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Output:
    """One message seen on a target or dead-letter subject: what `kumeo run` prints as one JSON line."""

    subject: str
    event_id: str | None
    data: Any
    error: str | None = None

    @property
    def dead_letter(self) -> bool:
        return self.error is not None

    def to_dict(self) -> dict[str, Any]:
        out = {"subject": self.subject, "event_id": self.event_id, "data": self.data}
        if self.error is not None:
            out["error"] = self.error
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)


@dataclasses.dataclass(frozen=True)
class DrainResult:
    """How a drain ended: ``drained`` False means the timeout passed with ``holding`` still non-empty."""

    drained: bool
    elapsed: float
    holding: list[str]
    unreached: list[str]  # input event ids that reached no target or dead-letter subject


def output_of(msg: Any) -> Output:
    """The Output of a message on a target or dead-letter subject (also what `kumeo tail` prints)."""
    from kumeo_iac.runtime import envelope

    headers = msg.headers or {}
    try:
        data: Any = envelope.loads(msg.data) if msg.data else None
    except ValueError:  # not strict JSON (NaN, invalid UTF-8, too deep…): shown as the text it is
        data = msg.data.decode("utf-8", "replace")
    error = envelope.header(headers, envelope.ERROR)
    if error is None and ".dlq." in f".{msg.subject}." and isinstance(data, dict) and "error" in data:
        error = str(data["error"])
    return Output(msg.subject, envelope.header(headers, envelope.EVENT_ID), data, error)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclasses.dataclass
class _Child:
    """One supervised agent process: its command, the process running it now, its crash history."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    restarts: int = 0
    crashes: list[float] = dataclasses.field(default_factory=list)
    restart_at: float | None = None
    last_code: int | None = None


class LocalRunner:
    """Runs every workflow of a Plan locally until :meth:`stop`.

    ``nats_url`` None starts an embedded nats-server (free port, temporary store, removed on stop). ``processes``
    runs each agent as a ``python -m kumeo_iac.runtime`` child process. ``on_output`` is called for every message
    seen on a target or dead-letter subject.
    """

    def __init__(
        self,
        plan: Any,
        *,
        base_dir: str | Path = ".",
        nats_url: str | None = None,
        processes: bool = False,
        on_output: Callable[[Output], None] | None = None,
        http_port: int | None = None,
        fetch_expires: float = 1.0,
        log_level: str = "WARNING",
        on_note: Callable[[str], None] | None = None,
        restart_limit: int = RESTART_LIMIT,
        restart_window: float = RESTART_WINDOW_SECONDS,
        backoff_initial: float = BACKOFF_INITIAL_SECONDS,
        backoff_max: float = BACKOFF_MAX_SECONDS,
        server_restart_limit: int = SERVER_RESTART_LIMIT,
    ) -> None:
        self.plan = plan
        self.workflows = list(plan.workflows)
        self.base_dir = Path(base_dir)
        self.external_url = nats_url
        self.processes = processes
        self.on_output = on_output
        self.http_port = http_port
        self.fetch_expires = fetch_expires
        self.log_level = log_level
        self.server: Any = None
        self.nc: Any = None
        self.js: Any = None
        self.gateways: list[Any] = []
        self.workers: list[Any] = []
        self.children: list[_Child] = []
        self.on_note = on_note
        self.restart_limit = restart_limit
        self.restart_window = restart_window
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.server_restart_limit = server_restart_limit
        self.agent_restarts = 0
        self.server_restarts = 0
        self.duplicates = 0
        self._server_crashes: list[float] = []
        self._server_restart: asyncio.Future[Any] | None = None
        self._supervising = False
        self._seen_keys: set[tuple[str, str]] = set()
        self._replay_from: list[tuple[str, str, int]] = []  # (subject, stream, first sequence of this run)
        #: The gateways' target consumers, created with the agents' before anything binds to them.
        self._target_consumers: list[ConsumerPlan] = []
        self._replaying = 0
        self.input_ids: set[str] = set()
        self.seen_ids: set[str] = set()
        self.outputs = 0
        self.results = 0
        self.dead_letters = 0
        self.published = 0
        self.holding_now: list[str] = []
        self.in_flight = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._subs: list[Any] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._failure: BaseException | None = None
        self._stopped = False

    # -- facts -----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.external_url:
            return self.external_url
        return self.server.url if self.server is not None else ""

    @property
    def embedded(self) -> bool:
        return self.external_url is None

    def agent_urls(self) -> dict[str, str]:
        """``{agent id: URL}`` of the in-process agents serving an API of their own (HumanReview's review API)."""
        urls = {w.agent_id: getattr(w.agent, "review_url", None) for w in self.workers}
        return {agent_id: url for agent_id, url in urls.items() if url}

    def output_subjects(self) -> list[str]:
        """Every target subject of every workflow, and each workflow's dead-letter wildcard."""
        subjects: list[str] = []
        for wf in self.workflows:
            subjects += [t.subject for t in wf.targets]
            subjects.append(f"kumeo.{wf.slug}.dlq.>")
        return list(dict.fromkeys(subjects))

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Server, streams, consumers and buckets, output subscription, agents, then the gateways."""
        from kumeo_iac.runtime.io import Gateway

        try:
            gateways = [Gateway(wf, self.base_dir, http_host="127.0.0.1", http_port=self.http_port,
                                http_default_port=0) for wf in self.workflows]
            if self.embedded:
                from kumeo_iac.local._nats_server import NatsServer

                self.server = NatsServer()
                await asyncio.to_thread(self.server.start)
            await self._connect()
            self._target_consumers = [c for gateway in gateways for c in gateway.consumer_plans]
            await self._create_jetstream_objects()
            await self._note_replay_points()
            for subject in self.output_subjects():
                self._subs.append(await self.nc.subscribe(subject, cb=self._on_message, pending_msgs_limit=-1,
                                                          pending_bytes_limit=-1))
            await self.nc.flush()
            if self.processes:
                await self._start_processes()
            else:
                await self._start_workers()
            if self.embedded or self.processes:
                self._tasks.append(asyncio.create_task(self._supervise()))
            for gateway in gateways:
                await gateway.start(self.nc)
                self.gateways.append(gateway)
        except BaseException:
            await self.stop()
            raise

    async def _connect(self) -> None:
        from kumeo_iac.jetstream import connect

        try:
            self.nc = await connect(self.url, timeout_s=10.0 if self.embedded else 5.0, name="kumeo-run",
                                    allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.25,
                                    reconnected_cb=self._on_reconnected)
        except KumeoError as exc:
            raise KumeoRuntimeError(str(exc)) from exc
        self.js = self.nc.jetstream()

    async def _create_jetstream_objects(self) -> None:
        from kumeo_iac.jetstream import (
            consumer_config_from_inputs,
            ensure_consumer,
            ensure_key_value,
            ensure_stream,
            key_value_config_from_inputs,
            stream_config_from_inputs,
        )

        for wf in self.workflows:
            for stream in wf.streams:
                await ensure_stream(self.js, stream_config_from_inputs(dict(stream.config)))
            for kv in wf.key_values:
                await ensure_key_value(self.js, key_value_config_from_inputs(dict(kv.config)))
        # Every durable a worker or target adapter binds to: they may not create one themselves.
        for consumer in [c for wf in self.workflows for c in wf.consumers] + self._target_consumers:
            await ensure_consumer(self.js, consumer.stream, consumer_config_from_inputs(dict(consumer.config)))

    async def _start_workers(self) -> None:
        from kumeo_iac.runtime import Worker

        for wf in self.workflows:
            for agent in wf.agents:
                # An agent serving an API of its own (HumanReview's review API) does so on the worker's HTTP
                # port: give it one (loopback).
                http: dict[str, Any] = (
                    {"health_port": 0, "health_host": "127.0.0.1"} if agent.http_api else {})
                worker = Worker(wf, agent.id, self.url, self.base_dir, fetch_expires=self.fetch_expires, **http)
                try:
                    await worker.start()
                except BaseException:
                    await worker.stop()
                    raise
                self.workers.append(worker)
                self._tasks.append(asyncio.create_task(self._watch_worker(wf.name, agent.id, worker.run())))

    async def _watch_worker(self, workflow: str, agent: str, run: Any) -> None:
        try:
            await run
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - reported by drain()/wait()
            if not self._stopped:
                self._failure = KumeoRuntimeError(f"workflow '{workflow}': agent '{agent}' failed: {exc}")

    async def _start_processes(self) -> None:
        from kumeo_iac.compile import Plan

        self._tmp = tempfile.TemporaryDirectory(prefix="kumeo-run-")
        plan_file = Path(self._tmp.name) / "plan.json"
        plan_file.write_text(Plan(self.workflows).to_json(), encoding="utf-8")
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        from kumeo_iac.runtime import PARTITION_ENV

        for wf in self.workflows:
            for agent in wf.agents:
                cmd = [sys.executable, "-m", "kumeo_iac.runtime", "--plan", str(plan_file), "--agent", agent.id,
                       "--workflow", wf.slug, "--nats", self.url,
                       "--health-port", "0" if agent.http_api else "-1",
                       "--base-dir", str(self.base_dir.resolve()), "--log-level", self.log_level]
                name = agent.id if len(self.workflows) == 1 else f"{wf.name}/{agent.id}"
                partition = agent.settings.get("partition") if isinstance(agent.settings, dict) else None
                if not isinstance(partition, dict):
                    self.children.append(_Child(name, cmd, env, self._spawn(cmd, env)))
                    continue
                # A partitioned agent: one process per lane, as a StatefulSet runs one pod per lane; a restarted
                # process keeps its lane (its environment is kept with its command).
                for lane in range(int(partition["count"])):
                    lane_env = {**env, PARTITION_ENV: str(lane)}
                    self.children.append(_Child(f"{name}[{lane}]", cmd, lane_env, self._spawn(cmd, lane_env)))
        await self._wait_children_ready()
        self._supervising = True

    @staticmethod
    def _spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        # stdout stays ours (results only); the agents' logs share our stderr. A session of their own: Ctrl-C
        # reaches us, and we stop them in order.
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env, start_new_session=True)

    async def _wait_children_ready(self) -> None:
        """Every agent process has an open pull request on each of its consumers (it started), or one exited."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        pending = [(c.stream, c.durable) for wf in self.workflows for c in wf.consumers]
        while pending:
            for child in self.children:
                self._supervise_child(child, time.monotonic())
            self._raise_failure()
            still = []
            for stream, durable in pending:
                try:
                    info = await self.js.consumer_info(stream, durable)
                    if not (info.num_waiting or 0):
                        still.append((stream, durable))
                except Exception:  # noqa: BLE001 - not there yet
                    still.append((stream, durable))
            pending = still
            if pending and time.monotonic() > deadline:
                names = ", ".join(d for _, d in pending)
                raise KumeoRuntimeError(f"agent processes did not start within {READY_TIMEOUT_SECONDS:g} s "
                                        f"(consumers without a reader: {names})")
            if pending:
                await asyncio.sleep(0.1)

    def _note(self, text: str) -> None:
        if self.on_note is not None:
            with contextlib.suppress(Exception):
                self.on_note(text)
        else:
            log.warning("%s", text)

    def _recent(self, crashes: list[float], now: float) -> list[float]:
        return [t for t in crashes if now - t < self.restart_window] + [now]

    async def _supervise(self) -> None:
        """Restart crashed agent processes (with backoff) and a dead embedded nats-server; fail on crash loops."""
        while not self._stopped and self._failure is None:
            now = time.monotonic()
            for child in self.children:
                self._supervise_child(child, now)
                if self._failure is not None:
                    return
            if self.embedded and self.server is not None and self._server_restart is None \
                    and not self.server.is_running:
                self._server_restart = asyncio.ensure_future(self._restart_server())
            if self._server_restart is not None and self._server_restart.done():
                self._server_restart = None
            await asyncio.sleep(0.1)

    def _supervise_child(self, child: _Child, now: float) -> None:
        if self._stopped:
            return
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restart_at = None
                child.process = self._spawn(child.cmd, child.env)
            return
        code = child.process.poll()
        if code is None:
            return
        if not self._supervising:  # it never became ready: a start error, which a restart would repeat
            self._failure = KumeoRuntimeError(
                f"agent process {child.name} (pid {child.process.pid}) exited with code {code} before it was "
                "ready; its error is above")
            return
        child.crashes = self._recent(child.crashes, now)
        child.last_code = code
        if len(child.crashes) > self.restart_limit:
            self._failure = KumeoRuntimeError(
                f"agent '{child.name}' is crash-looping: its process exited {len(child.crashes)} times within "
                f"{self.restart_window:g} s (last exit code {code}); stopping the run (its errors are above)")
            return
        delay = min(self.backoff_initial * 2 ** (len(child.crashes) - 1), self.backoff_max)
        child.restarts += 1
        self.agent_restarts += 1
        child.restart_at = now + delay
        self._note(f"agent '{child.name}' exited with code {code}; restarting ({_ordinal(child.restarts)} restart, "
                   f"in {delay:.1f} s)")

    async def _restart_server(self) -> None:
        server = self.server
        code = server.exit_code
        now = time.monotonic()
        self._server_crashes = self._recent(self._server_crashes, now)
        if len(self._server_crashes) > self.server_restart_limit:
            self._failure = KumeoRuntimeError(
                f"the embedded nats-server exited {len(self._server_crashes)} times within "
                f"{self.restart_window:g} s (last exit code {code}); giving up. Its output:\n{server.read_log()}")
            return
        self.server_restarts += 1
        self._note(f"the embedded nats-server exited with code {code}; restarting it on {server.url} with the "
                   f"same store ({_ordinal(self.server_restarts)} restart)")
        try:
            await asyncio.to_thread(server.start)
        except Exception as exc:  # noqa: BLE001 - reported as the run's failure
            self._failure = KumeoRuntimeError(f"the embedded nats-server exited with code {code} and could not "
                                              f"be started again: {exc}")
            return
        self._note(f"the embedded nats-server is back on {server.url}")

    async def _note_replay_points(self) -> None:
        """For each output subject a stream captures: the stream, and its first sequence of this run."""
        self._replay_from = []
        for subject in self.output_subjects():
            try:
                stream = await self.js.find_stream_name_by_subject(subject)
                info = await self.js.stream_info(stream)
            except Exception as exc:  # noqa: BLE001 - no stream captures it: core NATS only, nothing to read back
                log.debug("no stream to read %s back from: %r", subject, exc)
                continue
            self._replay_from.append((subject, stream, int(info.state.last_seq or 0) + 1))

    async def _on_reconnected(self) -> None:
        if self._stopped:
            return
        self._tasks.append(asyncio.create_task(self._restore_jetstream_objects()))
        if self._replay_from:
            self._tasks.append(asyncio.create_task(self._read_back()))

    async def _restore_jetstream_objects(self) -> None:
        """After a reconnection, as the deployer: whatever the server lost (a fresh store) is created again, so the
        workers, which only bind, find their consumers; on a server that kept them this changes nothing."""
        try:
            await self._create_jetstream_objects()
        except Exception as exc:  # noqa: BLE001 - the workers report a consumer still missing, by name
            log.warning("could not ensure the streams and consumers after reconnecting: %r", exc)

    async def _read_back(self) -> None:
        """Report the outputs stored while the connection was down (the subscription missed them); dedupe drops
        the ones already reported."""
        from nats.js.api import ConsumerConfig, DeliverPolicy

        self._replaying += 1
        try:
            for subject, stream, first in self._replay_from:
                for _attempt in range(20):
                    if self._stopped:
                        return
                    try:
                        await self._read_back_one(subject, stream, first, ConsumerConfig, DeliverPolicy)
                        break
                    except Exception as exc:  # noqa: BLE001 - JetStream not back yet: again shortly
                        log.debug("reading back %s failed: %r", subject, exc)
                        await asyncio.sleep(0.25)
        finally:
            self._replaying -= 1

    async def _read_back_one(self, subject: str, stream: str, first: int, config_type: Any, policy: Any) -> None:
        info = await self.js.stream_info(stream)
        if int(info.state.last_seq or 0) < first:
            return
        sub = await self.js.subscribe(subject, stream=stream, ordered_consumer=True,
                                      deliver_policy=policy.BY_START_SEQUENCE,
                                      config=config_type(opt_start_seq=first))
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except TimeoutError:
                    return
                await self._on_message(msg)
                if msg.metadata.num_pending == 0:
                    return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def kill_now(self) -> None:
        """SIGKILL every agent process and the embedded nats-server at once (the hard stop; any thread)."""
        for child in self.children:
            with contextlib.suppress(Exception):
                if child.process.poll() is None:
                    child.process.kill()
        process = getattr(self.server, "_process", None)
        with contextlib.suppress(Exception):
            if process is not None and process.poll() is None:
                process.kill()
        with contextlib.suppress(Exception):
            if self.server is not None:
                self.server.cleanup(0.5)
        with contextlib.suppress(Exception):
            if self._tmp is not None:
                self._tmp.cleanup()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def check(self) -> None:
        """Raise the failure of an agent (a worker task that died, an agent process that exited), if any."""
        self._raise_failure()

    async def stop(self, timeout: float = 20.0) -> None:
        """Stop sources, then agents (in-flight events finish and are acked), then targets, then the server.

        Everything is done within ``timeout`` seconds: agent processes get SIGTERM, and SIGKILL when the time
        left is short; each other step is cut off when its share of the time is up.
        """
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout

        def left(cap: float = 5.0, reserve: float = 0.0) -> float:
            return max(0.05, min(cap, deadline - reserve - time.monotonic()))

        for gateway in self.gateways:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(gateway.stop_sources(), left(reserve=1.5))
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.stop(), left(cap=timeout, reserve=1.5))
            except Exception:
                log.exception("worker did not stop cleanly")
        await self._stop_children(left(cap=timeout, reserve=1.0))
        for gateway in self.gateways:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(gateway.stop(), left(reserve=0.8))
        if self._server_restart is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._server_restart), left(reserve=0.5))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, left(cap=1.0, reserve=0.5))
        if self.nc is not None and not self.nc.is_closed:
            for sub in self._subs:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sub.unsubscribe(), left(cap=0.5, reserve=0.5))
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.nc.close(), left(cap=2.0, reserve=0.5))
        if self.server is not None:
            await asyncio.to_thread(self.server.cleanup, left(cap=5.0, reserve=0.1))
        if self._tmp is not None:
            self._tmp.cleanup()

    async def _stop_children(self, timeout: float = 15.0) -> None:
        """SIGTERM every agent process (they finish what is in flight), SIGKILL those still running at the end."""
        for child in self.children:
            child.restart_at = None
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            while child.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(child.process.wait, 5.0)

    async def __aenter__(self) -> LocalRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- input and output ------------------------------------------------------------------------------------

    def source_for(self, workflow: str | None = None, source: str | None = None) -> tuple[Any, Any]:
        """(workflow, source endpoint) the input goes to: the named ones, else the first workflow's first source."""
        if workflow is None:
            wf = self.workflows[0]
        else:
            found = [w for w in self.workflows if workflow in (w.name, w.slug)]
            if not found:
                names = ", ".join(w.name for w in self.workflows)
                raise KumeoRuntimeError(f"no workflow {workflow!r} (workflows: {names})")
            wf = found[0]
        if not wf.sources:
            raise KumeoRuntimeError(f"workflow '{wf.name}' has no source to publish the input to")
        if source is None:
            return wf, wf.sources[0]
        for ep in wf.sources:
            if source in (ep.name, ep.address, ep.subject):
                return wf, ep
        names = ", ".join(ep.address for ep in wf.sources)
        raise KumeoRuntimeError(f"workflow '{wf.name}' has no source {source!r} (sources: {names})")

    async def publish(self, subject: str, events: Iterable[tuple[str, Any]], *, producer: str = "input",
                      on_refused: Callable[[str, str], None] | None = None) -> int:
        """Publish ``(event_id, payload)`` pairs on ``subject`` with their envelope; return how many were stored.

        An event that cannot be published (not strict JSON, larger than the server's ``max_payload``) is skipped
        and reported to ``on_refused(event_id, reason)``; without it, :class:`KumeoRuntimeError` is raised.
        """
        from kumeo_iac.runtime import envelope
        from kumeo_iac.runtime.io import source_headers

        limit = int(getattr(self.nc, "max_payload", 0) or 0)
        count = 0
        chunk: list[tuple[bytes, dict[str, str]]] = []
        for event_id, payload in events:
            headers = source_headers(event_id, producer)
            try:
                data = envelope.dumps(payload)
                size = envelope.wire_size(data, headers)
                if limit and size > limit:
                    raise envelope.NotJSON(f"the event is {size} bytes, over the NATS server's max_payload of "
                                           f"{limit} bytes")
            except envelope.NotJSON as exc:
                if on_refused is None:
                    raise KumeoRuntimeError(f"event {event_id}: {exc}") from None
                on_refused(event_id, str(exc))
                continue
            self.input_ids.add(event_id)
            chunk.append((data, headers))
            if len(chunk) >= 1000:
                count += await self._publish_chunk(subject, chunk)
                self.published += len(chunk)
                chunk = []
        if chunk:
            count += await self._publish_chunk(subject, chunk)
            self.published += len(chunk)
        return count

    async def _publish_chunk(self, subject: str, chunk: list[tuple[bytes, dict[str, str]]]) -> int:
        """Publish until every message of ``chunk`` has its PubAck: a PubAck lost with a connection (the server
        restarted) means publishing that message again, which its Nats-Msg-Id makes harmless."""
        todo = list(chunk)
        while todo:
            self._raise_failure()
            futures: list[Any] = []
            try:
                for data, headers in todo:
                    futures.append(await self.js.publish_async(subject, data, headers=headers))
            except Exception as exc:  # noqa: BLE001 - disconnected, buffer full: wait and publish the rest again
                log.debug("publishing failed, retrying: %r", exc)
            if futures:
                done, not_done = await asyncio.wait(futures, timeout=PUBLISH_ACK_SECONDS)
                for future in not_done:
                    future.cancel()
            else:
                done = set()
            todo = [item for item, future in zip(todo, futures + [None] * (len(todo) - len(futures)), strict=True)
                    if future is None or future not in done or future.cancelled() or future.exception() is not None]
            if todo:
                await asyncio.sleep(0.25)
        return len(chunk)

    async def _on_message(self, msg: Any) -> None:
        from kumeo_iac.runtime import envelope

        headers = msg.headers or {}
        identity = envelope.header(headers, envelope.MSG_ID) or envelope.header(headers, envelope.EVENT_ID)
        if identity is not None:
            key = (msg.subject, identity)
            if key in self._seen_keys:  # a redelivery, a republish after a restart, or read back: reported once
                self.duplicates += 1
                return
            self._seen_keys.add(key)
        output = output_of(msg)
        self.outputs += 1
        if output.dead_letter:
            self.dead_letters += 1
        else:
            self.results += 1
        if output.event_id:
            self.seen_ids.add(output.event_id)
        if self.on_output is not None:
            try:
                self.on_output(output)
            except Exception as exc:  # noqa: BLE001 - a broken stdout must not stop the run
                log.debug("on_output failed: %r", exc)

    # -- draining --------------------------------------------------------------------------------------------

    def _consumers(self) -> list[tuple[str, str, str]]:
        """(label, stream, durable), agents upstream first (topological order), then the target adapters."""
        out = []
        for wf in self.workflows:
            for agent in wf.agents:
                for c in agent.consumers:
                    out.append((f"agent '{agent.id}'" if len(self.workflows) == 1
                                else f"agent '{wf.name}/{agent.id}'", c.stream, c.durable))
        for gateway in self.gateways:
            for adapter in gateway.targets:
                for stream, durable in adapter.consumers:
                    out.append((f"target {adapter.endpoint.address!r}", stream, durable))
        return out

    async def holding(self) -> list[str]:
        """Who still holds events, e.g. ``agent 'score' (3 waiting, 1 in progress)``; empty when all is idle."""
        found: dict[str, list[int]] = {}
        in_flight = 0
        for label, stream, durable in self._consumers():
            try:
                info = await self.js.consumer_info(stream, durable)
                pending, acking = int(info.num_pending or 0), int(info.num_ack_pending or 0)
            except Exception:  # noqa: BLE001 - unknown: count it as busy, the next poll asks again
                pending, acking = 0, 1
            in_flight += pending + acking
            if pending or acking:
                total = found.setdefault(label, [0, 0])
                total[0] += pending
                total[1] += acking
        self.in_flight = in_flight
        return [f"{label} ({p} waiting, {a} in progress)" for label, (p, a) in found.items()]

    def source_events(self) -> int:
        """How many events the workflows' own sources (HTTP, Timer, File) have published so far."""
        return sum(int(getattr(s, "published", 0)) + int(getattr(s, "accepted", 0)) + int(getattr(s, "fired", 0))
                   for g in self.gateways for s in g.sources)

    def sources_finished(self) -> bool:
        return all(g.sources_finished for g in self.gateways)

    async def drain(self, timeout: float, *, quiet: float = QUIET_SECONDS,
                    tick: Callable[[], None] | None = None) -> DrainResult:
        """Wait until the workflows are drained (see the module docstring) or ``timeout`` seconds have passed."""
        began = time.monotonic()
        deadline = began + timeout
        idle_polls = 0
        quiet_since: float | None = None
        outputs_then = -1
        while True:
            self._raise_failure()
            now = time.monotonic()
            if now >= deadline:
                try:
                    holding = await asyncio.wait_for(self.holding(), 2.0)
                except TimeoutError:
                    holding = ["unknown: the NATS server does not answer"]
                if not self.sources_finished():
                    holding.append("a File source still reading")
                return DrainResult(False, now - began, holding or ["nothing (no output for the quiet period yet)"],
                                   self.unreached())
            if self.sources_finished():
                try:
                    holding = await asyncio.wait_for(self.holding(), max(0.1, deadline - now))
                except TimeoutError:
                    continue
                if self._replaying:
                    holding = [*holding, "the outputs read back after a reconnection"]
                if self.embedded and self.server is not None and not self.server.is_running:
                    holding = [*holding, "the embedded nats-server (restarting)"]
                self.holding_now = holding
                idle_polls = idle_polls + 1 if not holding else 0
                if idle_polls >= 2:
                    await self._settle()
                    if not self.unreached():
                        return DrainResult(True, time.monotonic() - began, [], [])
                    if quiet_since is None or self.outputs != outputs_then:
                        quiet_since, outputs_then = time.monotonic(), self.outputs
                    elif time.monotonic() - quiet_since >= quiet:
                        return DrainResult(True, time.monotonic() - began, [], self.unreached())
                else:
                    quiet_since = None
            if tick is not None:
                tick()
            await asyncio.sleep(POLL_SECONDS)

    async def _settle(self) -> None:
        """Make sure every output the server routed to us before now has been handed to :meth:`_on_message`."""
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)
        for _ in range(200):
            if all(sub.pending_msgs == 0 for sub in self._subs):
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)

    def unreached(self) -> list[str]:
        return sorted(self.input_ids - self.seen_ids)

    async def wait_failure(self) -> None:
        """Return (raising it) when an agent fails; runs until cancelled otherwise (for --follow)."""
        while True:
            self._raise_failure()
            await asyncio.sleep(0.1)
