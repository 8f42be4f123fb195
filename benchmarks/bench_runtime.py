"""Benchmark the agent worker against a hand-written nats-py relay, on a real nats-server.

    .venv/bin/python benchmarks/bench_runtime.py [--events 20000] [--batch 64] [--rate 1000] [--seconds 5]

Prints, in one run:

1. events/s through one pass-through hop via the Worker, and via a hand-written nats-py relay doing the same
   JetStream consume → publish (with Nats-Msg-Id, waiting for PubAcks) → ack with the same batch size; their
   ratio (goal ≥ 0.8);
2. events/s through a chain of three pass-through agents;
3. p50/p99 hop latency (source publish → output received) at an offered 1k events/s (goals < 2 ms / < 10 ms).

Everything runs in this process on one event loop (the worker, the relay, the load generator), each measurement
alone; the events are pre-published for the throughput runs so only the consuming side is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import nats
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kumeo_iac.compile._plan import AgentPlan, ConsumerPlan, StreamPlan, WorkflowPlan
from kumeo_iac.local._nats_server import NatsServer
from kumeo_iac.runtime._agent import Emit, Event, RuntimeAgent
from kumeo_iac.runtime._worker import Worker


class PassThrough(RuntimeAgent):
    async def process(self, event: Event) -> list[Emit]:
        return [Emit(event.data)]


def _agent(slug: str, agent_id: str, subject: str, stream: str) -> AgentPlan:
    config = ConsumerConfig(durable_name=agent_id, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
                            ack_wait=30.0, max_deliver=5, filter_subjects=[subject], max_ack_pending=10000).as_dict()
    return AgentPlan(
        id=agent_id, kind="Custom", inputs={"": subject}, input_fields={"": []},
        output_subject=f"kumeo.{slug}.{agent_id}.out", dead_letter_subject=f"kumeo.{slug}.dlq.{agent_id}",
        routes=[], target_subjects=[], consumers=[ConsumerPlan(stream, agent_id, agent_id, config)], settings={},
        when=None, timeout_seconds=10.0, max_deliver=5, backoff_seconds=[1.0], fallback=None, files=[],
        image="", image_class="base", replicas=1, max_replicas=1, resources={},
    )


def _plan(slug: str, chain: list[str], url: str) -> WorkflowPlan:
    stream = f"B_{slug.upper()}"
    agents = []
    subject = f"kumeo.{slug}.source"
    for agent_id in chain:
        agents.append(_agent(slug, agent_id, subject, stream))
        subject = f"kumeo.{slug}.{agent_id}.out"
    streams = [StreamPlan(stream, "internal", StreamConfig(name=stream, subjects=[f"kumeo.{slug}.>"],
                                                           storage=StorageType.FILE).as_dict())]
    return WorkflowPlan(name=slug, slug=slug, namespace="default", nats_url=url, sources=[], targets=[],
                        streams=streams, key_values=[], agents=agents, kubernetes=[])


async def _prepare(js, plan: WorkflowPlan, events: int) -> None:
    stream = plan.streams[0].name
    await js.add_stream(StreamConfig.from_response(dict(plan.streams[0].config)))
    payload = json.dumps({"amount": 42.5, "account": "acc-1", "country": "ES"}).encode()
    source = f"kumeo.{plan.slug}.source"
    pending = []
    for i in range(events):
        pending.append(await js.publish_async(source, payload, headers={"Kumeo-Event-Id": f"e{i}"}))
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    assert (await js.stream_info(stream)).state.messages == events


async def _wait_for(js, stream: str, subject: str, count: int, timeout: float = 120.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        info = await js.stream_info(stream, subjects_filter=subject)
        if (info.state.subjects or {}).get(subject, 0) >= count:
            return time.perf_counter()
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{subject} did not reach {count} messages")


async def bench_worker(url: str, events: int, batch: int, chain: list[str], tag: str) -> float:
    slug = f"w{tag}"
    plan = _plan(slug, chain, url)
    nc = await nats.connect(url)
    js = nc.jetstream()
    await _prepare(js, plan, events)
    workers = [Worker(plan, a, url, agent=PassThrough(plan.agent(a), plan, Path(".")), batch_size=batch)
               for a in chain]
    for w in workers:
        await w.start()
    started = time.perf_counter()
    tasks = [asyncio.create_task(w.run()) for w in workers]
    finished = await _wait_for(js, plan.streams[0].name, f"kumeo.{slug}.{chain[-1]}.out", events)
    for w in workers:
        await w.stop()
    await asyncio.gather(*tasks)
    await nc.close()
    return events / (finished - started)


async def bench_relay(url: str, events: int, batch: int, tag: str = "") -> float:
    """The baseline: what a careful engineer writes by hand with nats-py for one at-least-once hop."""
    slug = f"relay{tag}"
    plan = _plan(slug, ["relay"], url)
    nc = await nats.connect(url)
    js = nc.jetstream()
    await _prepare(js, plan, events)
    stream = plan.streams[0].name
    out = f"kumeo.{slug}.relay.out"
    sub = await js.pull_subscribe(f"kumeo.{slug}.source", durable="relay", stream=stream,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=10000))
    done = 0
    started = time.perf_counter()
    while done < events:
        try:
            msgs = await sub.fetch(batch, timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        futures = []
        for msg in msgs:
            data = json.loads(msg.data)
            event_id = msg.headers["Kumeo-Event-Id"]
            futures.append(await js.publish_async(out, json.dumps(data).encode(),
                                                  headers={"Kumeo-Event-Id": event_id,
                                                           "Nats-Msg-Id": f"{event_id}:relay"}))
        await asyncio.gather(*futures)
        for msg in msgs:
            await msg.ack()
        done += len(msgs)
    finished = await _wait_for(js, stream, out, events)
    await nc.close()
    return events / (finished - started)


async def bench_latency(url: str, rate: float, seconds: float, batch: int) -> tuple[float, float, int]:
    slug = "lat"
    plan = _plan(slug, ["hop"], url)
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig.from_response(dict(plan.streams[0].config)))
    worker = Worker(plan, "hop", url, agent=PassThrough(plan.agent("hop"), plan, Path(".")), batch_size=batch)
    await worker.start()
    task = asyncio.create_task(worker.run())
    sent: dict[str, int] = {}
    latencies: list[float] = []
    got = asyncio.Event()
    total = int(rate * seconds)

    async def on_output(msg) -> None:
        t = time.perf_counter_ns()
        start = sent.get(msg.headers.get("Kumeo-Event-Id", ""))
        if start is not None:
            latencies.append((t - start) / 1e6)
        if len(latencies) >= total:
            got.set()

    await nc.subscribe(f"kumeo.{slug}.hop.out", cb=on_output)
    await asyncio.sleep(0.3)  # the worker's first pull request is waiting
    interval = 1.0 / rate
    begin = time.perf_counter()
    for i in range(total):
        target = begin + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event_id = f"l{i}"
        sent[event_id] = time.perf_counter_ns()
        await nc.publish(f"kumeo.{slug}.source", b'{"amount": 1}', headers={"Kumeo-Event-Id": event_id})
    try:
        await asyncio.wait_for(got.wait(), 30)
    except TimeoutError:
        pass
    await worker.stop()
    await task
    await nc.close()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return p50, p99, len(latencies)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per contender (median reported)")
    args = parser.parse_args()

    relays, workers = [], []
    with NatsServer() as server:
        url = server.url
        # Alternate the contenders so a noisy neighbour on the machine hurts both alike.
        for i in range(args.repeat):
            relays.append(await bench_relay(url, args.events, args.batch, f"{i}"))
            workers.append(await bench_worker(url, args.events, args.batch, ["hop"], f"one{i}"))
        chain = await bench_worker(url, args.events, args.batch, ["a", "b", "c"], "chain")
        p50, p99, n = await bench_latency(url, args.rate, args.seconds, args.batch)

    relay, worker = statistics.median(relays), statistics.median(workers)
    ratio = worker / relay
    print(f"one hop, batch {args.batch}, {args.events} events (pre-published), median of {args.repeat} runs:")
    print(f"  hand-written nats-py relay   {relay:10,.0f} events/s   (runs: {', '.join(f'{r:,.0f}' for r in relays)})")
    print(f"  kumeo Worker                 {worker:10,.0f} events/s   (runs: {', '.join(f'{w:,.0f}' for w in workers)})")
    print(f"  ratio worker/relay           {ratio:10.2f}   (goal >= 0.80) {'OK' if ratio >= 0.8 else 'BELOW GOAL'}")
    print(f"3-agent chain                  {chain:10,.0f} events/s end to end")
    print(f"hop latency at {args.rate:,.0f} events/s offered ({n} events):")
    print(f"  p50                          {p50:10.2f} ms    (goal < 2 ms)  {'OK' if p50 < 2 else 'ABOVE GOAL'}")
    print(f"  p99                          {p99:10.2f} ms    (goal < 10 ms) {'OK' if p99 < 10 else 'ABOVE GOAL'}")


if __name__ == "__main__":
    asyncio.run(main())
