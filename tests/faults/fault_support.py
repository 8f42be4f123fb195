"""Plans, worker processes and stream readers for the fault-injection suite.

Workers run as real ``python -m kumeo_iac.runtime`` processes (what a pod runs), so a fault is what production
sees: SIGKILL of a process, a nats-server restart under live connections, a stream that refuses writes. Outcomes
are counted by ``Kumeo-Event-Id`` on the streams themselves, never by trusting the workers' own reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import nats
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)

from kumeo_iac.compile._plan import (
    AgentPlan,
    ConsumerPlan,
    Plan,
    StreamPlan,
    WorkflowPlan,
)
from kumeo_iac.jetstream import ensure_consumer, ensure_stream

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def new_slug() -> str:
    return f"f{uuid.uuid4().hex[:8]}"


def source_subject(slug: str) -> str:
    return f"src.{slug}.in"


def target_subject(slug: str) -> str:
    return f"tgt.{slug}.out"


def streams_of(slug: str) -> dict[str, str]:
    base = f"KUMEO_{slug.upper()}"
    return {"internal": base, "sources": f"{base}_SOURCES", "targets": f"{base}_TARGETS"}


def agent(slug: str, agent_id: str, input_subject: str, *, targets: list[str] | None = None, ack_wait: float = 3.0,
          max_deliver: int = 5, backoff: list[float] | None = None, timeout: float = 2.0,
          max_ack_pending: int = 1000) -> AgentPlan:
    stream = streams_of(slug)["sources" if input_subject.startswith("src.") else "internal"]
    config = ConsumerConfig(durable_name=agent_id, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
                            ack_wait=ack_wait, max_deliver=max_deliver, filter_subjects=[input_subject],
                            max_ack_pending=max_ack_pending).as_dict()
    return AgentPlan(
        id=agent_id, kind="Custom", inputs={"": input_subject}, input_fields={"": []},
        output_subject=f"kumeo.{slug}.{agent_id}.out", dead_letter_subject=f"kumeo.{slug}.dlq.{agent_id}",
        routes=[], target_subjects=list(targets or []),
        consumers=[ConsumerPlan(stream, agent_id, agent_id, config)], settings={}, when=None,
        timeout_seconds=timeout, max_deliver=max_deliver,
        backoff_seconds=list(backoff if backoff is not None else [0.05, 0.1, 0.2]), fallback=None, files=[],
        image="kumeo/base", image_class="base", replicas=1, max_replicas=1, resources={})


def chain(slug: str, ids: list[str], url: str, **options: Any) -> WorkflowPlan:
    """source → ids[0] → … → ids[-1] → target, each agent configured by ``options``."""
    agents = []
    subject = source_subject(slug)
    for n, agent_id in enumerate(ids):
        last = n == len(ids) - 1
        agents.append(agent(slug, agent_id, subject, targets=[target_subject(slug)] if last else None, **options))
        subject = f"kumeo.{slug}.{agent_id}.out"
    names = streams_of(slug)
    streams = [
        StreamPlan(names["internal"], "internal", StreamConfig(
            name=names["internal"], subjects=[f"kumeo.{slug}.>"], storage=StorageType.FILE,
            duplicate_window=120.0).as_dict()),
        StreamPlan(names["sources"], "sources", StreamConfig(
            name=names["sources"], subjects=[f"src.{slug}.>"], storage=StorageType.FILE,
            duplicate_window=120.0).as_dict()),
        StreamPlan(names["targets"], "targets", StreamConfig(
            name=names["targets"], subjects=[f"tgt.{slug}.>"], storage=StorageType.FILE,
            duplicate_window=120.0).as_dict()),
    ]
    return WorkflowPlan(name=f"wf-{slug}", slug=slug, namespace="default", nats_url=url, sources=[], targets=[],
                        streams=streams, key_values=[], agents=agents, kubernetes=[])


async def connect(url: str) -> Any:
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)


async def create_streams(js: Any, plan: WorkflowPlan, **overrides: dict[str, Any]) -> None:
    """The Plan's streams and the agents' consumers, as the deployer creates them before workers bind;
    ``overrides[kind]`` changes a stream's limits (``max_msgs``, ``discard``…)."""
    for stream in plan.streams:
        config = StreamConfig.from_response(dict(stream.config))
        for key, value in (overrides.get(stream.role) or {}).items():
            setattr(config, key, value)
        await ensure_stream(js, config)
    for consumer in plan.consumers:
        await ensure_consumer(js, consumer.stream, ConsumerConfig.from_response(dict(consumer.config)))


