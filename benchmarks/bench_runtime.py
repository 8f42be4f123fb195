"""Benchmark the agent worker against a hand-written nats-py relay, on a real nats-server.

    .venv/bin/python benchmarks/bench_runtime.py [--events 20000] [--batch 64] [--rates 1000,5000] [--seconds 3]

Prints, in one run:

1. events/s through one pass-through hop via the Worker, and via a hand-written nats-py relay doing the same
   JetStream consume → publish (with Nats-Msg-Id, waiting for PubAcks) → ack with the same batch size; their
   ratio (goal ≥ 0.8, and ≥ 10k events/s);
2. events/s through a chain of three pass-through agents, and the same chain of three hand-written relays;
3. p50/p99/p999 hop latency (source publish → output received) at fixed offered loads (1k and 5k events/s; goals
   at 1k: p50 < 2 ms, p99 < 10 ms), the median of ``--repeat`` runs of each.

Everything runs in this process on one event loop (the worker, the relay, the load generator), each measurement
alone; the events are pre-published for the throughput runs so only the consuming side is measured. Results go
to ``benchmarks/results/runtime.json`` and ``runtime_throughput.png`` / ``runtime_latency.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import Result, load_average, percentile, plot
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
    for consumer in plan.consumers:  # the deployer's part: workers only bind to their durable
        await js.add_consumer(consumer.stream, ConsumerConfig.from_response(dict(consumer.config)))
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


async def _relay_hop(js, stream: str, source: str, name: str, out: str, events: int, batch: int) -> None:
    sub = await js.pull_subscribe(source, durable=name, stream=stream,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=10000))
    done = 0
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
                                                           "Nats-Msg-Id": f"{event_id}:{name}"}))
        await asyncio.gather(*futures)
        for msg in msgs:
            await msg.ack()
        done += len(msgs)


async def bench_relay(url: str, events: int, batch: int, tag: str = "", hops: int = 1) -> float:
    """The baseline: what a careful engineer writes by hand with nats-py for at-least-once hops (one connection
    per hop, as separate services would have)."""
    slug = f"relay{tag}"
    names = [f"relay{i}" for i in range(hops)]
    plan = _plan(slug, names, url)
    nc = await nats.connect(url)
    js = nc.jetstream()
    await _prepare(js, plan, events)
    stream = plan.streams[0].name
    conns = [await nats.connect(url) for _ in names]
    subject = f"kumeo.{slug}.source"
    jobs = []
    for name, conn in zip(names, conns, strict=True):
        out = f"kumeo.{slug}.{name}.out"
        jobs.append(_relay_hop(conn.jetstream(), stream, subject, name, out, events, batch))
        subject = out
    started = time.perf_counter()
    tasks = [asyncio.create_task(j) for j in jobs]
    finished = await _wait_for(js, stream, subject, events)
    await asyncio.gather(*tasks)
    for conn in conns:
        await conn.close()
    await nc.close()
    return events / (finished - started)


async def bench_latency(url: str, rate: float, seconds: float, batch: int, tag: str = "") -> list[float]:
    """Hop latencies in ms (sorted) of events offered at ``rate`` per second for ``seconds``."""
    slug = f"lat{tag}"
    plan = _plan(slug, ["hop"], url)
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig.from_response(dict(plan.streams[0].config)))
    for consumer in plan.consumers:  # the deployer's part: workers only bind to their durable
        await js.add_consumer(consumer.stream, ConsumerConfig.from_response(dict(consumer.config)))
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
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(got.wait(), 30)
    await worker.stop()
    await task
    await nc.close()
    latencies.sort()
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rates", default="1000,5000", help="offered loads of the latency runs, events/s")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each latency run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median reported)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]

    result = Result("runtime")
    relays, workers, relay_chains, chains = [], [], [], []
    latency_runs: dict[float, list[list[float]]] = {rate: [] for rate in rates}
    with NatsServer() as server:
        url = server.url
        # Alternate the contenders so a noisy neighbour on the machine hurts both alike.
        for i in range(args.repeat):
            relays.append(await bench_relay(url, args.events, args.batch, f"{i}"))
            workers.append(await bench_worker(url, args.events, args.batch, ["hop"], f"one{i}"))
        for i in range(max(1, args.repeat - 1)):
            relay_chains.append(await bench_relay(url, args.events, args.batch, f"chain{i}", hops=3))
            chains.append(await bench_worker(url, args.events, args.batch, ["a", "b", "c"], f"chain{i}"))
        for i in range(args.repeat):
            for rate in rates:
                latency_runs[rate].append(await bench_latency(url, rate, args.seconds, args.batch, f"{int(rate)}{i}"))

    med = statistics.median
    relay, worker = med(relays), med(workers)
    relay_chain, chain = med(relay_chains), med(chains)
    ratio, chain_ratio = worker / relay, chain / relay_chain

    def runs(xs: list[float]) -> str:
        return ", ".join(f"{x:,.0f}" for x in xs)

    print(f"load average {load_average()} on 2 CPUs; one hop, batch {args.batch}, {args.events} events "
          f"(pre-published), median of {args.repeat} runs:")
    print(f"  hand-written nats-py relay   {relay:10,.0f} events/s   (runs: {runs(relays)})")
    print(f"  kumeo Worker                 {worker:10,.0f} events/s   (runs: {runs(workers)})")
    print(f"  ratio worker/relay           {ratio:10.2f}   (goal >= 0.80) {'OK' if ratio >= 0.8 else 'BELOW GOAL'}"
          f"; >= 10k events/s: {'OK' if worker >= 10000 else 'BELOW GOAL'}")
    print("3-agent chain, end to end:")
    print(f"  3 hand-written relays        {relay_chain:10,.0f} events/s   (runs: {runs(relay_chains)})")
    print(f"  3 kumeo Workers              {chain:10,.0f} events/s   (runs: {runs(chains)})")
    print(f"  ratio workers/relays         {chain_ratio:10.2f}")
    latency: dict[str, Any] = {}
    for rate in rates:
        per_run = latency_runs[rate]
        p50, p99, p999 = (med(percentile(r, q) for r in per_run) for q in (50, 99, 99.9))
        n = sum(len(r) for r in per_run)
        sent = int(rate * args.seconds) * len(per_run)
        latency[str(int(rate))] = {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "p999_ms": round(p999, 3),
                                   "received": n, "sent": sent, "runs": len(per_run)}
        goal = ""
        if rate == 1000:
            goal = (f"   goals p50 < 2 ms: {'OK' if p50 < 2 else 'MISSED'}, "
                    f"p99 < 10 ms: {'OK' if p99 < 10 else 'MISSED'}")
        print(f"hop latency at {rate:,.0f} events/s offered ({n}/{sent} events, median of {len(per_run)} runs): "
              f"p50 {p50:.2f} ms  p99 {p99:.2f} ms  p999 {p999:.2f} ms{goal}")

    result["batch"] = args.batch
    result["events"] = args.events
    result["one_hop"] = {"relay_events_per_s": round(relay), "worker_events_per_s": round(worker),
                         "ratio": round(ratio, 3), "relay_runs": [round(x) for x in relays],
                         "worker_runs": [round(x) for x in workers]}
    result["chain3"] = {"relay_events_per_s": round(relay_chain), "worker_events_per_s": round(chain),
                        "ratio": round(chain_ratio, 3), "relay_runs": [round(x) for x in relay_chains],
                        "worker_runs": [round(x) for x in chains]}
    result["latency"] = latency
    result.write()

    def throughput(fig: Any) -> None:
        ax = fig.add_subplot()
        labels = ["one hop", "3-agent chain"]
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], [relay, relay_chain], 0.4, label="hand-written nats-py relay")
        ax.bar([x + 0.2 for x in xs], [worker, chain], 0.4, label="kumeo Worker")
        ax.set_xticks(list(xs), labels)
        ax.set_ylabel("events/s")
        ax.set_title(f"Throughput, batch {args.batch} (ratio {ratio:.2f} / {chain_ratio:.2f})")
        ax.legend()

    def latencies(fig: Any) -> None:
        ax = fig.add_subplot()
        for rate in rates:
            values = sorted(v for r in latency_runs[rate] for v in r)
            ax.plot(values, [100 * (i + 1) / len(values) for i in range(len(values))], label=f"{rate:,.0f} events/s")
        ax.set_xscale("log")
        ax.set_xlabel("hop latency, ms (log)")
        ax.set_ylabel("% of events")
        ax.set_title("One hop: latency distribution at fixed offered loads")
        ax.grid(True, alpha=0.3)
        ax.legend()

    plot("runtime_throughput", throughput)
    plot("runtime_latency", latencies)


if __name__ == "__main__":
    asyncio.run(main())
