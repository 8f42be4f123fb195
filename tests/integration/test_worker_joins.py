"""Multi-input agents: parts joined by event id in the KV bucket; a join that never completes is dead-lettered."""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.js.errors import NoKeysError
from worker_support import (
    PassThrough,
    agent_plan,
    make_agent,
    new_slug,
    read_subject,
    stream_names,
    wait_count,
)

from kumeo_iac.runtime import envelope

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]


async def _join_setup(harness, join_ttl=30.0, replicas=1):
    slug = new_slug()
    inputs = {"risk": f"kumeo.{slug}.risk.out", "profile": f"kumeo.{slug}.profile.out"}
    plan = await harness.deploy(slug, [agent_plan(slug, "decide", inputs, join_ttl=join_ttl)])
    workers = []
    for _ in range(replicas):
        workers.append(await harness.run_worker(plan, "decide", make_agent(PassThrough, plan, "decide"),
                                                join_sweep_seconds=0.2))
    return slug, plan, inputs, workers


async def _part(harness, subject, event_id, payload, producer):
    await harness.js.publish(subject, json.dumps(payload).encode(), headers={
        envelope.EVENT_ID: event_id, envelope.MSG_ID: f"{event_id}:{producer}"})


async def test_a_join_completes_when_every_part_has_arrived(harness):
    # Two replicas share the consumer, so parts of one event land on different workers.
    slug, _, inputs, _ = await _join_setup(harness, replicas=2)
    n = 40
    for i in range(n):
        await _part(harness, inputs["risk"], f"e{i}", {"score": i / 100}, "risk")
    for i in reversed(range(n)):
        await _part(harness, inputs["profile"], f"e{i}", {"tier": f"t{i}"}, "profile")
    internal, _ = stream_names(slug)
    out = f"kumeo.{slug}.decide.out"
    assert await wait_count(harness.js, internal, out, n) == n
    msgs = await read_subject(harness.js, internal, out)
    by_id = {m.headers[envelope.EVENT_ID]: json.loads(m.data) for m in msgs}
    assert by_id["e7"] == {"risk": {"score": 0.07}, "profile": {"tier": "t7"}}
    assert len(by_id) == n

    # A late duplicate of a part (a redelivery after the join completed) is dropped, not re-joined.
    await harness.js.publish(inputs["risk"], b'{"score": 0.07}', headers={envelope.EVENT_ID: "e7"})
    await asyncio.sleep(0.5)
    assert await wait_count(harness.js, internal, out, n + 1, timeout=0.3) == n
    kv = await harness.js.key_value(f"kumeo_{slug}_joins")
    with pytest.raises(NoKeysError):
        await kv.keys()  # every join is closed: no key is left in the bucket


async def test_a_join_that_never_completes_is_dead_lettered_when_its_ttl_ends(harness):
    slug, _, inputs, (worker,) = await _join_setup(harness, join_ttl=0.6)
    await _part(harness, inputs["risk"], "lonely", {"score": 0.9}, "risk")
    await _part(harness, inputs["risk"], "done", {"score": 0.1}, "risk")
    await _part(harness, inputs["profile"], "done", {"tier": "gold"}, "profile")
    internal, _ = stream_names(slug)
    dlq = f"kumeo.{slug}.dlq.decide"
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.decide.out", 1) == 1
    assert await wait_count(harness.js, internal, dlq, 1, timeout=5) == 1
    (dead,) = await read_subject(harness.js, internal, dlq)
    body = json.loads(dead.data)
    assert body["agent"] == "decide"
    assert body["input"] == {"risk": {"score": 0.9}}
    assert "missing part(s) profile" in body["error"]
    assert dead.headers[envelope.EVENT_ID] == "lonely"
    assert "join incomplete" in dead.headers[envelope.ERROR]
    assert worker.metrics.events_dead_lettered == 1

    # The missing part arriving after the expiry is dead-lettered too, instead of opening a join for ever.
    await _part(harness, inputs["profile"], "lonely", {"tier": "late"}, "profile")
    assert await wait_count(harness.js, internal, dlq, 2, timeout=5) == 2
    late = (await read_subject(harness.js, internal, dlq))[1]
    assert "after its join expired" in late.headers[envelope.ERROR]
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.decide.out", 2, timeout=0.3) == 1
