"""Partitioned agents on a real nats-server (issue 17, item 1): a compiled Plan, an upstream worker publishing the
keyed copies and one worker per lane. Per key, results come out in input order; nothing is lost or duplicated; the
server's partition() transform spreads the keys over every lane."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict

import pytest
from worker_support import Harness, PassThrough, create_streams, make_agent, read_subject, wait_count

from kumeo_iac.compile import PlatformSettings, WorkflowPlan, compile_program
from kumeo_iac.errors import KumeoError
from kumeo_iac.lang import parse
from kumeo_iac.runtime._agent import Emit, Event, RuntimeAgent

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

WORKFLOW = """\
workflow Lanes {
  source: NATS("lanes.in")
  agents: [
    Custom(id: "prep", entrypoint: "unused:prep", input: source),
    Custom(id: "total", entrypoint: "unused:total", input: prep.output, partitions: 4, partition_key: "customer.id",
           timeout: "2s")
  ]
}
"""


class Lane(RuntimeAgent):
    """Stamps each event with the lane its worker consumes, and sometimes yields, so lanes interleave."""

    lane = -1

    async def process(self, event: Event) -> list[Emit]:
        if event.data["seq"] % 7 == 0:
            await asyncio.sleep(0)
        return [Emit({**event.data, "lane": self.lane})]


def compiled(nats_url: str) -> WorkflowPlan:
    result = parse(WORKFLOW, "lanes.kumeo")
    assert result.ok, result.diagnostics
    return compile_program(result.program, settings=PlatformSettings(nats_url=nats_url)).workflows[0]


async def test_every_key_keeps_its_order_over_four_lanes(harness: Harness) -> None:
    plan = compiled(harness.url)
    await create_streams(harness.js, plan)
    await harness.run_worker(plan, "prep", make_agent(PassThrough, plan, "prep"))
    for lane in range(4):
        agent = make_agent(Lane, plan, "total")
        agent.lane = lane  # type: ignore[attr-defined]
        worker = await harness.run_worker(plan, "total", agent, partition=lane)
        assert [p.durable for p in worker._pullers] == [f"total_p{lane}"]

    keys, per_key = 60, 25
    events = [{"customer": {"id": f"c{k}"}, "seq": s} for s in range(per_key) for k in range(keys)]
    futures = [await harness.js.publish_async("lanes.in", json.dumps(e).encode()) for e in events]
    await asyncio.gather(*futures)

    out = "kumeo.lanes.total.out"
    assert await wait_count(harness.js, "KUMEO_LANES", out, len(events), timeout=60) == len(events)
    await asyncio.sleep(0.5)  # anything extra (a duplicate) would land now
    results = [json.loads(m.data) for m in await read_subject(harness.js, "KUMEO_LANES", out)]
    assert len(results) == len(events)
    assert Counter((r["customer"]["id"], r["seq"]) for r in results) == Counter(
        (e["customer"]["id"], e["seq"]) for e in events)  # nothing lost, nothing twice
    seqs: dict[str, list[int]] = defaultdict(list)
    lanes: dict[str, set[int]] = defaultdict(set)
    for r in results:
        seqs[r["customer"]["id"]].append(r["seq"])
        lanes[r["customer"]["id"]].add(r["lane"])
    assert all(s == list(range(per_key)) for s in seqs.values())  # per key, input order
    assert all(len(v) == 1 for v in lanes.values())  # a key stays on one lane
    assert {next(iter(v)) for v in lanes.values()} == {0, 1, 2, 3}  # and every lane got keys


async def test_events_without_the_key_share_one_lane_in_order(harness: Harness) -> None:
    plan = compiled(harness.url)
    await create_streams(harness.js, plan)
    await harness.run_worker(plan, "prep", make_agent(PassThrough, plan, "prep"))
    await harness.run_worker(plan, "total", make_agent(Lane, plan, "total"))  # no lane given: all four
    events = [{"seq": s} for s in range(50)]
    await asyncio.gather(*[await harness.js.publish_async("lanes.in", json.dumps(e).encode()) for e in events])
    out = "kumeo.lanes.total.out"
    assert await wait_count(harness.js, "KUMEO_LANES", out, 50, timeout=30) == 50
    assert [json.loads(m.data)["seq"] for m in await read_subject(harness.js, "KUMEO_LANES", out)] == list(range(50))


async def test_a_lane_outside_the_partitions_is_refused_with_the_agents_name(harness: Harness,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from kumeo_iac.runtime._worker import Worker

    plan = compiled(harness.url)
    with pytest.raises(KumeoError, match=r"agent 'total' has 4 partitions \(0 to 3\), but the partition argument"):
        Worker(plan, "total", harness.url, partition=4)
    monkeypatch.setenv("KUMEO_PARTITION", "two")
    with pytest.raises(KumeoError, match=r"\$KUMEO_PARTITION is 'two', not a lane number"):
        Worker(plan, "total", harness.url)
    monkeypatch.setenv("KUMEO_PARTITION", "2")
    assert Worker(plan, "total", harness.url).partition == 2
