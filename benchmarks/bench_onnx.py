"""Benchmark the MLModel agent (ONNX Runtime) in a real Worker on a real nats-server, with and without micro-batching.

    .venv/bin/python benchmarks/bench_onnx.py [--events 20000] [--batch 256] [--repeat 2]

Prints events/s for one MLModel hop scoring the fraud example's IsolationForest:

1. micro-batched: the agent stacks each batch the worker pulls (``--batch`` messages) into inference calls of up
   to ``--batch`` rows (goal ≥ 5k events/s);
2. unbatched: the same worker and pull batch, but the agent's ``batch_size: 1``, so one inference call per event;
3. their ratio, and the inference calls each made.

The events are pre-published, so only the consuming side is measured: pull, JSON decode, feature rows, inference,
JSON encode, publish with PubAck, ack. Everything runs in this process on one event loop; the best of
``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import nats
import numpy as np
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# after the path set-up above, so the script runs from a checkout
from benchmarks._harness import Result, load_average  # noqa: E402
from kumeo_iac.compile._plan import AgentPlan, ConsumerPlan, StreamPlan, WorkflowPlan  # noqa: E402
from kumeo_iac.local._nats_server import NatsServer  # noqa: E402
from kumeo_iac.runtime._worker import Worker  # noqa: E402

EXAMPLE = ROOT / "examples" / "fraud_detection"
FEATURES = ["amount", "hour", "merchant_category", "country_mismatch"]


def _plan(slug: str, url: str, agent_batch: int) -> WorkflowPlan:
    stream = f"B_{slug.upper()}"
    subject = f"kumeo.{slug}.source"
    config = ConsumerConfig(durable_name="anomaly", deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
                            ack_wait=30.0, max_deliver=5, filter_subjects=[subject], max_ack_pending=10000).as_dict()
    agent = AgentPlan(
        id="anomaly", kind="MLModel", inputs={"": subject}, input_fields={"": []},
        output_subject=f"kumeo.{slug}.anomaly.out", dead_letter_subject=f"kumeo.{slug}.dlq.anomaly",
        routes=[], target_subjects=[], consumers=[ConsumerPlan(stream, "anomaly", "anomaly", config)],
        settings={"model": {"file": "models/isolation_forest.onnx"}, "features": FEATURES,
                  "config": {"batch_size": agent_batch}},
        when=None, timeout_seconds=10.0, max_deliver=5, backoff_seconds=[1.0], fallback=None, files=[],
        image="", image_class="ml", replicas=1, max_replicas=1, resources={},
    )
    streams = [StreamPlan(stream, "internal", StreamConfig(name=stream, subjects=[f"kumeo.{slug}.>"],
                                                           storage=StorageType.FILE).as_dict())]
    return WorkflowPlan(name=slug, slug=slug, namespace="default", nats_url=url, sources=[], targets=[],
                        streams=streams, key_values=[], agents=[agent], kubernetes=[])


async def _prepare(js, plan: WorkflowPlan, events: int) -> None:
    await js.add_stream(StreamConfig.from_response(dict(plan.streams[0].config)))
    for consumer in plan.consumers:  # the deployer's part: workers only bind to their durable
        await js.add_consumer(consumer.stream, ConsumerConfig.from_response(dict(consumer.config)))
    rng = np.random.default_rng(1)
    source = f"kumeo.{plan.slug}.source"
    pending = []
    for i in range(events):
        payload = {"tx_id": f"t{i}", "amount": float(round(rng.lognormal(3.5, 1.2), 2)),
                   "hour": int(rng.integers(0, 24)), "merchant_category": int(rng.integers(0, 9)),
                   "country_mismatch": int(rng.random() < 0.05)}
        pending.append(await js.publish_async(source, json.dumps(payload).encode(),
                                              headers={"Kumeo-Event-Id": f"e{i}"}))
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def _wait_for(js, stream: str, subject: str, count: int, timeout: float = 300.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        info = await js.stream_info(stream, subjects_filter=subject)
        if (info.state.subjects or {}).get(subject, 0) >= count:
            return time.perf_counter()
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{subject} did not reach {count} messages")


async def bench(url: str, events: int, worker_batch: int, agent_batch: int, tag: str) -> tuple[float, int]:
    """events/s through one MLModel hop, and the inference calls the agent made."""
    plan = _plan(f"onnx{tag}", url, agent_batch)
    nc = await nats.connect(url)
    js = nc.jetstream()
    await _prepare(js, plan, events)
    worker = Worker(plan, "anomaly", url, base_dir=EXAMPLE, batch_size=worker_batch)
    await worker.start()  # loads the model: not part of the measurement
    started = time.perf_counter()
    task = asyncio.create_task(worker.run())
    finished = await _wait_for(js, plan.streams[0].name, plan.agents[0].output_subject, events)
    calls = worker.agent._batcher.calls  # type: ignore[union-attr]
    await worker.stop()
    await task
    await js.delete_stream(plan.streams[0].name)
    await nc.close()
    return events / (finished - started), calls


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=256, help="the worker's pull batch and the agent's batch_size")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    server = NatsServer()
    server.start()
    try:
        batched = unbatched = (0.0, 0)
        for i in range(args.repeat):
            b = await bench(server.url, args.events, args.batch, args.batch, f"b{i}")
            u = await bench(server.url, args.events, args.batch, 1, f"u{i}")
            batched = max(batched, b)
            unbatched = max(unbatched, u)
    finally:
        server.cleanup()

    goal = "ok" if batched[0] >= 5000 else "BELOW GOAL"
    print(f"MLModel (IsolationForest, ONNX Runtime, 1 intra-op thread), {args.events} events, "
          f"worker batch {args.batch}")
    print(f"  micro-batched (batch_size {args.batch}): {batched[0]:>9,.0f} events/s  "
          f"({batched[1]} inference calls)  goal >= 5,000: {goal}")
    print(f"  unbatched     (batch_size 1):   {unbatched[0]:>9,.0f} events/s  ({unbatched[1]} inference calls)")
    print(f"  ratio batched / unbatched: {batched[0] / unbatched[0]:.2f}x   (load average {load_average()})")
    result = Result("onnx")
    result["events"] = args.events
    result["batch"] = args.batch
    result["batched_events_per_s"] = round(batched[0])
    result["unbatched_events_per_s"] = round(unbatched[0])
    result["ratio"] = round(batched[0] / unbatched[0], 2)
    result["inference_calls"] = {"batched": batched[1], "unbatched": unbatched[1]}
    result.write()


if __name__ == "__main__":
    asyncio.run(main())