async def publish(js: Any, subject: str, events: list[tuple[str, Any]]) -> None:
    """Publish ``(event_id, payload)`` with their ids as headers, waiting for every PubAck."""
    pending = []
    for event_id, payload in events:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        pending.append(await js.publish_async(subject, data, headers={"Kumeo-Event-Id": event_id,
                                                                       "Nats-Msg-Id": f"src:{event_id}"}))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def count(js: Any, stream: str, subject: str | None = None) -> int:
    if subject is None:
        return int((await js.stream_info(stream)).state.messages)
    info = await js.stream_info(stream, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return bool(await predicate())


async def settled(js: Any, stream: str, durable: str) -> bool:
    """Whether the consumer ``durable`` of ``stream`` has delivered every event and has none unacknowledged."""
    info = await js.consumer_info(stream, durable)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def dead_letters(js: Any, slug: str, agent_id: str) -> dict[str, Any]:
    """The dead letters of ``agent_id`` (on the internal stream), by ``Kumeo-Event-Id``."""
    letters = await messages(js, streams_of(slug)["internal"], f"kumeo.{slug}.dlq.{agent_id}")
    return {(m.headers or {})["Kumeo-Event-Id"]: m for m in letters}


async def event_ids(js: Any, stream: str, subject: str) -> Counter[str]:
    """How many messages of each ``Kumeo-Event-Id`` ``subject`` holds (an ordered read of the whole stream)."""
    total = await count(js, stream, subject)
    seen: Counter[str] = Counter()
    if total == 0:
        return seen
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
    try:
        got = 0
        while got < total:
            msg = await sub.next_msg(timeout=5)
            seen[(msg.headers or {}).get("Kumeo-Event-Id", "?")] += 1
            got += 1
    finally:
        await sub.unsubscribe()
    return seen


async def messages(js: Any, stream: str, subject: str) -> list[Any]:
    total = await count(js, stream, subject)
    out: list[Any] = []
    if total == 0:
        return out
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
    try:
        while len(out) < total:
            out.append(await sub.next_msg(timeout=5))
    finally:
        await sub.unsubscribe()
    return out


class WorkerProcess:
    """One ``python -m kumeo_iac.runtime`` process running one agent of a Plan written to a file."""

    def __init__(self, plan_file: Path, agent_id: str, url: str, agent_class: str, *,
                 env: dict[str, str] | None = None, batch_size: int = 64, log_file: Path | None = None) -> None:
        self.agent_id = agent_id
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE), str(ROOT), environment.get("PYTHONPATH")) if p)
        environment.update(env or {})
        self.log_file = log_file
        out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - closed in stop()
        self._out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kumeo_iac.runtime", "--plan", str(plan_file), "--agent", agent_id,
             "--nats", url, "--health-port", "-1", "--agent-class", f"fault_agents:{agent_class}",
             "--batch-size", str(batch_size), "--log-level", "INFO"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=environment, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no drain, no NAK, nothing flushed — a crashed pod."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._out is not subprocess.DEVNULL:
            self._out.close()
        return self.process.returncode

    def log(self) -> str:
        if self.log_file is None or not self.log_file.exists():
            return ""
        return self.log_file.read_text(errors="replace")[-4000:]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Cluster:
    """A Plan's worker processes; :meth:`close` stops every one still running."""

    def __init__(self, plan: WorkflowPlan, url: str, tmp: Path) -> None:
        self.plan = plan
        self.url = url
        self.tmp = tmp
        self.plan_file = tmp / "plan.json"
        self.plan_file.write_text(Plan([plan]).to_json(), encoding="utf-8")
        self.workers: list[WorkerProcess] = []

    def start(self, agent_id: str, agent_class: str = "PassThrough", **options: Any) -> WorkerProcess:
        log_file = self.tmp / f"{agent_id}-{len(self.workers)}.log"
        worker = WorkerProcess(self.plan_file, agent_id, self.url, agent_class, log_file=log_file, **options)
        self.workers.append(worker)
        return worker

    async def wait_ready(self, js: Any, timeout: float = 30.0) -> None:
        """Every agent's consumer has an open pull request (its worker started), as `kumeo run` waits."""

        async def ready() -> bool:
            for worker in self.workers:
                if not worker.alive():
                    raise AssertionError(f"worker {worker.agent_id} exited {worker.process.returncode}:\n"
                                         f"{worker.log()}")
            for a in self.plan.agents:
                for c in a.consumers:
                    try:
                        info = await js.consumer_info(c.stream, c.durable)
                    except Exception:  # noqa: BLE001 - not created yet
                        return False
                    if not info.num_waiting:
                        return False
            return True

        assert await wait_for(ready, timeout), "the worker processes did not start in time"

    def logs(self) -> str:
        return "\n".join(f"--- {w.agent_id} (pid {w.pid})\n{w.log()}" for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
