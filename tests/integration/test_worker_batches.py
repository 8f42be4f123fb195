"""How the worker runs the events of one batch: in order while the agent answers at once, concurrently once it is slow.

The batches are handed to ``Worker._process`` directly (no server is needed to decide how events run: this is the
scheduling step between fetching and publishing, which test_worker_flow.py covers end to end).
"""

from __future__ import annotations

import asyncio

from worker_support import agent_plan, make_agent, new_slug, source_subject, workflow_plan

from kumeo_iac.runtime._agent import Emit, Event, RuntimeAgent
from kumeo_iac.runtime._worker import Worker, _Work


class Overlaps(RuntimeAgent):
    """Records, for each event, how many events were running when it started."""

    delay = 0.0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.running = 0
        self.seen: list[int] = []

    async def process(self, event: Event) -> list[Emit]:
        self.running += 1
        self.seen.append(self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        return [Emit(event.data)]


def _batch(n: int) -> list[_Work]:
    return [_Work(msg=None, event_id=f"e{i}", attempt=1, payload={"i": i}, raw=b"", part="", traceparent="",  # type: ignore[arg-type]
                  event=Event(id=f"e{i}", data={"i": i})) for i in range(n)]


async def _worker(delay: float) -> tuple[Worker, Overlaps]:
    slug = new_slug()
    plan = workflow_plan(slug, [agent_plan(slug, "a", {"": source_subject(slug)})])
    agent = make_agent(Overlaps, plan, "a")
    assert isinstance(agent, Overlaps)
    agent.delay = delay
    return Worker(plan, "a", "nats://127.0.0.1:1", agent=agent), agent


async def test_a_quick_agent_runs_its_batch_one_event_after_the_other():
    worker, agent = await _worker(0.0)
    for _ in range(3):
        works = _batch(20)
        await worker._process(works)
        assert all(w.outcome == [Emit(w.event.data)] for w in works)  # type: ignore[union-attr]
    assert set(agent.seen) == {1}


async def test_a_slow_agent_starts_the_next_batch_concurrently_at_once():
    worker, agent = await _worker(0.05)
    await worker._process(_batch(5))
    assert agent.seen == [1, 1, 2, 3, 4]  # the first event alone, then the rest together
    agent.seen.clear()
    works = _batch(5)
    await worker._process(works)
    assert agent.seen == [1, 2, 3, 4, 5]  # known slow: no event waits for the first one
    assert all(w.outcome == [Emit(w.event.data)] for w in works)  # type: ignore[union-attr]


async def test_an_agent_that_turns_quick_goes_back_to_one_event_after_the_other():
    worker, agent = await _worker(0.05)
    await worker._process(_batch(3))
    agent.delay = 0.0
    await worker._process(_batch(50))  # concurrent, and quick: noted
    agent.seen.clear()
    await worker._process(_batch(5))
    assert agent.seen == [1, 1, 1, 1, 1]
