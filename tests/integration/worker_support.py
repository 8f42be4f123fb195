"""Small hand-built WorkflowPlans, injected agents and stream helpers for the worker's integration tests.

Plans are built by hand (not compiled) so each test controls the timings it depends on: a short ``ack_wait`` makes
"redelivered after a crash" take seconds, not the compiled default of timeout + 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
import uuid
from typing import Any

import nats
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)

from kumeo_iac.compile._plan import (
    AgentPlan,
    ConsumerPlan,
    KeyValuePlan,
    StreamPlan,
    WorkflowPlan,
)
from kumeo_iac.jetstream import ensure_consumer, ensure_key_value, ensure_stream
from kumeo_iac.runtime._agent import Emit, Event, RuntimeAgent


def new_slug() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def stream_names(slug: str) -> tuple[str, str]:
    base = f"KUMEO_{slug.upper()}"
    return base, f"{base}_SOURCES"


def source_subject(slug: str, name: str = "in") -> str:
    return f"src.{slug}.{name}"


def agent_plan(
    slug: str,
    agent_id: str,
    inputs: dict[str, str],
    *,
    when: str | None = None,
    timeout: float = 2.0,
    max_deliver: int = 3,
    backoff: list[float] | None = None,
    fallback: dict[str, Any] | None = None,
    targets: list[str] | None = None,
    ack_wait: float = 3.0,
    join_ttl: float | None = None,
    kind: str = "Custom",
) -> AgentPlan:
    internal, sources = stream_names(slug)
    by_stream: dict[str, list[str]] = {}
    for subject in inputs.values():
        by_stream.setdefault(sources if subject.startswith("src.") else internal, []).append(subject)
    consumers = [
        ConsumerPlan(
            stream=stream,
            durable=agent_id,
            agent=agent_id,
            config=ConsumerConfig(
                durable_name=agent_id,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ack_wait,
                max_deliver=max_deliver,
                filter_subjects=sorted(set(subjects)),
                max_ack_pending=1000,
            ).as_dict(),
        )
        for stream, subjects in sorted(by_stream.items())
    ]
    settings: dict[str, Any] = {}
    if len(inputs) > 1:
        settings["join"] = {"bucket": f"kumeo_{slug}_joins", "parts": sorted(inputs),
                            "timeout_seconds": join_ttl or 30.0}
    return AgentPlan(
        id=agent_id,
        kind=kind,
        inputs=dict(inputs),
        input_fields={part: [] for part in inputs},
        output_subject=f"kumeo.{slug}.{agent_id}.out",
        dead_letter_subject=f"kumeo.{slug}.dlq.{agent_id}",
        routes=[],
        target_subjects=list(targets or []),
        consumers=consumers,
        settings=settings,
        when=when,
        timeout_seconds=timeout,
        max_deliver=max_deliver,
        backoff_seconds=list(backoff if backoff is not None else [0.05, 0.1, 0.2]),
        fallback=fallback,
        files=[],
        image="kumeo/base",
        image_class="base",
        replicas=1,
        max_replicas=1,
        resources={},
    )


def workflow_plan(slug: str, agents: list[AgentPlan], nats_url: str = "nats://127.0.0.1:4222") -> WorkflowPlan:
    internal, sources = stream_names(slug)
    streams = [
        StreamPlan(internal, "internal", StreamConfig(name=internal, subjects=[f"kumeo.{slug}.>"],
                                                      storage=StorageType.FILE, duplicate_window=120.0).as_dict()),
        StreamPlan(sources, "sources", StreamConfig(name=sources, subjects=[f"src.{slug}.>"],
                                                    storage=StorageType.FILE, duplicate_window=120.0).as_dict()),
    ]
    key_values = []
    if any("join" in a.settings for a in agents):
        bucket = f"kumeo_{slug}_joins"
        key_values.append(KeyValuePlan(bucket, "joins", KeyValueConfig(bucket=bucket, history=1).as_dict()))
    return WorkflowPlan(name=f"wf-{slug}", slug=slug, namespace="default", nats_url=nats_url, sources=[],
                        targets=[], streams=streams, key_values=key_values, agents=agents, kubernetes=[])


async def create_streams(js: Any, plan: WorkflowPlan) -> None:
    """What `kumeo run` or Pulumi does before workers start: the streams, buckets and the agents' consumers exist
    (workers only bind to their consumer; they never create one)."""
    for stream in plan.streams:
        await ensure_stream(js, StreamConfig.from_response(dict(stream.config)))
    for kv in plan.key_values:
        await ensure_key_value(js, KeyValueConfig(bucket=kv.bucket, history=1))
    await create_consumers(js, plan)


async def create_consumers(js: Any, plan: WorkflowPlan) -> None:
    """The deployer's part a worker binds to: every agent's durable consumer, from the Plan."""
    for consumer in plan.consumers:
        await ensure_consumer(js, consumer.stream, ConsumerConfig.from_response(dict(consumer.config)))


async def publish_events(js: Any, subject: str, payloads: list[Any], *, headers: bool = False) -> None:
    futures = []
    for i, payload in enumerate(payloads):
        hdrs = {"Nats-Msg-Id": f"src-{subject}-{i}"} if headers else None
        futures.append(await js.publish_async(subject, json.dumps(payload).encode(), headers=hdrs))
    await asyncio.gather(*futures)


async def count_subject(js: Any, stream: str, subject: str) -> int:
    info = await js.stream_info(stream, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def wait_count(js: Any, stream: str, subject: str, expected: int, timeout: float = 10.0) -> int:
    """Wait until ``subject`` holds at least ``expected`` messages; return the count (which may be higher)."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = await count_subject(js, stream, subject)
        if count >= expected:
            return count
        await asyncio.sleep(0.05)
    return count


