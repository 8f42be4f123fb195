"""A full JetStream stream (``max_msgs`` with ``discard: new``): every publisher sees the refusal, nothing is dropped.

The worker must never ack an input whose output the server refused: it NAKs (JetStream redelivers) and, on the
event's last allowed delivery, dead-letters it or holds it until the output (or the dead letter) is stored. The HTTP
source must answer an error the client can retry, not ``202``. Everything is counted on the streams afterwards.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from fault_support import (
    Cluster,
    chain,
    connect,
    count,
    create_streams,
    event_ids,
    new_slug,
    publish,
    settled,
    source_subject,
    streams_of,
    target_subject,
    wait_for,
)
from nats.js.api import DiscardPolicy

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

FULL = {"max_msgs": 200, "discard": DiscardPolicy.NEW}


async def _free_space(js, stream: str) -> None:
    info = await js.stream_info(stream)
    config = info.config
    config.max_msgs = -1
    await js.update_stream(config)


async def _outcome(js, slug: str, agent: str) -> tuple[set[str], set[str], set[str], int]:
    """Event ids on the agent's output subject, on the target, dead-lettered; and messages stored twice."""
    names = streams_of(slug)
    output = await event_ids(js, names["internal"], f"kumeo.{slug}.{agent}.out")
    on_target = await event_ids(js, names["targets"], target_subject(slug))
    dead = await event_ids(js, names["internal"], f"kumeo.{slug}.dlq.{agent}")
    doubled = sum(v - 1 for c in (output, on_target, dead) for v in c.values() if v > 1)
    return set(output), set(on_target), set(dead), doubled


@pytest.mark.parametrize(("max_deliver", "full_seconds"), [(10, 1.5), (2, 4.0)],
                         ids=["freed-before-last-delivery", "full-past-the-last-delivery"])
async def test_a_full_output_stream_never_loses_an_event(js, nats_url, tmp_path, max_deliver, full_seconds):
    slug = new_slug()
    plan = chain(slug, ["a"], nats_url, ack_wait=3.0, max_deliver=max_deliver, backoff=[0.1])
    await create_streams(js, plan, internal=FULL)
    cluster = Cluster(plan, nats_url, tmp_path)
    try:
        cluster.start("a")
        await cluster.wait_ready(js)
        n = 600
        ids = [f"e{i}" for i in range(n)]
        await publish(js, source_subject(slug), [(i, {"n": k}) for k, i in enumerate(ids)])
        internal = streams_of(slug)["internal"]

        async def full() -> bool:
            return await count(js, internal) >= FULL["max_msgs"]

        assert await wait_for(full, 20), cluster.logs()
        await asyncio.sleep(full_seconds)
        # While the stream refuses writes, no input whose output was refused may have been acked.
        info = await js.consumer_info(streams_of(slug)["sources"], "a")
        assert info.ack_floor.stream_seq <= FULL["max_msgs"], "inputs were acked although their output was refused"
        assert await count(js, internal) == FULL["max_msgs"]

        await _free_space(js, internal)
        assert await wait_for(lambda: settled(js, streams_of(slug)["sources"], "a"), 60, 0.2), cluster.logs()
        await asyncio.sleep(0.5)
        output, on_target, dead, doubled = await _outcome(js, slug, "a")
        missing = set(ids) - output - dead
        assert not missing, (f"{len(missing)} events reached neither the output subject nor the DLQ "
                             f"(e.g. {sorted(missing)[:5]})\n{cluster.logs()}")
        assert not (output & dead) and doubled == 0
        # The target is not full: it may hold an event whose other output went to the DLQ, never one less.
        assert output <= on_target
        if dead:
            letter = (await js.get_last_msg(internal, f"kumeo.{slug}.dlq.a")).data
            assert "could not publish" in json.loads(letter)["error"]
    finally:
        cluster.close()


async def test_the_http_source_answers_503_when_its_stream_is_full_and_stores_nothing_silently(js, nats_url):
    from kumeo_iac.compile._plan import EndpointPlan
    from kumeo_iac.runtime.io._http_source import HttpSource

    slug = new_slug()
    plan = chain(slug, ["a"], nats_url)
    await create_streams(js, plan, sources={"max_msgs": 5, "discard": DiscardPolicy.NEW})
    endpoint = EndpointPlan(kind="HTTP", address="/ingest", subject=source_subject(slug), options={}, name="in",
                            stream=streams_of(slug)["sources"])
    source = HttpSource(plan, endpoint, host="127.0.0.1", port=0, publish_timeout=2.0)
    nc = await connect(nats_url)
    await source.start(nc)
    try:
        statuses = []
        for i in range(8):
            body = json.dumps({"n": i}).encode()
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            writer.write(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            answer = await reader.read()
            writer.close()
            statuses.append(int(answer.split()[1]))
        assert statuses[:5] == [202] * 5
        assert statuses[5:] == [503] * 3, statuses
        assert source.accepted == 5
        assert await count(js, streams_of(slug)["sources"]) == 5
    finally:
        await source.stop()
        await nc.close()


async def test_an_output_stream_full_for_good_dead_letters_on_the_last_delivery(js, nats_url, tmp_path):
    """The dead-letter subject lives in another stream with room: events out of deliveries go there, saying why."""
    import dataclasses

    slug = new_slug()
    plan = chain(slug, ["a"], nats_url, ack_wait=3.0, max_deliver=2, backoff=[0.05])
    letters = target_subject(slug).replace(".out", ".dlq")
    plan.agents[0] = dataclasses.replace(plan.agents[0], dead_letter_subject=letters)
    await create_streams(js, plan, internal=FULL)
    cluster = Cluster(plan, nats_url, tmp_path)
    try:
        cluster.start("a")
        await cluster.wait_ready(js)
        n = 400
        ids = [f"e{i}" for i in range(n)]
        await publish(js, source_subject(slug), [(i, {"n": k}) for k, i in enumerate(ids)])
        assert await wait_for(lambda: settled(js, streams_of(slug)["sources"], "a"), 60, 0.2), cluster.logs()
        names = streams_of(slug)
        output = await event_ids(js, names["internal"], f"kumeo.{slug}.a.out")
        dead = await event_ids(js, names["targets"], letters)
        assert len(output) == FULL["max_msgs"]
        assert set(output) | set(dead) == set(ids) and not set(output) & set(dead)
        assert max(dead.values()) == 1
        letter = json.loads((await js.get_last_msg(names["targets"], letters)).data)
        assert letter["attempt"] == 2
        assert "could not publish the output" in letter["error"] and "maximum messages exceeded" in letter["error"]
    finally:
        cluster.close()


async def test_publish_async_to_a_full_stream_fails_at_once_not_after_its_timeout(js):
    """Regression for nats.py#985 (worked around in kumeo_iac.jetstream): the refusal reaches the future."""
    import time

    from nats.js.api import StreamConfig
    from nats.js.errors import APIError

    from kumeo_iac.jetstream import connect  # noqa: F401 - loading the connection module applies the workaround

    name = f"FULL_{new_slug().upper()}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"], max_msgs=1, discard=DiscardPolicy.NEW))
    await (await js.publish_async(f"{name}.x", b"1"))
    began = time.monotonic()
    future = await js.publish_async(f"{name}.x", b"2")
    with pytest.raises(APIError, match="maximum messages exceeded"):
        await asyncio.wait_for(future, 5)
    assert time.monotonic() - began < 1.0
