"""The worker on a real nats-server: events in, results out, and every way an event can fail."""

from __future__ import annotations

import asyncio
import json

import pytest
from worker_support import (
    Doubler,
    PassThrough,
    Scripted,
    agent_plan,
    make_agent,
    new_slug,
    publish_events,
    read_subject,
    source_subject,
    stream_names,
    wait_count,
)

from kumeo_iac.runtime import envelope
from kumeo_iac.runtime._agent import Emit, EventRejected

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]


async def test_n_events_in_n_results_out_with_the_envelope(harness):
    slug = new_slug()
    _, plan = await harness.one_agent(slug=slug, targets=[f"kumeo.{slug}.target.sink"])
    await harness.run_worker(plan, "a", make_agent(Doubler, plan, "a"))
    n = 200
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(n)])
    internal, _ = stream_names(slug)
    out = f"kumeo.{slug}.a.out"
    assert await wait_count(harness.js, internal, out, n) == n
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.target.sink", n) == n
    msgs = await read_subject(harness.js, internal, out)
    assert sorted(json.loads(m.data)["doubled"] for m in msgs) == [2 * i for i in range(n)]
    ids = set()
    for m in msgs:
        h = m.headers
        ids.add(h[envelope.EVENT_ID])
        assert h[envelope.MSG_ID] == f"{h[envelope.EVENT_ID]}:a"
        assert h[envelope.AGENT] == "a"
        assert h[envelope.ATTEMPT] == "1"
        assert envelope.parse_traceparent(h[envelope.TRACEPARENT]) is not None
    assert len(ids) == n
    await asyncio.sleep(0.2)
    assert await wait_count(harness.js, internal, out, n + 1, timeout=0.3) == n  # nothing extra


async def test_event_id_and_trace_are_kept_across_hops(harness):
    slug = new_slug()
    first = agent_plan(slug, "first", {"": source_subject(slug)})
    second = agent_plan(slug, "second", {"": f"kumeo.{slug}.first.out"})
    plan = await harness.deploy(slug, [first, second])
    await harness.run_worker(plan, "first", make_agent(PassThrough, plan, "first"))
    await harness.run_worker(plan, "second", make_agent(PassThrough, plan, "second"))
    await harness.js.publish(source_subject(slug), b'{"x": 1}', headers={"Kumeo-Event-Id": "evt-1"})
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.second.out", 1) == 1
    (one,) = await read_subject(harness.js, internal, f"kumeo.{slug}.first.out")
    (two,) = await read_subject(harness.js, internal, f"kumeo.{slug}.second.out")
    assert one.headers[envelope.EVENT_ID] == two.headers[envelope.EVENT_ID] == "evt-1"
    assert two.headers[envelope.MSG_ID] == "evt-1:second"
    t1 = envelope.parse_traceparent(one.headers[envelope.TRACEPARENT])
    t2 = envelope.parse_traceparent(two.headers[envelope.TRACEPARENT])
    assert t1[0] == t2[0] and t1[1] != t2[1]  # same trace, new span per hop


async def test_when_false_passes_the_payload_on_unchanged(harness):
    slug, plan = await harness.one_agent(when="n > 5")
    await harness.run_worker(plan, "a", make_agent(Doubler, plan, "a"))
    raw = [json.dumps({"n": i, "note": "  spaced  "}, indent=1).encode() for i in range(10)]
    for body in raw:
        await harness.js.publish(source_subject(slug), body)
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.a.out", 10) == 10
    msgs = await read_subject(harness.js, internal, f"kumeo.{slug}.a.out")
    by_n = {json.loads(m.data)["n"]: m.data for m in msgs}
    for i in range(10):
        if i > 5:
            assert json.loads(by_n[i])["doubled"] == 2 * i
        else:
            assert by_n[i] == raw[i]  # byte for byte


async def test_transient_error_is_retried_then_succeeds(harness):
    slug, plan = await harness.one_agent(max_deliver=3, backoff=[0.1, 0.1])

    def behaviour(event):
        if event.data["n"] == 3 and event.attempt == 1:
            raise ConnectionError("model server not ready")
        return [Emit(event.data)]

    agent = make_agent(Scripted, plan, "a", behaviour=behaviour)
    worker = await harness.run_worker(plan, "a", agent)
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(5)])
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.a.out", 5) == 5
    msgs = await read_subject(harness.js, internal, f"kumeo.{slug}.a.out")
    attempts = {json.loads(m.data)["n"]: m.headers[envelope.ATTEMPT] for m in msgs}
    assert attempts == {0: "1", 1: "1", 2: "1", 3: "2", 4: "1"}
    assert worker.metrics.events_failed == 1
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.dlq.a", 1, timeout=0.3) == 0


