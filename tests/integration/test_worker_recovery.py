"""The worker survives what production does to it: a crash between publish and ack, a NATS restart, an outage."""

from __future__ import annotations

import asyncio
import json

import nats.js.errors
import pytest
from worker_support import (
    PassThrough,
    Scripted,
    http_get,
    make_agent,
    publish_events,
    read_subject,
    source_subject,
    stream_names,
    wait_count,
)

from kumeo_iac.runtime._agent import Emit

pytestmark = [pytest.mark.nats, pytest.mark.timeout(90)]


async def test_redelivery_after_a_killed_worker_yields_no_duplicate(harness):
    slug, plan = await harness.one_agent(ack_wait=1.5)
    internal, sources = stream_names(slug)
    out = f"kumeo.{slug}.a.out"

    # The first worker processes and publishes every event but "crashes" before acking any of them.
    crashing = await harness.run_worker(plan, "a", make_agent(PassThrough, plan, "a"))
    answered = []

    async def no_ack(msg, nak_delay):
        answered.append(msg)

    crashing._answer = no_ack
    n = 30
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(n)])
    assert await wait_count(harness.js, internal, out, n) == n
    await crashing.stop()
    info = await harness.js.consumer_info(sources, "a")
    assert info.num_ack_pending == n  # nothing was acked

    calls = []

    def behaviour(event):
        calls.append(event.attempt)
        return [Emit(event.data)]

    await harness.run_worker(plan, "a", make_agent(Scripted, plan, "a", behaviour=behaviour))
    for _ in range(100):
        info = await harness.js.consumer_info(sources, "a")
        if info.num_ack_pending == 0 and info.num_pending == 0 and len(calls) >= n:
            break
        await asyncio.sleep(0.1)
    assert len(calls) == n and set(calls) == {2}  # every event was redelivered and processed again
    assert info.num_ack_pending == 0
    assert await wait_count(harness.js, internal, out, n + 1, timeout=0.5) == n  # JetStream dropped the re-publish
    msgs = await read_subject(harness.js, internal, out)
    assert sorted(json.loads(m.data)["n"] for m in msgs) == list(range(n))


async def test_nats_restart_mid_stream_loses_nothing_and_the_worker_resumes(harness, nats_server):
    slug, plan = await harness.one_agent(ack_wait=2.0, max_deliver=10)
    internal, _ = stream_names(slug)
    out = f"kumeo.{slug}.a.out"

    async def behaviour(event):
        await asyncio.sleep(0.02)
        return [Emit(event.data)]

    worker = await harness.run_worker(plan, "a", make_agent(Scripted, plan, "a", behaviour=behaviour),
                                      batch_size=16)
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(300)])
    await wait_count(harness.js, internal, out, 50)
    await asyncio.to_thread(nats_server.restart)
    before = await wait_count(harness.js, internal, out, 0)
    assert before < 300, "the restart should happen mid-stream"
    for _ in range(100):
        if harness.nc.is_connected:
            break
        await asyncio.sleep(0.05)
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(300, 400)])
    assert await wait_count(harness.js, internal, out, 400, timeout=30) == 400
    await asyncio.sleep(0.5)
    assert await count_exact(harness, internal, out) == 400
    msgs = await read_subject(harness.js, internal, out)
    assert sorted(json.loads(m.data)["n"] for m in msgs) == list(range(400))
    assert worker.is_ready()


async def count_exact(harness, stream, subject):
    from worker_support import count_subject

    return await count_subject(harness.js, stream, subject)


async def test_readyz_flips_to_503_while_nats_is_down(harness, nats_server):
    slug, plan = await harness.one_agent()
    worker = await harness.run_worker(plan, "a", make_agent(PassThrough, plan, "a"), health_port=0)
    port = worker.health_port
    assert await http_get(port, "/healthz") == (200, "ok\n")
    assert (await http_get(port, "/readyz"))[0] == 200

    await asyncio.to_thread(nats_server.stop)
    try:
        status = None
        for _ in range(100):
            status, _ = await http_get(port, "/readyz")
            if status == 503:
                break
            await asyncio.sleep(0.05)
        assert status == 503
        assert (await http_get(port, "/healthz"))[0] == 200  # alive, just not ready
    finally:
        await asyncio.to_thread(nats_server.start)
    for _ in range(100):
        status, _ = await http_get(port, "/readyz")
        if status == 200:
            break
        await asyncio.sleep(0.05)
    assert status == 200

    # And it works again: an event goes through after the outage.
    await publish_events(harness.js, source_subject(slug), [{"n": 1}])
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.a.out", 1) == 1
    status, metrics = await http_get(port, "/metrics")
    assert status == 200
    assert f'kumeo_events_in_total{{workflow="wf-{slug}",agent="a"}} 1' in metrics
    assert "kumeo_processing_seconds_bucket" in metrics and "kumeo_consumer_lag" in metrics


async def test_a_deleted_consumer_is_reported_and_the_worker_resumes_once_the_deployer_restores_it(harness, caplog):
    """The worker never creates its consumer (its identity may not): while it is gone the worker says which one and
    what to do, reports not ready, and binds again by itself once the deployer has created it once more."""
    slug, plan = await harness.one_agent()
    internal, sources = stream_names(slug)
    out = f"kumeo.{slug}.a.out"
    worker = await harness.run_worker(plan, "a", make_agent(PassThrough, plan, "a"))
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(10)])
    assert await wait_count(harness.js, internal, out, 10) == 10

    caplog.set_level("ERROR", logger="kumeo.runtime")
    await harness.js.delete_consumer(sources, "a")
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(10, 20)])
    for _ in range(150):
        if not worker.is_ready() and any("does not exist" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.1)
    assert not worker.is_ready()
    (message,) = {r.getMessage() for r in caplog.records if "does not exist" in r.getMessage()}
    assert f"durable consumer 'a' on stream '{sources}'" in message and "pulumi up" in message
    assert await count_exact(harness, internal, out) == 10  # nothing read while the consumer is gone
    with pytest.raises(nats.js.errors.NotFoundError):  # and the worker did not create it
        await harness.js.consumer_info(sources, "a")

    from worker_support import create_consumers

    await create_consumers(harness.js, plan)  # the deployer restores it
    assert await wait_count(harness.js, internal, out, 20, timeout=15) == 20
    assert worker.is_ready()
    # The new consumer starts from the stream's beginning; the duplicate window drops the re-published outputs.
    await asyncio.sleep(0.5)
    assert await count_exact(harness, internal, out) == 20

