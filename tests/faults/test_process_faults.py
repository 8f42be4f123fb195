"""Fault injection end to end: worker processes on a real nats-server, killed, cut off, poisoned, slowed down.

Each test runs ``python -m kumeo_iac.runtime`` processes (what an agent pod runs) on a 2-agent chain
source → a → b → target and counts the outcome by ``Kumeo-Event-Id`` on the target stream: every event exactly once.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from fault_support import (
    Cluster,
    chain,
    count,
    event_ids,
    messages,
    new_slug,
    publish,
    rss_mib,
    source_subject,
    streams_of,
    target_subject,
    wait_for,
)

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

EVENTS = 10_000


@pytest.fixture
def cluster_factory(tmp_path, nats_url):
    made: list[Cluster] = []

    def make(plan):
        cluster = Cluster(plan, nats_url, tmp_path)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


async def _exactly_once(js, slug: str, ids: list[str], timeout: float, cluster: Cluster) -> None:
    targets = streams_of(slug)["targets"]
    target = target_subject(slug)

    async def arrived() -> bool:
        return await count(js, targets, target) >= len(ids)

    reached = await wait_for(arrived, timeout, 0.2)
    await asyncio.sleep(0.5)  # a late duplicate would land now
    seen = await event_ids(js, targets, target)
    lost = set(ids) - set(seen)
    doubled = {k: v for k, v in seen.items() if v > 1}
    assert reached and not lost and not doubled, (
        f"{len(lost)} lost (e.g. {sorted(lost)[:5]}), {len(doubled)} duplicated (e.g. {list(doubled.items())[:5]}), "
        f"{sum(seen.values())} on the target\n{cluster.logs()}")
    assert set(seen) == set(ids)


@pytest.mark.parametrize("victim", ["a", "b"])
async def test_sigkill_of_a_worker_mid_stream_loses_and_doubles_nothing(js, nats_url, cluster_factory, victim):
    slug = new_slug()
    plan = chain(slug, ["a", "b"], nats_url, ack_wait=2.0, max_deliver=10)
    cluster = cluster_factory(plan)
    from fault_support import create_streams

    await create_streams(js, plan)
    ids = [f"e{i}" for i in range(EVENTS)]
    # The whole stream is waiting before the workers start, so the victim is busy (events in flight) when killed.
    await publish(js, source_subject(slug), [(i, {"n": n}) for n, i in enumerate(ids)])
    workers = {a: cluster.start(a) for a in ("a", "b")}

    # Mid-stream for the victim: a fifth of what it must publish is out (a.out for a, the target for b).
    stream, subject = ((streams_of(slug)["internal"], f"kumeo.{slug}.a.out") if victim == "a"
                       else (streams_of(slug)["targets"], target_subject(slug)))

    async def mid_stream() -> bool:
        return await count(js, stream, subject) >= EVENTS // 5

    assert await wait_for(mid_stream, 60, 0.01), cluster.logs()
    workers[victim].kill()
    before = await count(js, stream, subject)
    assert before < EVENTS, "the kill should happen mid-stream"
    # The replacement, as a Deployment would start it: same agent, same durable consumer.
    cluster.start(victim)
    await _exactly_once(js, slug, ids, 90, cluster)
    sources = streams_of(slug)["sources"]
    info = await js.consumer_info(sources, "a")
    assert info.num_pending == 0


async def test_nats_server_restart_mid_stream_loses_nothing_and_workers_resume(js, nats_url, nats_server,
                                                                              cluster_factory):
    slug = new_slug()
    plan = chain(slug, ["a", "b"], nats_url, ack_wait=2.0, max_deliver=20)
    cluster = cluster_factory(plan)
    from fault_support import create_streams

    await create_streams(js, plan)
    workers = [cluster.start(a) for a in ("a", "b")]
    await cluster.wait_ready(js)
    ids = [f"e{i}" for i in range(EVENTS)]
    half = EVENTS // 2
    await publish(js, source_subject(slug), [(i, {"n": n}) for n, i in enumerate(ids[:half])])
    targets = streams_of(slug)["targets"]

    async def mid_stream() -> bool:
        return await count(js, targets, target_subject(slug)) >= half // 4

    assert await wait_for(mid_stream, 60, 0.02), cluster.logs()
    await asyncio.to_thread(nats_server.restart)
    assert all(w.alive() for w in workers)

    async def connected() -> bool:
        return js._nc.is_connected

    assert await wait_for(connected, 10)
    # The second half is published after the restart: the workers must have re-bound by themselves to see it.
    await publish(js, source_subject(slug), [(i, {"n": n}) for n, i in enumerate(ids[half:], half)])
    await _exactly_once(js, slug, ids, 90, cluster)
    assert all(w.alive() for w in workers)


async def test_a_poison_event_is_dead_lettered_after_max_deliver_and_the_rest_flow(js, nats_url, cluster_factory):
    slug = new_slug()
    plan = chain(slug, ["a", "b"], nats_url, ack_wait=3.0, max_deliver=3, backoff=[0.05, 0.1])
    cluster = cluster_factory(plan)
    from fault_support import create_streams

    await create_streams(js, plan)
    for a in ("a", "b"):
        cluster.start(a, "PoisonAware")
    await cluster.wait_ready(js)
    n = 2000
    events = [(f"e{i}", {"n": i}) for i in range(n)]
    events[700] = ("poison-1", {"n": 700, "poison": True})
    events[1400] = ("not-json", b"\xff\xfe not utf-8")  # rejected at once: no retry can fix a malformed payload
    await publish(js, source_subject(slug), events)
    good = [e for e, _ in events if e not in ("poison-1", "not-json")]
    await _exactly_once(js, slug, good, 60, cluster)

    internal = streams_of(slug)["internal"]
    dlq = f"kumeo.{slug}.dlq.a"

    async def dead_lettered() -> bool:
        return await count(js, internal, dlq) >= 2

    assert await wait_for(dead_lettered, 20), cluster.logs()
    await asyncio.sleep(0.5)
    letters = {m.headers["Kumeo-Event-Id"]: m for m in await messages(js, internal, dlq)}
    assert sorted(letters) == ["not-json", "poison-1"]
    poison = json.loads(letters["poison-1"].data)
    assert poison["attempt"] == 3 and "cannot digest poison event" in poison["error"]
    assert "Kumeo-Error" in letters["poison-1"].headers
    assert json.loads(letters["not-json"].data)["attempt"] == 1
    assert await count(js, internal, f"kumeo.{slug}.dlq.b") == 0
    sources = streams_of(slug)["sources"]
    info = await js.consumer_info(sources, "a")
    assert info.num_pending == 0 and info.num_ack_pending == 0


async def test_a_slow_agent_keeps_in_flight_and_memory_bounded_while_10k_events_wait(js, nats_url,
                                                                                     cluster_factory):
    slug = new_slug()
    batch = 32
    plan = chain(slug, ["slow"], nats_url, ack_wait=30.0, max_deliver=5, timeout=20.0, max_ack_pending=1000)
    cluster = cluster_factory(plan)
    from fault_support import create_streams

    await create_streams(js, plan)
    worker = cluster.start("slow", "Slow", env={"KUMEO_FAULT_DELAY": "0.005"}, batch_size=batch)
    await cluster.wait_ready(js)
    await publish(js, source_subject(slug), [(f"e{i}", {"n": i, "body": "y" * 256}) for i in range(EVENTS)])
    sources = streams_of(slug)["sources"]

    samples: list[tuple[float, int, int]] = []  # (RSS MiB, in flight, waiting)
    for _ in range(24):
        info = await js.consumer_info(sources, "slow")
        samples.append((rss_mib(worker.pid), int(info.num_ack_pending), int(info.num_pending)))
        await asyncio.sleep(0.25)
    assert worker.alive(), cluster.logs()
    in_flight = [s[1] for s in samples]
    waiting = [s[2] for s in samples]
    rss = [s[0] for s in samples]
    # In flight: at most one pull batch (the worker asks for more only when it is done with the last one).
    assert max(in_flight) <= batch, in_flight
    # The backlog waits in the stream, not in the worker.
    assert min(waiting) >= EVENTS - 2000, waiting
    assert waiting[-1] < waiting[0], "the slow agent should still make progress"
    settled = rss[4:]
    assert max(settled) - min(settled) < 15, f"RSS grew while events waited: {rss}"
    assert max(rss) < 250, rss
