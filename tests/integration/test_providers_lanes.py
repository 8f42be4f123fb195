"""Nothing stranded when a partitioned agent changes (issue 17, item 1), against a real nats-server.

The partition stream and its lane consumers come from a compiled Plan and are created through the providers, as
``up`` creates them; keyed copies are published so lanes hold events. Then, as the engine would at ``up``:
deleting a lane consumer that holds events is refused and leaves everything as it was, and allowed once the lane is
drained; changing N while lanes hold events is refused, and applied once they are drained.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError
from provider_support import checked, on_server
from totals_workflow import PARTITION_STREAM, totals

from kumeo_iac.compile import WorkflowPlan
from kumeo_providers import ConsumerProvider, StreamProvider, UndrainedLanesError

pytestmark = [pytest.mark.nats, pytest.mark.timeout(90)]

def stream_inputs(url: str, plan: WorkflowPlan, role: str) -> dict[str, Any]:
    [stream] = [s for s in plan.streams if s.role == role]
    return {"server_url": url, "config": dict(stream.config)}


def lane_inputs(url: str, plan: WorkflowPlan) -> dict[str, dict[str, Any]]:
    [agent] = [a for a in plan.agents if a.id == "total"]
    return {c.durable: {"server_url": url, "stream": c.stream, "config": dict(c.config)} for c in agent.consumers}


def held(url: str) -> dict[str, tuple[int, int]]:
    """Every lane's (pending, unacknowledged) events."""
    async def action(js: Any) -> dict[str, tuple[int, int]]:
        return {c.name: (c.num_pending, c.num_ack_pending) for c in await js.consumers_info(PARTITION_STREAM)}

    return on_server(url, action)


def stored(url: str) -> int:
    async def action(js: Any) -> int:
        return int((await js.stream_info(PARTITION_STREAM)).state.messages)

    return on_server(url, action)


def partition_dest(url: str) -> str:
    async def action(js: Any) -> str:
        config = (await js.stream_info(PARTITION_STREAM)).config
        return str(config.sources[0].subject_transforms[0].dest)

    return on_server(url, action)


def consumer_exists(url: str, durable: str) -> bool:
    async def action(js: Any) -> bool:
        try:
            await js.consumer_info(PARTITION_STREAM, durable)
        except NotFoundError:
            return False
        return True

    return on_server(url, action)


def publish_keyed(url: str, keys: int) -> None:
    """Keyed copies, as the upstream agent publishes them; the partition stream sources them into lanes."""
    async def action(js: Any) -> None:
        for key in range(keys):
            await js.publish(f"kumeo.totals.total.in.k{key}", b"{}")

    on_server(url, action)
    deadline = time.monotonic() + 10
    while stored(url) < keys:
        assert time.monotonic() < deadline, f"the partition stream sourced {stored(url)} of {keys} copies"
        time.sleep(0.05)


def drain(url: str, durable: str) -> int:
    """Handle (ack) every event of one lane, as its worker would; return how many."""
    async def action(js: Any) -> int:
        sub = await js.pull_subscribe_bind(durable, stream=PARTITION_STREAM)
        done = 0
        while True:
            try:
                [msg] = await sub.fetch(1, timeout=0.5)
            except NatsTimeoutError:
                info = await js.consumer_info(PARTITION_STREAM, durable)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    return done
                continue
            await msg.ack_sync()
            done += 1

    return int(on_server(url, action))


@pytest.fixture
def deployed(nats_url: str) -> dict[str, Any]:
    """The workflow's stream, the partition stream with 4 lanes and their consumers, created through the providers,
    with 12 keyed events spread over the lanes."""
    plan = totals(4, nats_url)
    streams = StreamProvider()
    streams.create(checked(streams, stream_inputs(nats_url, plan, "internal")))
    partitions = streams.create(checked(streams, stream_inputs(nats_url, plan, "partitions")))
    consumers = ConsumerProvider()
    lanes = {durable: consumers.create(checked(consumers, inputs))
             for durable, inputs in lane_inputs(nats_url, plan).items()}
    assert sorted(lanes) == ["total_p0", "total_p1", "total_p2", "total_p3"]
    publish_keyed(nats_url, 12)
    return {"partitions": partitions, "lanes": lanes}


def test_a_lane_consumer_holding_events_is_not_deleted_until_it_is_drained(nats_url, deployed):
    backlog = held(nats_url)
    lane = next(d for d, (pending, ack_pending) in sorted(backlog.items()) if pending + ack_pending > 0)
    created = deployed["lanes"][lane]

    with pytest.raises(UndrainedLanesError) as refused:
        ConsumerProvider().delete(created.id, created.outs)

    message = str(refused.value)
    assert message.startswith(f"refusing to delete lane consumer {PARTITION_STREAM}/{lane}: ")
    assert f"{lane}: {backlog[lane][0]} pending, {backlog[lane][1]} unacknowledged" in message
    assert "Changing N" in message
    assert consumer_exists(nats_url, lane)
    assert held(nats_url) == backlog and stored(nats_url) == 12  # nothing touched

    assert drain(nats_url, lane) == sum(backlog[lane])
    ConsumerProvider().delete(created.id, created.outs)
    assert not consumer_exists(nats_url, lane)
    assert stored(nats_url) == 12


def test_the_partition_count_does_not_change_until_every_lane_is_drained(nats_url, deployed):
    provider = StreamProvider()
    olds = deployed["partitions"].outs
    news = checked(provider, stream_inputs(nats_url, totals(2, nats_url), "partitions"), olds)
    diff = provider.diff(PARTITION_STREAM, olds, news)
    assert diff.changes is True and diff.replaces == []  # an update, which up refuses while lanes hold events
    backlog = {d: v for d, v in held(nats_url).items() if sum(v) > 0}
    assert len(backlog) >= 2  # 12 keys over 4 lanes

    with pytest.raises(UndrainedLanesError) as refused:
        provider.update(PARTITION_STREAM, olds, news)

    message = str(refused.value)
    assert message.startswith(f"refusing to change the partitions of stream {PARTITION_STREAM} from 4 to 2: ")
    for durable, (pending, ack_pending) in backlog.items():
        assert f"{durable}: {pending} pending, {ack_pending} unacknowledged" in message
    assert "{{partition(4,1)}}" in partition_dest(nats_url)  # the server's stream is as it was

    for durable in backlog:
        drain(nats_url, durable)
    updated = provider.update(PARTITION_STREAM, olds, news)

    assert "{{partition(2,1)}}" in partition_dest(nats_url)
    assert updated.outs["live_config"]["metadata"]["kumeo.dev/partitions"] == "2"
    assert stored(nats_url) == 12


def test_events_purged_on_purpose_no_longer_hold_a_lane(nats_url, deployed):
    """The documented way to let the events go: purge the partition stream, then delete (or destroy)."""
    lane = next(d for d, v in sorted(held(nats_url).items()) if sum(v) > 0)
    created = deployed["lanes"][lane]
    with pytest.raises(UndrainedLanesError):
        ConsumerProvider().delete(created.id, created.outs)

    async def purge(js: Any) -> None:
        await js.purge_stream(PARTITION_STREAM)

    on_server(nats_url, purge)
    assert all(v == (0, 0) for v in held(nats_url).values())
    ConsumerProvider().delete(created.id, created.outs)
    assert not consumer_exists(nats_url, lane)