async def test_poison_event_is_dead_lettered_after_max_deliver_while_the_rest_flow(harness):
    slug, plan = await harness.one_agent(max_deliver=3, backoff=[0.05, 0.05])

    def behaviour(event):
        if event.data["n"] == 7:
            raise ValueError("cannot score\nthis one")
        return [Emit(event.data)]

    agent = make_agent(Scripted, plan, "a", behaviour=behaviour)
    worker = await harness.run_worker(plan, "a", agent)
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(20)])
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.a.out", 19) == 19
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.dlq.a", 1) == 1
    (dead,) = await read_subject(harness.js, internal, f"kumeo.{slug}.dlq.a")
    body = json.loads(dead.data)
    assert body == {"error": "ValueError: cannot score this one", "agent": "a", "input": {"n": 7}, "attempt": 3}
    assert dead.headers[envelope.ERROR] == "ValueError: cannot score this one"
    assert dead.headers[envelope.ATTEMPT] == "3"
    assert dead.headers[envelope.AGENT] == "a"
    assert [a for (_, a) in agent.seen if a > 1] == [2, 3]
    assert worker.metrics.events_dead_lettered == 1
    info = await harness.js.consumer_info(plan.agents[0].consumers[0].stream, "a")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_event_rejected_goes_to_the_dead_letter_subject_at_once(harness):
    slug, plan = await harness.one_agent(max_deliver=5)

    def behaviour(event):
        if event.data["n"] == 1:
            raise EventRejected("amount must be a number")
        return [Emit(event.data)]

    agent = make_agent(Scripted, plan, "a", behaviour=behaviour)
    await harness.run_worker(plan, "a", agent)
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(3)])
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.dlq.a", 1) == 1
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.a.out", 2) == 2
    (dead,) = await read_subject(harness.js, internal, f"kumeo.{slug}.dlq.a")
    assert json.loads(dead.data)["attempt"] == 1
    assert dead.headers[envelope.ERROR] == "amount must be a number"
    assert [a for (eid, a) in agent.seen] == [1, 1, 1]  # never retried


async def test_a_timeout_is_retried(harness):
    slug, plan = await harness.one_agent(timeout=0.3, max_deliver=3, backoff=[0.05, 0.05])

    async def behaviour(event):
        if event.data["n"] == 2 and event.attempt == 1:
            await asyncio.sleep(5)
        return [Emit(event.data)]

    await harness.run_worker(plan, "a", make_agent(Scripted, plan, "a", behaviour=behaviour))
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(4)])
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.a.out", 4) == 4
    msgs = await read_subject(harness.js, internal, f"kumeo.{slug}.a.out")
    assert {json.loads(m.data)["n"]: m.headers[envelope.ATTEMPT] for m in msgs}[2] == "2"


async def test_fallback_value_is_emitted_instead_of_a_dead_letter(harness):
    slug, plan = await harness.one_agent(max_deliver=1, fallback={"value": {"score": 0.5, "fallback": True}})

    def behaviour(event):
        raise RuntimeError("down")

    await harness.run_worker(plan, "a", make_agent(Scripted, plan, "a", behaviour=behaviour))
    await publish_events(harness.js, source_subject(slug), [{"n": 1}])
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.a.out", 1) == 1
    (m,) = await read_subject(harness.js, internal, f"kumeo.{slug}.a.out")
    assert json.loads(m.data) == {"score": 0.5, "fallback": True}
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.dlq.a", 1, timeout=0.3) == 0


async def test_fallback_agent_receives_the_failed_event(harness):
    slug = new_slug()
    fb_subject = f"kumeo.{slug}.a.fallback"
    a = agent_plan(slug, "a", {"": source_subject(slug)}, max_deliver=1,
                   fallback={"agent": "backup", "subject": fb_subject})
    backup = agent_plan(slug, "backup", {"": fb_subject})
    plan = await harness.deploy(slug, [a, backup])

    def behaviour(event):
        raise RuntimeError("primary down")

    await harness.run_worker(plan, "a", make_agent(Scripted, plan, "a", behaviour=behaviour))
    await harness.run_worker(plan, "backup", make_agent(Doubler, plan, "backup"))
    await harness.js.publish(source_subject(slug), b'{"n": 21}', headers={"Kumeo-Event-Id": "e-21"})
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.backup.out", 1) == 1
    (m,) = await read_subject(harness.js, internal, f"kumeo.{slug}.backup.out")
    assert json.loads(m.data) == {"n": 21, "doubled": 42}
    assert m.headers[envelope.EVENT_ID] == "e-21"
    (handoff,) = await read_subject(harness.js, internal, fb_subject)
    assert handoff.headers[envelope.ERROR] == "RuntimeError: primary down"


async def test_several_emits_for_one_event_are_all_published(harness):
    slug, plan = await harness.one_agent()

    def behaviour(event):
        return [Emit({"i": i}) for i in range(3)]

    await harness.run_worker(plan, "a", make_agent(Scripted, plan, "a", behaviour=behaviour))
    await harness.js.publish(source_subject(slug), b"{}", headers={"Kumeo-Event-Id": "e"})
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.a.out", 3) == 3
    msgs = await read_subject(harness.js, internal, f"kumeo.{slug}.a.out")
    assert [m.headers[envelope.MSG_ID] for m in msgs] == ["e:a", "e:a:1", "e:a:2"]



async def test_a_replayed_event_that_fails_again_is_dead_lettered_again(harness):
    """A replay (as the dashboard makes it) that fails again must not be swallowed as a duplicate dead letter."""
    slug, plan = await harness.one_agent(max_deliver=5)

    def behaviour(event):
        raise EventRejected("still broken")

    await harness.run_worker(plan, "a", make_agent(Scripted, plan, "a", behaviour=behaviour))
    await publish_events(harness.js, source_subject(slug), [{"n": 1}])
    internal, _ = stream_names(slug)
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.dlq.a", 1) == 1
    (first,) = await read_subject(harness.js, internal, f"kumeo.{slug}.dlq.a")
    event_id = first.headers[envelope.EVENT_ID]
    await harness.js.publish(
        source_subject(slug),
        json.dumps({"n": 1}).encode(),
        headers={envelope.EVENT_ID: event_id, envelope.MSG_ID: f"{event_id}:replay:1", envelope.REPLAY_OF: "S/1"},
    )
    assert await wait_count(harness.js, internal, f"kumeo.{slug}.dlq.a", 2) == 2
    dead = await read_subject(harness.js, internal, f"kumeo.{slug}.dlq.a")
    assert {m.headers[envelope.EVENT_ID] for m in dead} == {event_id}