async def read_subject(js: Any, stream: str, subject: str) -> list[Any]:
    """Every message stored on ``subject`` (in stream order), read with an ephemeral ordered consumer."""
    total = await count_subject(js, stream, subject)
    if total == 0:
        return []
    sub = await js.pull_subscribe(subject, stream=stream)
    out: list[Any] = []
    try:
        while len(out) < total:
            msgs = await sub.fetch(min(256, total - len(out)), timeout=2.0)
            for m in msgs:
                await m.ack()
            out.extend(msgs)
    finally:
        await sub.unsubscribe()
    return out


async def connect(url: str) -> Any:
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)


# -- injected agents ----------------------------------------------------------------------------------------------


class PassThrough(RuntimeAgent):
    """Emits its input unchanged (what a benchmark hop does)."""

    async def process(self, event: Event) -> list[Emit]:
        return [Emit(event.data)]


class Doubler(RuntimeAgent):
    """Adds ``doubled = 2 * n`` and counts every call."""

    calls = 0

    async def process(self, event: Event) -> list[Emit]:
        type(self).calls += 1
        return [Emit({**event.data, "doubled": event.data["n"] * 2})]


class Scripted(RuntimeAgent):
    """Behaves per event as ``behaviour(event)`` says: returns emits, or raises."""

    def __init__(self, *args: Any, behaviour: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.behaviour = behaviour
        self.seen: list[tuple[str, int]] = []

    async def process(self, event: Event) -> list[Emit]:
        self.seen.append((event.id, event.attempt))
        result = self.behaviour(event)
        if asyncio.iscoroutine(result):
            result = await result
        return result


def make_agent(cls: type[RuntimeAgent], plan: WorkflowPlan, agent_id: str, **kwargs: Any) -> RuntimeAgent:
    from pathlib import Path

    return cls(plan.agent(agent_id), plan, Path("."), **kwargs)




class SlowPassThrough(RuntimeAgent):
    """Emits its input after a pause (``KUMEO_TEST_DELAY`` seconds, default 0.3), so events are in flight."""

    async def process(self, event: Event) -> list[Emit]:
        import os

        await asyncio.sleep(float(os.environ.get("KUMEO_TEST_DELAY", "0.3")))
        return [Emit(event.data)]


class Harness:
    """A test's NATS connection and the workers it started; :meth:`close` stops them all."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.nc: Any = None
        self.js: Any = None
        self.workers: list[Any] = []
        self.tasks: list[asyncio.Task[Any]] = []

    async def open(self) -> Harness:
        self.nc = await connect(self.url)
        self.js = self.nc.jetstream()
        return self

    async def deploy(self, slug: str, agents: list[AgentPlan]) -> WorkflowPlan:
        """The workflow ``slug`` of ``agents`` on this test's server, its streams, buckets and consumers created."""
        plan = workflow_plan(slug, agents, self.url)
        await create_streams(self.js, plan)
        return plan

    async def one_agent(self, agent_id: str = "a", *, slug: str | None = None, settings: dict[str, Any] | None = None,
                        **agent_options: Any) -> tuple[str, WorkflowPlan]:
        """A workflow (``slug``, a new one unless given) whose one agent ``agent_id`` reads the source subject,
        deployed; ``settings`` are added to the agent's, ``agent_options`` go to :func:`agent_plan`."""
        slug = slug or new_slug()
        agent = agent_plan(slug, agent_id, {"": source_subject(slug)}, **agent_options)
        agent.settings.update(settings or {})
        return slug, await self.deploy(slug, [agent])

    async def run_worker(self, plan: WorkflowPlan, agent_id: str, agent: RuntimeAgent | None, **options: Any) -> Any:
        from kumeo_iac.runtime._worker import Worker

        options.setdefault("fetch_expires", 1.0)
        worker = Worker(plan, agent_id, self.url, agent=agent, **options)
        await worker.start()
        self.workers.append(worker)
        self.tasks.append(asyncio.create_task(worker.run()))
        return worker

    async def close(self) -> None:
        for worker in self.workers:
            await worker.stop()
        for task in self.tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
        if self.nc is not None:
            await self.nc.close()


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def sigterm(process: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM ``process``, as Kubernetes stops a pod; its exit code once it has exited (within ``timeout`` s)."""
    process.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(process.wait, timeout)


def reap(process: subprocess.Popen[Any] | None) -> None:
    """Kill ``process`` if it still runs: a test that failed before stopping it leaves no orphan behind."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
