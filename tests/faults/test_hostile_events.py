"""Hostile events cannot stop a pipeline: each is dead-lettered with its reason and everything else flows.

A real nats-server and a real worker process (``python -m kumeo_iac.runtime``); outcomes are counted by
``Kumeo-Event-Id`` on the streams: nothing lost, nothing doubled, every bad event in the DLQ saying why.
"""

from __future__ import annotations

import json

import pytest
from fault_support import (
    Cluster,
    chain,
    create_streams,
    dead_letters,
    event_ids,
    new_slug,
    publish,
    settled,
    source_subject,
    streams_of,
    target_subject,
    wait_for,
)

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

DEEP = b"[" * 10_000 + b"]" * 10_000


async def _run(nc, nats_url, tmp_path, events, expected_good, *, env=None):
    """Run one enriching agent over ``events``; return (target ids, dead letters by id, worker, cluster)."""
    js = nc.jetstream()
    slug = new_slug()
    plan = chain(slug, ["enrich"], nats_url, max_deliver=3)
    await create_streams(js, plan)
    cluster = Cluster(plan, nats_url, tmp_path)
    # "Slow" with no delay: emits the event grown by a 512-byte field.
    worker = cluster.start("enrich", "Slow", env={"KUMEO_FAULT_DELAY": "0", **(env or {})})
    names = streams_of(slug)
    try:
        await cluster.wait_ready(js)
        await publish(js, source_subject(slug), events)
        assert await wait_for(lambda: settled(js, names["sources"], "enrich"), 60), cluster.logs()
        on_target = await event_ids(js, names["targets"], target_subject(slug))
        dead = await dead_letters(js, slug, "enrich")
        dead_counts = await event_ids(js, names["internal"], f"kumeo.{slug}.dlq.enrich")
        assert worker.alive(), cluster.logs()
        assert set(on_target) == expected_good, cluster.logs()
        assert all(n == 1 for n in on_target.values())  # nothing doubled
        assert all(n == 1 for n in dead_counts.values())
        log = worker.log()
        assert "disconnected from NATS" not in log and "Traceback" not in log, log
        return on_target, dead, worker
    finally:
        cluster.close()


async def test_hostile_events_are_dead_lettered_and_the_rest_flows(nc, nats_url, tmp_path) -> None:
    limit = nc.max_payload
    assert limit == 1024 * 1024  # the server default the oversized event is sized against
    good = [(f"good-{i}", {"n": i, "amount": 1.5}) for i in range(20)]
    big = b'{"id":"big","blob":"' + b"x" * (1_048_000 - 22) + b'"}'
    assert len(big) == 1_048_000
    bad = [("deep", DEEP), ("big", big), ("nan", b'{"amount": NaN}'), ("inf", b'{"amount": Infinity}')]
    events = good[:10] + bad[:1] + good[10:12] + bad[1:] + good[12:]
    _, dead, _ = await _run(nc, nats_url, tmp_path, events, {e for e, _ in good})
    assert set(dead) == {"deep", "big", "nan", "inf"}
    reasons = {eid: msg.headers["Kumeo-Error"] for eid, msg in dead.items()}
    assert "JSON nested too deeply to decode" in reasons["deep"]
    assert reasons["nan"] == "non-finite number NaN at $.amount is not JSON"
    assert reasons["inf"] == "non-finite number Infinity at $.amount is not JSON"
    assert reasons["big"].startswith("the output to tgt.") or reasons["big"].startswith("the output to kumeo.")
    assert f"over the NATS server's max_payload of {limit} bytes" in reasons["big"]
    for eid, msg in dead.items():
        body = json.loads(msg.data)  # strict JSON
        assert body["error"] == reasons[eid]
        if eid == "big":
            # The input still fits in its dead letter (only the grown output did not): kept, for a replay.
            assert body["input"] == json.loads(big)
            assert len(msg.data) <= limit
        else:
            # An input that is not JSON travels as a note, its size and a preview, never as itself.
            assert "input" not in body and body["input_omitted"] == "the input is not JSON"
            assert len(msg.data) < 1024
    assert json.loads(dead["nan"].data)["input_preview"] == '{"amount": NaN}'
    assert json.loads(dead["deep"].data)["input_bytes"] == len(DEEP)


async def test_inputs_over_the_limit_and_not_utf8_are_dead_lettered(nc, nats_url, tmp_path) -> None:
    good = [(f"good-{i}", {"n": i}) for i in range(5)]
    bad = [("large", {"blob": "y" * 5000}), ("latin1", b'{"name": "caf\xe9"}'),
           ("overflow", b'{"v": [1, 1e999]}')]
    _, dead, _ = await _run(nc, nats_url, tmp_path, good[:2] + bad + good[2:], {e for e, _ in good},
                            env={"KUMEO_MAX_INPUT_BYTES": "4096"})
    reasons = {eid: msg.headers["Kumeo-Error"] for eid, msg in dead.items()}
    assert set(reasons) == {"large", "latin1", "overflow"}
    assert reasons["large"] == ("input of 5012 bytes is over the worker's limit of 4096 bytes "
                                "(KUMEO_MAX_INPUT_BYTES)")
    assert reasons["latin1"] == "payload is not UTF-8 (invalid byte 0xe9 at offset 13)"
    assert reasons["overflow"] == "number 1e999 at $.v[1] overflows a double (not a finite number)"
